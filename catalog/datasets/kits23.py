"""KiTS23: kidney, kidney tumour and kidney cyst in corticomedullary-phase CT.

The kits23 repository holds ``dataset/case_NNNNN/segmentation.nii.gz`` (the aggregated label: 1
kidney, 2 tumour, 3 cyst) and ``instances/`` (per-annotator instance masks, not used here); its
``kits23_download_data`` command adds ``imaging.nii.gz`` to each case folder. The NIfTI axes are
not in the usual order (nnU-Net reorients them); ingest reorients every case to LPS anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find


@dataset_card(
    id="kits23",
    name="KiTS23: Kidney and Kidney Tumor Segmentation Challenge 2023",
    dimensionality=3,
    subsets=(
        Subset(modality="ct", region="kidney", intensity=CTWindow(preset="ct-soft-tissue"), labels={
            1: Target(name="kidney", anatomy="kidney"),
            2: Target(name="kidney-tumour", anatomy="kidney"),
            3: Target(name="kidney-cyst", anatomy="kidney"),
        }),
    ),
    source=ManualSource(
        register_at="https://github.com/neheller/kits23 (no account: git clone it, pip install -e ., run kits23_download_data)",
        what_to_pass="the cloned kits23/ folder after kits23_download_data (its dataset/case_NNNNN/ hold imaging.nii.gz)",
    ),
    license="CC BY-NC-SA 4.0 (data); MIT (code)",
    citation="Heller N et al. The KiTS21 Challenge: Automatic segmentation of kidneys, renal tumors, and renal "
             "cysts in corticomedullary-phase CT. arXiv:2307.01984 (2023).",
    layout="dataset/case_NNNNN/{imaging.nii.gz, segmentation.nii.gz, instances/*.nii.gz}",
    cases=489,  # public training cases (110 more are a hidden test set)
)
def kits23(root: Path) -> Iterator[CaseFiles]:
    """Every case folder with an aggregated segmentation, paired with its imaging file."""
    for label in find(root, "case_[0-9][0-9][0-9][0-9][0-9]/segmentation.nii.gz", "the cloned kits23/ folder"):
        yield CaseFiles(label.parent.name, (label.with_name("imaging.nii.gz"),), label)
