"""PolypGen (EndoCV2021): multi-centre colonoscopy frames with polyp masks (Ali et al., Sci Data 2023).

Release facts relied on: ``PolypGen2021_MultiCenterData_v3/data_C1..C6/images_C*/<stem>.jpg`` with
``masks_C*/<stem>_mask.jpg`` (plus ``bbox_C*`` VOC boxes and ``bbox_image_C*``, not read; C3 lacks 64
box files); ``sequenceData/positive/seqN/{images_seqN,masks_seqN}`` in the same naming; and
``sequenceData/negativeOnly/seqN_neg/`` frames without polyps and without mask files. The masks are
JPEG, so they are thresholded at >= 128 (value 1 = polyp). Negative frames are ingested as cases with
no mask and no objects (subset ``negative``); ``imagesAll_positive/`` repeats positive frames and is
skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, Passthrough, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders, walk_files
from tasks.formats.planar import read_binary

PICTURES = (".jpg", ".jpeg", ".png")


def _subset(name: str) -> Subset:
    return Subset(name=name, modality="endoscopy", region="colon", labels={1: Target(name="polyp", anatomy="colon")},
                  intensity=Passthrough(), channels=("red", "green", "blue"))


def _with_masks(images: Path, masks: Path, prefix: str, subset: str) -> Iterator[CaseFiles]:
    """Images of one folder paired with ``<stem>_mask.<any picture suffix>`` in ``masks``."""
    by_stem = {p.stem: p for p in files_in(masks, PICTURES)}
    for image in files_in(images, PICTURES):
        mask = by_stem.get(f"{image.stem}_mask")
        if mask is not None:
            yield CaseFiles(case_slug(prefix, image.stem), (image,), mask, subset=subset)


@dataset_card(
    id="polypgen",
    name="PolypGen (EndoCV2021 multi-centre polyp dataset)",
    dimensionality=2,
    subsets=(_subset("single-frame"), _subset("sequence"), _subset("negative")),
    source=ManualSource(
        register_at="https://www.synapse.org/#!Synapse:syn26376615",
        what_to_pass="PolypGen2021_MultiCenterData_v3.zip (or the unzipped PolypGen2021_MultiCenterData_v3 folder)",
    ),
    license="CC BY 4.0",
    citation="Ali S, Jha D, Ghatwary N, et al. A multi-centre polyp detection and segmentation dataset for "
             "generalisability assessment. Sci Data 2023;10:75.",
    layout="PolypGen2021_MultiCenterData_v3/data_C1..C6/{images_CN/<stem>.jpg, masks_CN/<stem>_mask.jpg} and "
           "sequenceData/{positive/seqN/{images_seqN,masks_seqN}, negativeOnly/seqN_neg}",
    cases=8037,
    reader=read_binary,
)
def polypgen(root: Path) -> Iterator[CaseFiles]:
    """Single frames by centre, positive sequence frames, then negative frames (no masks)."""
    for top in top_folders(root, "PolypGen2021_MultiCenterData_v3")[:1]:
        for centre in sorted(p for p in top.glob("data_C*") if p.is_dir()):
            n = centre.name.removeprefix("data_")
            yield from _with_masks(centre / f"images_{n}", centre / f"masks_{n}", n, "single-frame")
        for sequence in sorted(p for p in (top / "sequenceData" / "positive").glob("seq*") if p.is_dir()):
            n = sequence.name
            yield from _with_masks(sequence / f"images_{n}", sequence / f"masks_{n}", n, "sequence")
        negatives = top / "sequenceData" / "negativeOnly"
        for image in walk_files(negatives, PICTURES) if negatives.is_dir() else ():
            sequence = image.relative_to(negatives).parts[0]
            yield CaseFiles(case_slug("neg", sequence, image.stem), (image,), None, subset="negative")
