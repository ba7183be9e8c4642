"""AMOS 2022: abdominal multi-organ CT and MR with 15 organ labels.

``amos22/{imagesTr,labelsTr,imagesVa,labelsVa,imagesTs}/amos_NNNN.nii.gz`` + ``dataset.json``; case
numbers up to 500 are CT, above 500 MR. The validation labels are only in the post-challenge
Zenodo record 7262581. ``dataset.json`` spells label 8 "arota" and label 9 "postcava"; the
targets here are aorta and inferior vena cava. The same 15 values are mapped for MR (its scans
may not use 14 and 15; an unused value costs nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find

LAST_CT = 500

LABELS = {
    1: Target(name="spleen", anatomy="spleen"),
    2: Target(name="right-kidney", anatomy="kidney"),
    3: Target(name="left-kidney", anatomy="kidney"),
    4: Target(name="gallbladder", anatomy="gallbladder"),
    5: Target(name="esophagus", anatomy="esophagus"),
    6: Target(name="liver", anatomy="liver"),
    7: Target(name="stomach", anatomy="stomach"),
    8: Target(name="aorta", anatomy="vessels"),
    9: Target(name="inferior-vena-cava", anatomy="vessels"),
    10: Target(name="pancreas", anatomy="pancreas"),
    11: Target(name="right-adrenal-gland", anatomy="adrenal-gland"),
    12: Target(name="left-adrenal-gland", anatomy="adrenal-gland"),
    13: Target(name="duodenum", anatomy="duodenum"),
    14: Target(name="bladder", anatomy="bladder"),
    15: Target(name="prostate-uterus", anatomy="pelvis"),
}


@dataset_card(
    id="amos22",
    name="AMOS 2022: Abdominal Multi-Organ Segmentation",
    dimensionality=3,
    subsets=(
        Subset(name="ct", modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"), labels=LABELS),
        Subset(name="mr", modality="mr", region="abdomen", intensity=PercentileClip(), labels=LABELS),
    ),
    source=ManualSource(
        register_at="https://zenodo.org/records/7262581 (open, no account)",
        what_to_pass="amos22.zip from that record (or its extracted amos22/ folder); "
                     "samatlas knows no verified sha256 for it, so it does not download it itself",
    ),
    license="CC BY 4.0",
    citation="Ji Y et al. AMOS: A Large-Scale Abdominal Multi-Organ Benchmark for Versatile Medical Image "
             "Segmentation. NeurIPS 2022 Datasets and Benchmarks Track.",
    layout="amos22/{imagesTr,labelsTr,imagesVa,labelsVa,imagesTs}/amos_NNNN.nii.gz + dataset.json; NNNN <= 500 CT, > 500 MR",
    cases=360,  # labelled training + validation scans: 300 CT + 60 MR (the 240 test scans have no public labels)
)
def amos22(root: Path) -> Iterator[CaseFiles]:
    """Every labelled training and validation scan, in the CT or MR subset by its number."""
    for label in find(root, "labels[TV][ra]/amos_[0-9][0-9][0-9][0-9].nii.gz", "amos22.zip or its amos22/ folder"):
        case_id = label.name.removesuffix(".nii.gz")
        image = label.parent.parent / label.parent.name.replace("labels", "images") / label.name
        subset = "ct" if int(case_id.split("_")[1]) <= LAST_CT else "mr"
        yield CaseFiles(case_id, (image,), label, subset=subset)
