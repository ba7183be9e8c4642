"""COVID-QU-Ex (Qatar University, Tahir et al. 2021): lungs and COVID-19 infection in chest X-rays.

Release facts relied on: the Kaggle archive repeats its folder names and has spaces in them:
``Lung Segmentation Data/Lung Segmentation Data/{Train,Val,Test}/{COVID-19,Non-COVID,Normal}/
{images,lung masks}/*.png`` (33,920 images) and ``Infection Segmentation Data/Infection Segmentation
Data/{Train,Val,Test}/{COVID-19,Non-COVID,Normal}/{images,lung masks,infection masks}/*.png``
(5,826 images); masks carry the image's file name. Two subsets: ``lung`` (value 1 = lungs) and
``infection`` (value 1 = COVID-19 infection). Infection lies inside the lungs and one label map
cannot hold both, so the infection subset's lung masks are not ingested (its images are also in the
lung subset). Non-COVID and Normal images of the infection subset have empty infection masks: cases
with no objects. All files are 256x256; a mask of another size is resized to the image with nearest
neighbour when the aspect ratios match (within 1 %), and the case is quarantined when they do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, inner_folder
from tasks.formats.planar import read_binary

# subset -> (top folder as released, mask folder)
TASKS = {
    "lung": ("Lung Segmentation Data", "lung masks"),
    "infection": ("Infection Segmentation Data", "infection masks"),
}
SPLITS = ("Train", "Val", "Test")
CLASSES = ("COVID-19", "Non-COVID", "Normal")


@dataset_card(
    id="covid_qu_ex",
    name="COVID-QU-Ex",
    dimensionality=2,
    subsets=(
        Subset(name="lung", modality="xray", region="chest", labels={1: Target(name="lungs", anatomy="lung")},
               intensity=PercentileClip()),
        Subset(name="infection", modality="xray", region="chest",
               labels={1: Target(name="covid-19-infection", anatomy="lung")}, intensity=PercentileClip()),
    ),
    source=ManualSource(
        register_at="https://www.kaggle.com/datasets/anasmohammedtahir/covidqu",
        what_to_pass="archive.zip from that Kaggle page, as downloaded or unzipped",
    ),
    license="CC BY-SA 4.0 (per MedSegBench)",
    citation="Tahir AM, Chowdhury MEH, Khandakar A, et al. COVID-19 infection localization and severity grading from "
             "chest X-ray images. Comput Biol Med 2021;139:105002.",
    layout="'{Lung,Infection} Segmentation Data'/(same again)/{Train,Val,Test}/<class>/{images,'lung masks',"
           "'infection masks'}/<name>.png",
    cases=33920,
    reader=read_binary,
)
def covid_qu_ex(root: Path) -> Iterator[CaseFiles]:
    """Each task's images with the mask of the same name in its mask folder."""
    for subset, (top_name, mask_folder) in TASKS.items():
        data = inner_folder(root, top_name)
        if data is None:
            continue
        for split in SPLITS:
            for klass in CLASSES:
                folder = data / split / klass
                for image in files_in(folder / "images", (".png",)):
                    mask = folder / mask_folder / image.name
                    if mask.is_file():
                        yield CaseFiles(case_slug(subset, split, klass, image.stem), (image,), mask, subset=subset)
