"""ACDC, the Automated Cardiac Diagnosis Challenge (MICCAI 2017): short-axis cine MR.

Only the end-diastolic (ED) and end-systolic (ES) frames have ground truth. The release ships those
frames as 3D files beside the 4D cine, and each patient's ``Info.cfg`` names them (``ED: 1``,
``ES: 12``, 1-based, matching ``patientNNN_frameNN.nii.gz``). Each labelled frame is its own case,
``patient001_ED`` and ``patient001_ES``. Labels: 1 RV cavity, 2 myocardium, 3 LV cavity, the
reverse of M&Ms. Slices are 5-10 mm thick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find


def read_info(path: Path) -> dict[str, str]:
    """The ``key: value`` lines of an ACDC ``Info.cfg``."""
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


@dataset_card(
    id="acdc",
    name="ACDC: Automated Cardiac Diagnosis Challenge",
    dimensionality=3,
    subsets=(
        Subset(modality="mr", region="heart", intensity=PercentileClip(), labels={
            1: Target(name="right-ventricle", anatomy="heart"),
            2: Target(name="myocardium", anatomy="heart"),
            3: Target(name="left-ventricle", anatomy="heart"),
        }),
    ),
    source=ManualSource(
        register_at="https://humanheart-project.creatis.insa-lyon.fr/database/#collection/637218c173e9f0047faa00fb",
        what_to_pass="the ACDC zip from that collection (or its extracted folder holding database/training and database/testing)",
    ),
    license="not recorded (n/r); see the terms on the humanheart-project site",
    citation="Bernard O et al. Deep Learning Techniques for Automatic MRI Cardiac Multi-Structures Segmentation and "
             "Diagnosis: Is the Problem Solved? IEEE Trans Med Imaging 2018;37(11):2514-2525.",
    layout="database/{training,testing}/patientNNN/ with patientNNN_4d.nii.gz, patientNNN_frameNN[_gt].nii.gz "
           "for ED and ES, and Info.cfg naming the ED and ES frames",
    cases=300,  # 150 patients (100 training + 50 testing) x ED and ES
)
def acdc(root: Path) -> Iterator[CaseFiles]:
    """Two cases per labelled patient, the ED and ES frames that ``Info.cfg`` names, with their ``_gt`` files.

    A patient with neither ``_gt`` file is unlabelled and skipped; one with only one of them yields
    both cases, and the missing file quarantines its case.
    """
    for cfg in find(root, "patient[0-9][0-9][0-9]/Info.cfg", "the ACDC zip or the folder holding database/"):
        info = read_info(cfg)
        patient = cfg.parent.name
        stems = {}
        for phase in ("ED", "ES"):
            if not info.get(phase, "").isdigit():
                raise ValueError(f"{cfg}: no integer {phase} frame (found {info.get(phase)!r})")
            stems[phase] = cfg.parent / f"{patient}_frame{int(info[phase]):02d}"
        if not any(Path(f"{stem}_gt.nii.gz").exists() for stem in stems.values()):
            continue  # an unlabelled patient (the 2017 testing release had no ground truth)
        for phase, stem in stems.items():
            yield CaseFiles(f"{patient}_{phase}", (Path(f"{stem}.nii.gz"),), Path(f"{stem}_gt.nii.gz"))
