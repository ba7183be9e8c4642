"""CHAOS: Combined (CT-MR) Healthy Abdominal Organ Segmentation (ISBI 2019).

``CHAOS_Train_Sets.zip`` unpacks to ``Train_Sets/CT/<id>/{DICOM_anon/*.dcm, Ground/*.png}`` and
``Train_Sets/MR/<id>/T1DUAL/{DICOM_anon/{InPhase,OutPhase}/*.dcm, Ground/*.png}`` and
``.../T2SPIR/{DICOM_anon/*.dcm, Ground/*.png}``: one ground-truth PNG per DICOM slice, paired in
file-name order. CT ground truth is the liver only (1-bit PNG); MR ground truth has four organs as
grey levels, which the card maps exactly: 63 liver, 126 right kidney, 189 left kidney, 252 spleen
(CHAOS's bands 55-70, 110-135, 175-200, 240-255 are snapped to these). T1-DUAL's in-phase and
opposed-phase series share one Ground folder and become two channels of one case. ``Test_Sets``
has no public ground truth and is not ingested.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_with_suffix, find_dirs, is_junk, natural_key
from tasks.formats.chaos import read_chaos

MR_LABELS = {
    63: Target(name="liver", anatomy="liver"),
    126: Target(name="right-kidney", anatomy="kidney"),
    189: Target(name="left-kidney", anatomy="kidney"),
    252: Target(name="spleen", anatomy="spleen"),
}
HINT = "CHAOS_Train_Sets.zip (or the Train_Sets/ folder it unpacks to)"


def _case(case_id: str, subset: str, dicoms: list[Path], ground: Path, encoding: str) -> CaseFiles | None:
    pngs = files_with_suffix(ground, [".png"]) if ground.is_dir() else []
    if not dicoms or not pngs:
        return None
    return CaseFiles(case_id, tuple(dicoms), ground, subset=subset,
                     more=tuple(pngs), extra={"encoding": encoding})


def _patients(base: Path) -> list[Path]:
    return sorted((p for p in base.iterdir() if p.is_dir() and not is_junk(p)), key=natural_key) if base.is_dir() else []


@dataset_card(
    id="chaos",
    name="CHAOS: Combined (CT-MR) Healthy Abdominal Organ Segmentation",
    dimensionality=3,
    subsets=(
        Subset(name="ct", modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"),
               labels={1: Target(name="liver", anatomy="liver")}),
        Subset(name="mr-t1dual", modality="mr", region="abdomen", intensity=PercentileClip(),
               channels=("in-phase", "opposed-phase"), labels=MR_LABELS),
        Subset(name="mr-t2spir", modality="mr", region="abdomen", intensity=PercentileClip(), labels=MR_LABELS),
    ),
    source=ManualSource(
        register_at="https://zenodo.org/records/3431873 (open, no account)",
        what_to_pass=HINT,
    ),
    license="CC BY-SA 4.0",
    citation="Kavur AE, Gezer NS, Baris M, et al. CHAOS Challenge - combined (CT-MR) healthy abdominal organ "
             "segmentation. Med Image Anal 2021;69:101950.",
    layout="Train_Sets/CT/<id>/{DICOM_anon,Ground}; Train_Sets/MR/<id>/{T1DUAL/DICOM_anon/{InPhase,OutPhase},"
           "T2SPIR/DICOM_anon} with Ground/*.png per sequence (one PNG per DICOM slice, name order)",
    reader=read_chaos,
    cases=60,  # 20 CT + 20 MR patients x 2 sequences, training set (test ground truth is hidden)
)
def chaos(root: Path) -> Iterator[CaseFiles]:
    """Each CT patient, and each MR patient's T1-DUAL and T2-SPIR, with a Ground folder of PNGs."""
    cases: dict[str, CaseFiles] = {}
    for base in find_dirs(root, "Train_Sets"):
        for patient in _patients(base / "CT"):
            dicoms = files_with_suffix(patient / "DICOM_anon", [".dcm"])
            found = _case(f"ct-{patient.name}", "ct", dicoms, patient / "Ground", "ct")
            if found:
                cases.setdefault(found.case_id, found)
        for patient in _patients(base / "MR"):
            t1, t2 = patient / "T1DUAL", patient / "T2SPIR"
            in_out = [*files_with_suffix(t1 / "DICOM_anon" / "InPhase", [".dcm"]),
                      *files_with_suffix(t1 / "DICOM_anon" / "OutPhase", [".dcm"])]
            for found in (
                _case(f"mr-{patient.name}-t1dual", "mr-t1dual", in_out, t1 / "Ground", "mr"),
                _case(f"mr-{patient.name}-t2spir", "mr-t2spir", files_with_suffix(t2 / "DICOM_anon", [".dcm"]),
                      t2 / "Ground", "mr"),
            ):
                if found:
                    cases.setdefault(found.case_id, found)
    if not cases:
        raise ValueError(f"{root}: no Train_Sets/{{CT,MR}}/<id>/.../DICOM_anon with a Ground folder of PNGs; pass {HINT}")
    yield from cases.values()
