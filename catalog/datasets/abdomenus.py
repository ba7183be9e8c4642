"""AbdomenUS: US simulation & segmentation, real and ray-cast synthetic abdominal ultrasound (Vitale et al. 2020).

Release facts relied on: the Kaggle archive holds ``abdominal_US/abdominal_US/{AUS,RUS}/images/
{train,test}/*.png`` with ``annotations/{train,test}/*.png`` of the same name; AUS are synthetic
(ray-cast from CT) and RUS real scans, kept as separate subsets. Only some RUS images have an
annotation; images without one are not ingested. Annotations are RGB colour codes, some with an alpha
channel: liver (100,0,100), kidney (255,255,0), pancreas (0,0,255), vessels (255,0,0), adrenals
(0,255,255), gallbladder (0,255,0), bones (255,255,255), spleen (255,0,255); background black, or
(10,10,10) in the synthetic images. Colours are matched within 8 per channel, near-black (<= 16) and
transparent pixels are background, and any other colour quarantines the case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, inner_folder
from tasks.formats.colourmap import read_abdomenus

# subset name -> folder in the release
KINDS = {"synthetic": "AUS", "real": "RUS"}
LABELS = {
    1: Target(name="liver", anatomy="liver"),
    2: Target(name="kidney", anatomy="kidney"),
    3: Target(name="pancreas", anatomy="pancreas"),
    4: Target(name="vessels", anatomy="abdominal-vessels"),
    5: Target(name="adrenal-glands", anatomy="adrenal-gland"),
    6: Target(name="gallbladder", anatomy="gallbladder"),
    7: Target(name="bones", anatomy="bone"),
    8: Target(name="spleen", anatomy="spleen"),
}


@dataset_card(
    id="abdomenus",
    name="AbdomenUS: US simulation & segmentation (real and synthetic abdominal ultrasound)",
    dimensionality=2,
    subsets=tuple(Subset(name=name, modality="us", region="abdomen", labels=LABELS, intensity=PercentileClip())
                  for name in KINDS),
    source=ManualSource(
        register_at="https://www.kaggle.com/datasets/ignaciorlando/ussimandsegm",
        what_to_pass="archive.zip from that Kaggle page, as downloaded or unzipped",
    ),
    license="Kaggle release without an explicit licence (n/v)",
    citation="Vitale S, Orlando JI, Iarussi E, Larrabide I. Improving realism in patient-specific abdominal ultrasound "
             "simulation using CycleGANs. Int J Comput Assist Radiol Surg 2020;15(2):183-192.",
    layout="abdominal_US/abdominal_US/{AUS,RUS}/{images,annotations}/{train,test}/<name>.png (RGB colour-coded labels)",
    cases=987,
    reader=read_abdomenus,
)
def abdomenus(root: Path) -> Iterator[CaseFiles]:
    """Each annotated image of the synthetic (AUS) and real (RUS) parts."""
    top = inner_folder(root, "abdominal_US")
    if top is None:
        return
    for subset, folder in KINDS.items():
        for split in ("train", "test"):
            for image in files_in(top / folder / "images" / split, (".png",)):
                annotation = top / folder / "annotations" / split / image.name
                if annotation.is_file():
                    yield CaseFiles(case_slug(folder, split, image.stem), (image,), annotation, subset=subset)
