"""GlaS: gland segmentation in colon histology (Warwick-QU, MICCAI 2015 challenge).

Release facts relied on: one flat folder (``Warwick QU Dataset (Released 2016_07_08)/`` in the
official zip) of RGB BMPs ``train_N.bmp`` (85), ``testA_N.bmp`` (60) and ``testB_N.bmp`` (20), each
with ``<name>_anno.bmp``, plus ``Grade.csv``. The annotation is an *instance* map (0 = background,
1..N = one value per gland). It is binarised here (value 1 = gland, every instance): the survey
counts one target, and the ``objects`` rows keep the gland count as ``components`` (8-connected,
so touching glands count once). openmedlab's tree spells one file ``_anoo``: that is a typo there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, Passthrough, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, walk_files
from tasks.formats.planar import read_instances

ANNOTATION = "_anno"


@dataset_card(
    id="glas",
    name="GlaS@MICCAI 2015 Gland Segmentation (Warwick-QU)",
    dimensionality=2,
    subsets=(Subset(modality="pathology", region="colon", labels={1: Target(name="gland", anatomy="colon")},
                    intensity=Passthrough(), channels=("red", "green", "blue")),),
    source=ManualSource(
        register_at="https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/",
        what_to_pass="warwick_qu_dataset_released_2016_07_08.zip (or the Kaggle copy sani84/glasmiccai2015-gland-segmentation)",
    ),
    license="GlaS contest data: research use only (n/v)",
    citation="Sirinukunwattana K, Pluim JPW, Chen H, et al. Gland segmentation in colon histology images: "
             "The GlaS challenge contest. Med Image Anal 2017;35:489-502.",
    layout="Warwick QU Dataset (Released 2016_07_08)/{train,testA,testB}_N.bmp with <name>_anno.bmp instance maps "
           "(binarised: every gland = 1)",
    cases=165,
    reader=read_instances,
)
def glas(root: Path) -> Iterator[CaseFiles]:
    """Every ``<name>.bmp`` that has a ``<name>_anno.bmp`` beside it."""
    for image in walk_files(root, (".bmp",)):
        if image.stem.endswith(ANNOTATION):
            continue
        annotation = image.with_name(f"{image.stem}{ANNOTATION}{image.suffix}")
        if annotation.is_file():
            yield CaseFiles(case_slug(image.stem), (image,), annotation)
