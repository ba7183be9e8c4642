"""DRIVE: Digital Retinal Images for Vessel Extraction (Utrecht, 2004).

Release facts relied on: ``training/images/21_training.tif`` (21..40, 565x584 RGB TIFF) with
``training/1st_manual/21_manual1.gif`` (vessels, 0/255) and ``training/mask/21_training_mask.gif``
(the field of view); ``test/images/01_test.tif`` (01..20) with ``test/mask/01_test_mask.gif``. The
original release also had ``test/1st_manual/01_manual1.gif`` (used when present) and ``2nd_manual``
(a second observer, not ingested); the grand-challenge copy withholds the test labels, and test
images without a manual label are not ingested. The FOV mask must have the image's size (else the
case is quarantined) and is checksummed with the case, but not stored: Dice and IoU ignore true
negatives and every vessel lies inside the FOV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, Passthrough, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_in, top_folders
from tasks.formats.planar import read_binary_with_fov

SPLITS = {"training": "train", "test": "test"}


@dataset_card(
    id="drive",
    name="DRIVE: Digital Retinal Images for Vessel Extraction",
    dimensionality=2,
    subsets=(Subset(modality="fundus", region="retina", labels={1: Target(name="retinal-vessels", anatomy="retina")},
                    intensity=Passthrough(), channels=("red", "green", "blue")),),
    source=ManualSource(
        register_at="https://drive.grand-challenge.org/",
        what_to_pass="the DRIVE download (training.zip and test.zip unzipped into one folder, or the DRIVE zip)",
    ),
    license="research use (n/v; MedSegBench lists CC BY 4.0)",
    citation="Staal J, Abramoff MD, Niemeijer M, Viergever MA, van Ginneken B. Ridge-based vessel segmentation in "
             "color images of the retina. IEEE Trans Med Imaging 2004;23(4):501-509.",
    layout="{training,test}/images/NN_<split>.tif with 1st_manual/NN_manual1.gif vessels and mask/NN_<split>_mask.gif FOV",
    cases=40,
    reader=read_binary_with_fov,
)
def drive(root: Path) -> Iterator[CaseFiles]:
    """Each split's TIFF images with their first-observer vessel GIF and FOV GIF."""
    for folder, split in SPLITS.items():
        for top in top_folders(root, folder)[:1]:
            for image in files_in(top / "images", (".tif", ".tiff")):
                number = image.stem.split("_")[0]
                manual = top / "1st_manual" / f"{number}_manual1.gif"
                fov = top / "mask" / f"{image.stem}_mask.gif"
                if not manual.is_file():
                    continue
                more = (fov,) if fov.is_file() else ()
                yield CaseFiles(f"{split}-{number}", (image,), manual, more=more)
