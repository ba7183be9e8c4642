"""REFUGE: Retinal Fundus Glaucoma Challenge (MICCAI-OMIA 2018), optic disc and cup.

Release facts relied on: training images ``REFUGE-Training400/Training400/{Glaucoma/g0001.jpg,
Non-Glaucoma/n0001.jpg}`` with ``Annotation-Training400/Disc_Cup_Masks/{Glaucoma,Non-Glaucoma}/g0001.bmp``;
validation ``REFUGE-Validation400/V0001.jpg`` with ``REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp``;
test ``REFUGE-Test400/T0001.jpg`` with ``REFUGE-Test-GT/Disc_Cup_Masks/{G,N}/T0001.bmp``. Mask values are
inverted against the usual convention: 0 = cup, 128 = disc rim, 255 = background; they become
1 = optic cup and 2 = disc rim (the whole disc is 1 and 2 together: one label map cannot also hold
the disc as its own, overlapping, label). Any other grey level quarantines the case. Training images
(2124x2056) and validation/test images (1634x1634) come from different cameras.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, Passthrough, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import top_folders, walk_files
from tasks.formats.greylevels import read_refuge

# split -> (image folder, mask folder) as the release names them
SPLITS = {
    "train": ("REFUGE-Training400", "Annotation-Training400"),
    "val": ("REFUGE-Validation400", "REFUGE-Validation400-GT"),
    "test": ("REFUGE-Test400", "REFUGE-Test-GT"),
}


@dataset_card(
    id="refuge",
    name="REFUGE: Retinal Fundus Glaucoma Challenge",
    dimensionality=2,
    subsets=(Subset(modality="fundus", region="retina", labels={
        1: Target(name="optic-cup", anatomy="optic-disc"),
        2: Target(name="optic-disc-rim", anatomy="optic-disc"),
    }, intensity=Passthrough(), channels=("red", "green", "blue")),),
    source=ManualSource(
        register_at="https://refuge.grand-challenge.org/",
        what_to_pass="a folder holding REFUGE-Training400, Annotation-Training400, REFUGE-Validation400(-GT) and "
                     "REFUGE-Test400 / REFUGE-Test-GT as unzipped",
    ),
    license="REFUGE challenge terms (n/v)",
    citation="Orlando JI, Fu H, Barbosa Breda J, et al. REFUGE Challenge: A unified framework for evaluating automated "
             "methods for glaucoma assessment from fundus photographs. Med Image Anal 2020;59:101570.",
    layout="REFUGE-{Training400,Validation400,Test400}/**/<id>.jpg with Disc_Cup_Masks/**/<id>.bmp "
           "(0 = cup, 128 = rim, 255 = background)",
    cases=1200,
    reader=read_refuge,
)
def refuge(root: Path) -> Iterator[CaseFiles]:
    """Each split's JPEGs paired by name with the BMP masks anywhere under its mask folder."""
    for split, (image_folder, mask_folder) in SPLITS.items():
        masks = {p.stem: p for top in top_folders(root, mask_folder) for p in walk_files(top, (".bmp",))}
        for top in top_folders(root, image_folder)[:1]:
            for image in walk_files(top, (".jpg", ".jpeg")):
                mask = masks.get(image.stem)
                if mask is not None:
                    yield CaseFiles(f"{split}-{image.stem.lower()}", (image,), mask)
