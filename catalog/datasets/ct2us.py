"""CT2US: synthetic kidney ultrasound generated from CT slices (Song et al., Ultrasonics 2022).

Release facts relied on: the Kaggle archive repeats its folder names: ``slice/slice/*.png`` images
with ``mask/mask/*.png`` masks of the same name. All images are synthetic (CycleGAN from annotated CT,
believed to be KiTS19, n/v). Masks are binarised at >= 128 (value 1 = kidney).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, inner_folder
from tasks.formats.planar import read_binary


@dataset_card(
    id="ct2us",
    name="CT2US for Kidney Segmentation",
    dimensionality=2,
    subsets=(Subset(name="synthetic", modality="us", region="abdomen",
                    labels={1: Target(name="kidney", anatomy="kidney")}, intensity=PercentileClip()),),
    source=ManualSource(
        register_at="https://www.kaggle.com/datasets/siatsyx/ct2usforkidneyseg",
        what_to_pass="archive.zip from that Kaggle page, as downloaded or unzipped",
    ),
    license="GPL-2.0 (per MedSegBench)",
    citation="Song Y, Zheng J, Lei L, et al. CT2US: Cross-modal transfer learning for kidney segmentation in "
             "ultrasound images with synthesized data. Ultrasonics 2022;122:106706.",
    layout="slice/slice/<name>.png with mask/mask/<name>.png (kidney >= 128)",
    cases=4586,
    reader=read_binary,
)
def ct2us(root: Path) -> Iterator[CaseFiles]:
    """Each image with the mask of the same name."""
    images, masks = inner_folder(root, "slice"), inner_folder(root, "mask")
    if images is None or masks is None:
        return
    for image in files_in(images, (".png",)):
        mask = masks / image.name
        if mask.is_file():
            yield CaseFiles(case_slug(image.stem), (image,), mask, subset="synthetic")
