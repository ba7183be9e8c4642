"""M&Ms, the Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation challenge (2020).

Images and ground truth are 4D short-axis cines (x, y, z, t); the ground truth is non-zero only at
the end-diastolic and end-systolic frames, whose 0-based indices the release's information CSV
gives per subject (columns ``External code``, ``ED``, ``ES``). Each labelled frame is its own case,
``<code>_ED`` and ``<code>_ES``. Labels: 1 LV blood pool, 2 LV myocardium, 3 RV, the reverse of
ACDC. ``Training/Unlabeled`` (vendor C) has no ground truth and is skipped. Some Validation and
Testing files carry non-orthonormal direction cosines (noted by nnU-Net); ITK falls back to the
qform when only the sform is skewed, and a file it still cannot read is quarantined with ITK's
reason rather than silently re-oriented.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find, is_junk
from tasks.formats.split4d import read_cine_frame

LABELLED = ("Training/Labeled", "Validation", "Testing")


def read_frames(csv_path: Path) -> dict[str, dict[str, int]]:
    """Subject code -> {"ED": index, "ES": index} from the M&Ms information CSV (0-based frames)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"External code", "ED", "ES"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
    return {row["External code"].strip(): {"ED": int(row["ED"]), "ES": int(row["ES"])} for row in rows}


@dataset_card(
    id="mnms",
    name="M&Ms: Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation",
    dimensionality=3,
    subsets=(
        Subset(modality="mr", region="heart", intensity=PercentileClip(), labels={
            1: Target(name="left-ventricle", anatomy="heart"),
            2: Target(name="myocardium", anatomy="heart"),
            3: Target(name="right-ventricle", anatomy="heart"),
        }),
    ),
    source=ManualSource(
        register_at="https://www.ub.edu/mnms/ (data-use form, then a MEGA link)",
        what_to_pass="the OpenDataset/ folder (Training/, Validation/, Testing/ and "
                     "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv), or a zip of it",
    ),
    license="not recorded (n/r); see the terms of the ub.edu/mnms data-use form",
    citation="Campello VM et al. Multi-Centre, Multi-Vendor and Multi-Disease Cardiac Segmentation: "
             "The M&Ms Challenge. IEEE Trans Med Imaging 2021;40(12):3543-3554.",
    layout="OpenDataset/{Training/Labeled,Validation,Testing}/<code>/<code>_sa.nii.gz + <code>_sa_gt.nii.gz "
           "(4D cine), ED/ES frame indices (0-based) in the information CSV",
    cases=640,  # 320 subjects with ground truth x ED and ES
    reader=read_cine_frame,
)
def mnms(root: Path) -> Iterator[CaseFiles]:
    """Two cases per labelled subject, at the CSV's ED and ES frames of ``<code>_sa[_gt].nii.gz``."""
    csv_path = find(root, "*M&Ms_Dataset_[Ii]nformation*.csv", "the M&Ms OpenDataset/ folder")[-1]
    frames = read_frames(csv_path)
    base = csv_path.parent
    for folder in LABELLED:
        for gt in sorted(p for p in (base / folder).glob("*/*_sa_gt.nii.gz") if not is_junk(p)):
            code = gt.parent.name
            if code not in frames:
                raise ValueError(f"{gt}: subject {code} is not in {csv_path.name}")
            for phase in ("ED", "ES"):
                frame = frames[code][phase]
                yield CaseFiles(f"{code}_{phase}", (gt.with_name(f"{code}_sa.nii.gz"),), gt, extra={"frame": str(frame)})
