"""AbdomenCT-1K (Ma et al., TPAMI 2022): abdominal CT with liver, kidney, spleen and pancreas masks.

The images come in three Zenodo parts (``AbdomenCT-1K-ImagePart{1,2,3}/Case_NNNNN_0000.nii.gz``) and
the masks in ``Mask.7z`` (``Mask/Case_NNNNN.nii.gz``, 1 liver, 2 kidney, 3 spleen, 4 pancreas);
1,000 of the 1,112 scans have public masks, and only those are ingested. The CTs re-annotate
scans from MSD, KiTS19, LiTS and NIH Pancreas-CT, so they overlap with several other cards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find

PART_OF = ((400, 1), (800, 2))  # case number <= bound -> image part; the rest are in part 3


def expected_image(mask_dir: Path, case_id: str) -> Path:
    """Where the documented part split puts a case's image (named when the image cannot be found)."""
    number = int(case_id.split("_")[1])
    part = next((p for bound, p in PART_OF if number <= bound), 3)
    return mask_dir.parent / f"AbdomenCT-1K-ImagePart{part}" / f"{case_id}_0000.nii.gz"


@dataset_card(
    id="abdomenct1k",
    name="AbdomenCT-1K",
    dimensionality=3,
    subsets=(
        Subset(modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"), labels={
            1: Target(name="liver", anatomy="liver"),
            2: Target(name="kidney", anatomy="kidney"),
            3: Target(name="spleen", anatomy="spleen"),
            4: Target(name="pancreas", anatomy="pancreas"),
        }),
    ),
    source=ManualSource(
        register_at="https://github.com/JunMa11/AbdomenCT-1K (Zenodo records 5903099, 5903846, 5903769; open, no account)",
        what_to_pass="one folder holding the extracted AbdomenCT-1K-ImagePart1/2/3 folders and Mask/ "
                     "(extract Mask.7z first: 7z archives are not read)",
    ),
    license="not recorded (n/r); the source collections' licences (MSD, KiTS19, LiTS, NIH Pancreas-CT) apply",
    citation="Ma J et al. AbdomenCT-1K: Is Abdominal Organ Segmentation a Solved Problem? "
             "IEEE Trans Pattern Anal Mach Intell 2022;44(10):6695-6714.",
    layout="AbdomenCT-1K-ImagePart{1,2,3}/Case_NNNNN_0000.nii.gz (cases 1-400, 401-800, rest) + Mask/Case_NNNNN.nii.gz",
    cases=1000,  # scans with public masks, of 1,112
)
def abdomenct1k(root: Path) -> Iterator[CaseFiles]:
    """Every mask with its image, found in whichever part folder holds it."""
    images = {p.name.removesuffix("_0000.nii.gz"): p for p in find(root, "AbdomenCT-1K-ImagePart*/Case_*_0000.nii.gz",
                                                                     "the folder holding the image parts and Mask/")}
    for mask in find(root, "Mask/Case_[0-9][0-9][0-9][0-9][0-9].nii.gz", "the folder holding the image parts and Mask/"):
        case_id = mask.name.removesuffix(".nii.gz")
        yield CaseFiles(case_id, (images.get(case_id, expected_image(mask.parent, case_id)),), mask)
