"""COVID-19 Radiography Database (Qatar University and Dhaka University; Kaggle v4), lung masks.

Release facts relied on: ``COVID-19_Radiography_Dataset/{COVID,Lung_Opacity,Normal,Viral Pneumonia}/
{images,masks}/<class>-N.png`` (class folders are case-sensitive and ``Viral Pneumonia`` has a space),
plus per-class ``.xlsx`` metadata that is not read. The masks are lungs (both in one mask, 0/255), not
lesions. Images are 299x299 and masks 256x256: a mask is resized to its image with nearest neighbour
when the aspect ratios match (within 1 %), and the case is quarantined when they do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders
from tasks.formats.planar import read_binary

CLASSES = {"COVID": "covid", "Lung_Opacity": "lung-opacity", "Normal": "normal", "Viral Pneumonia": "viral-pneumonia"}


@dataset_card(
    id="covid19_radiography",
    name="COVID-19 Radiography Database",
    dimensionality=2,
    subsets=tuple(
        Subset(name=name, modality="xray", region="chest", labels={1: Target(name="lungs", anatomy="lung")},
               intensity=PercentileClip())
        for name in CLASSES.values()
    ),
    source=ManualSource(
        register_at="https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
        what_to_pass="archive.zip from that Kaggle page (version 4 or later), as downloaded or unzipped",
    ),
    license="academic and non-commercial use (per MedSegBench)",
    citation="Chowdhury MEH, Rahman T, Khandakar A, et al. Can AI help in screening Viral and COVID-19 pneumonia? "
             "IEEE Access 2020;8:132665-132676. Rahman T, Khandakar A, Qiblawey Y, et al. Exploring the effect of image "
             "enhancement techniques on COVID-19 detection using chest X-ray images. Comput Biol Med 2021;132:104319.",
    layout="COVID-19_Radiography_Dataset/<class>/{images,masks}/<class>-N.png (299x299 images, 256x256 lung masks)",
    cases=21165,
    reader=read_binary,
)
def covid19_radiography(root: Path) -> Iterator[CaseFiles]:
    """Each class's images with the mask of the same name."""
    for top in top_folders(root, "COVID-19_Radiography_Dataset")[:1]:
        for folder, subset in CLASSES.items():
            for image in files_in(top / folder / "images", (".png",)):
                mask = top / folder / "masks" / image.name
                if mask.is_file():
                    yield CaseFiles(case_slug(image.stem), (image,), mask, subset=subset)
