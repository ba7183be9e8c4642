"""BUSI: breast ultrasound images with tumour masks (Baheya Hospital, Cairo; Al-Dhabyani et al. 2020).

Release facts relied on: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/`` holds ``benign (1).png``
(names with spaces and round brackets) beside ``benign (1)_mask.png``; an image with several lesions
has further ``_mask_1.png``, ``_mask_2.png`` files, OR-ed into one mask here. Masks are 0/255 and may be
stored as RGB. Normal images come with empty masks: they are kept as cases with no objects (their
subset says "normal", so a report can count them apart). Images are read as stored (grey or RGB).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders
from tasks.formats.planar import read_binary

CLASSES = ("benign", "malignant", "normal")
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<n>\d+))?$")


def _subset(name: str, target: str) -> Subset:
    return Subset(name=name, modality="us", region="breast", labels={1: Target(name=target, anatomy="breast")},
                  intensity=PercentileClip())


@dataset_card(
    id="busi",
    name="Breast Ultrasound Images (BUSI)",
    dimensionality=2,
    subsets=(_subset("benign", "benign-tumour"), _subset("malignant", "malignant-tumour"),
             _subset("normal", "breast-lesion")),
    source=ManualSource(
        register_at="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
        what_to_pass="Dataset_BUSI.zip (or the Kaggle copy aryashah2k/breast-ultrasound-images-dataset), "
                     "as downloaded or unzipped",
    ),
    license="CC0 1.0 for the Kaggle copy (per MedSegBench); the paper is CC BY 4.0",
    citation="Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. Data in Brief 2020;28:104863.",
    layout="Dataset_BUSI_with_GT/<class>/'<class> (N).png' with '<class> (N)_mask.png' and optional '_mask_K.png' "
           "(OR-ed); normal images have empty masks",
    cases=780,
    reader=read_binary,
)
def busi(root: Path) -> Iterator[CaseFiles]:
    """Pair each image with all of its ``_mask`` files; images without any mask file are skipped."""
    for top in top_folders(root, "Dataset_BUSI_with_GT")[:1]:
        for klass in CLASSES:
            images, masks = [], defaultdict(list)
            for path in files_in(top / klass, (".png",)):
                match = _MASK.match(path.stem)
                if match:
                    masks[match["stem"]].append((int(match["n"] or 0), path))
                else:
                    images.append(path)
            for image in images:
                found = [p for _, p in sorted(masks.get(image.stem, []))]
                if found:
                    yield CaseFiles(case_slug(image.stem), (image,), found[0], subset=klass, more=tuple(found[1:]))
