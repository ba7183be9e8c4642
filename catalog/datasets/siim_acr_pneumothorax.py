"""SIIM-ACR Pneumothorax Segmentation (Kaggle 2019): chest radiographs, in two releases.

Release facts relied on. Competition release: ``dicom-images-train/<Study>/<Series>/<SOP>.dcm``
(1024x1024, pixel spacing in the file) with ``train-rle.csv`` (columns ``ImageId`` and
``" EncodedPixels"`` with a leading space), or stage 2's ``stage_2_train.csv`` (used instead when
present); the run lengths are relative and column-major, ``-1`` means no pneumothorax, and several
rows for one ``ImageId`` are OR-ed (``tasks/formats/rle.py``). DICOMs without any row (the unlabelled
test images) are not ingested. PNG mirror (Kaggle ``vbookshelf/pneumothorax-chest-xray-images-and-masks``,
the survey's 12,047): ``png_images/<i>_{train,test}_<0|1>_.png`` with ``png_masks/`` of the same
names, masks already decoded (0/255); no spacing in those files. Value 1 = pneumothorax.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders, walk_files
from tasks.formats.rle import read_siim

RLE_FILES = ("stage_2_train.csv", "train-rle.csv")  # in order of preference


def _subset(name: str) -> Subset:
    return Subset(name=name, modality="xray", region="chest", labels={1: Target(name="pneumothorax", anatomy="pleura")},
                  intensity=PercentileClip())


def read_rle_rows(path: Path) -> dict[str, list[str]]:
    """The run-length rows of each ``ImageId`` in a SIIM CSV (header names stripped of spaces)."""
    rows: dict[str, list[str]] = defaultdict(list)
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle, skipinitialspace=True):
            record = {k.strip(): (v or "").strip() for k, v in record.items() if k}
            rows[record["ImageId"]].append(record["EncodedPixels"])
    return rows


def _rle_csv(root: Path) -> Path | None:
    for name in RLE_FILES:
        found = [p for p in walk_files(root, (".csv",)) if p.name == name]
        if found:
            return found[0]
    return None


@dataset_card(
    id="siim_acr_pneumothorax",
    name="SIIM-ACR Pneumothorax Segmentation",
    dimensionality=2,
    subsets=(_subset("dicom"), _subset("png")),
    source=ManualSource(
        register_at="https://www.kaggle.com/competitions/siim-acr-pneumothorax-segmentation",
        what_to_pass="the competition data (dicom-images-train/ and train-rle.csv or stage_2_train.csv), or archive.zip "
                     "of the PNG mirror kaggle.com/datasets/vbookshelf/pneumothorax-chest-xray-images-and-masks",
    ),
    license="Kaggle competition rules (n/v)",
    citation="Zawacki A, Wu C, Shih G, et al. SIIM-ACR Pneumothorax Segmentation. Kaggle, 2019. "
             "https://kaggle.com/competitions/siim-acr-pneumothorax-segmentation",
    layout="dicom-images-train/<Study>/<Series>/<SOP>.dcm with run-length rows in train-rle.csv, or "
           "png_images/<i>_<split>_<0|1>_.png with png_masks/<same name>",
    cases=12047,
    reader=read_siim,
)
def siim_acr_pneumothorax(root: Path) -> Iterator[CaseFiles]:
    """DICOMs that have run-length rows, then PNG mirror images that have a mask."""
    csv_path = _rle_csv(root)
    if csv_path is not None:
        rows = read_rle_rows(csv_path)
        for dicom in walk_files(root, (".dcm",)):
            if dicom.stem in rows:
                yield CaseFiles(dicom.stem, (dicom,), None, subset="dicom", extra={"rle": "\n".join(rows[dicom.stem])})
    for images in top_folders(root, "png_images")[:1]:
        for image in files_in(images, (".png",)):
            mask = images.parent / "png_masks" / image.name
            if mask.is_file():
                yield CaseFiles(case_slug(image.stem), (image,), mask, subset="png")
