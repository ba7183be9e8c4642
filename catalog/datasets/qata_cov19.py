"""QaTa-COV19 v2 (Qatar University and Tampere University): COVID-19 infection in chest X-rays.

Release facts relied on: ``QaTa-COV19-v2/{Train Set,Test Set}/Images/<id>.png`` with
``Ground-truths/mask_<id>.png`` (the ground truth name is ``mask_`` + the image name); masks are 0/255,
value 1 = infection here. The LViT text-prompt variant (``Train_Folder/img``, ``labelcol``) is another
layout and is not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders
from tasks.formats.planar import read_binary

SPLITS = {"Train Set": "train", "Test Set": "test"}


@dataset_card(
    id="qata_cov19",
    name="QaTa-COV19 (v2)",
    dimensionality=2,
    subsets=(Subset(modality="xray", region="chest", labels={1: Target(name="covid-19-infection", anatomy="lung")},
                    intensity=PercentileClip()),),
    source=ManualSource(
        register_at="https://www.kaggle.com/datasets/aysendegerli/qatacov19-dataset",
        what_to_pass="archive.zip from that Kaggle page, as downloaded or unzipped",
    ),
    license="not recorded (Kaggle release)",
    citation="Degerli A, Ahishali M, Yamac M, et al. COVID-19 infection map generation and detection from chest X-ray "
             "images. Health Inf Sci Syst 2021;9:15.",
    layout="QaTa-COV19-v2/{Train Set,Test Set}/Images/<id>.png with Ground-truths/mask_<id>.png",
    cases=9258,
    reader=read_binary,
)
def qata_cov19(root: Path) -> Iterator[CaseFiles]:
    """Each split's images with their ``mask_``-prefixed ground truth."""
    for top in top_folders(root, "QaTa-COV19-v2")[:1]:
        for folder, split in SPLITS.items():
            for image in files_in(top / folder / "Images", (".png",)):
                mask = top / folder / "Ground-truths" / f"mask_{image.name}"
                if mask.is_file():
                    yield CaseFiles(case_slug(split, image.stem), (image,), mask)
