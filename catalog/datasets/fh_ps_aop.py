"""FH-PS-AOP: pubic symphysis and fetal head segmentation in transperineal ultrasound (MICCAI 2023).

Release facts relied on: Zenodo 7851339's zip holds ``Pubic Symphysis-Fetal Head Segmentation and
Angle of Progression/image_mha/03744.mha`` with ``label_mha/03744.mha`` (same name); labels
0 = background, 1 = pubic symphysis, 2 = fetal head. The image files hold the frame's three colour
channels as three slices (n/v; loaders read them "with channels"), stored here as c = 3; a 2D or
single-slice file is stored as c = 1. Spacing comes from the files. The raw JNU-IFM frames (PNG,
symphysis = 7, head = 8) are another encoding and are not read by this card; the later PSFHS test
set (Zenodo 10969427) has the same layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_in, top_folders
from tasks.formats.itk2d import read_itk_2d


@dataset_card(
    id="fh_ps_aop",
    name="Pubic Symphysis-Fetal Head Segmentation and Angle of Progression (FH-PS-AOP)",
    dimensionality=2,
    subsets=(Subset(modality="us", region="transperineal", labels={
        1: Target(name="pubic-symphysis", anatomy="pelvis"),
        2: Target(name="fetal-head", anatomy="fetus"),
    }, intensity=PercentileClip()),),
    source=ManualSource(
        register_at="https://zenodo.org/records/7851339",
        what_to_pass="'Pubic Symphysis-Fetal Head Segmentation and Angle of Progression.zip' from Zenodo 7851339",
    ),
    license="CC BY-NC 4.0 (per MedSegBench)",
    citation="Lu Y, Zhou M, Zhi D, et al. The JNU-IFM dataset for segmenting pubic symphysis-fetal head. "
             "Data in Brief 2022;41:107904.",
    layout="Pubic Symphysis-Fetal Head Segmentation and Angle of Progression/{image_mha,label_mha}/NNNNN.mha "
           "(1 = pubic symphysis, 2 = fetal head)",
    cases=4000,
    reader=read_itk_2d,
)
def fh_ps_aop(root: Path) -> Iterator[CaseFiles]:
    """Each ``image_mha/<id>.mha`` with the ``label_mha/<id>.mha`` of the same name."""
    for images in top_folders(root, "image_mha")[:1]:
        for image in files_in(images, (".mha",)):
            label = images.parent / "label_mha" / image.name
            if label.is_file():
                yield CaseFiles(image.stem, (image,), label)
