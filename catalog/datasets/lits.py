"""LiTS: the Liver Tumor Segmentation Benchmark (ISBI 2017 / MICCAI 2017).

``Training_Batch1.zip`` and ``Training_Batch2.zip`` hold uncompressed ``volume-N.nii`` with
``segmentation-N.nii`` beside it (N = 0-130; the zips nest them a few folders deep, with spaces in
the folder names); ``LITS-Challenge-Test-Data/test-volume-N.nii`` (70 CTs) has no public labels and
is not ingested. Labels: 1 liver, 2 tumour. The same 131 CTs are MSD Task03_Liver, so the two
cards overlap; count them once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import is_junk

HINT = "a folder holding the unpacked Training_Batch1.zip and Training_Batch2.zip (volume-N.nii, segmentation-N.nii)"


@dataset_card(
    id="lits",
    name="LiTS: Liver Tumor Segmentation Benchmark",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"), labels={
        1: Target(name="liver", anatomy="liver"),
        2: Target(name="liver-tumour", anatomy="liver"),
    }),),
    source=ManualSource(
        register_at="https://competitions.codalab.org/competitions/17094 (CodaLab account, then join the competition)",
        what_to_pass=HINT,
    ),
    license="CC BY-NC-ND 4.0",
    citation="Bilic P, Christ P, Li HB, et al. The Liver Tumor Segmentation Benchmark (LiTS). "
             "Med Image Anal 2023;84:102680.",
    layout="Training_Batch{1,2}.zip -> .../volume-N.nii + segmentation-N.nii (uncompressed NIfTI, N = 0-130)",
    cases=131,  # labelled training CTs (the 70 test CTs have no public labels)
)
def lits(root: Path) -> Iterator[CaseFiles]:
    """Every ``segmentation-N.nii`` with the ``volume-N.nii`` beside it, by N."""
    cases: dict[int, CaseFiles] = {}
    for label in root.rglob("segmentation-*.nii"):
        number = label.name.removeprefix("segmentation-").removesuffix(".nii")
        image = label.with_name(f"volume-{number}.nii")
        if is_junk(label) or not number.isdigit() or not image.is_file() or int(number) in cases:
            continue
        cases[int(number)] = CaseFiles(f"volume-{number}", (image,), label)
    if not cases:
        raise ValueError(f"{root}: no segmentation-N.nii beside a volume-N.nii; pass {HINT}")
    yield from (cases[n] for n in sorted(cases))
