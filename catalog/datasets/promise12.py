"""PROMISE12: prostate segmentation in T2-weighted MR (MICCAI 2012 grand challenge).

MetaImage ``.mhd``/``.raw``: ``training_data/Case00.mhd`` with ``Case00_segmentation.mhd`` in the same
folder (Case00-Case49; 0 background, 1 prostate). ``test_data`` (30 cases) and
``livechallenge_test_data`` (20) reuse the names Case00...; their labels were not released with
them, so a case is ingested only where a ``_segmentation.mhd`` lies beside it, and test-set case
ids carry their folder's name. Multi-centre, multi-vendor: some scans have an endorectal coil, and
slices are 2.2-4 mm thick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import is_junk, natural_key

HINT = "the folder holding training_data/ (CaseNN.mhd/.raw with CaseNN_segmentation.mhd/.raw), or its zip"


def _case_id(image: Path) -> str:
    folder = image.parent.name.lower()
    name = image.stem.lower()
    return name if "train" in folder else f"{folder}-{name}"


@dataset_card(
    id="promise12",
    name="PROMISE12: Prostate MR Image Segmentation 2012",
    dimensionality=3,
    subsets=(Subset(modality="mr", region="prostate", intensity=PercentileClip(),
                    labels={1: Target(name="prostate", anatomy="prostate")}),),
    source=ManualSource(
        register_at="https://promise12.grand-challenge.org (grand-challenge account; also re-published on Zenodo)",
        what_to_pass=HINT,
    ),
    license="PROMISE12 terms in the release's LICENSE.TXT (not verified)",
    citation="Litjens G, Toth R, van de Ven W, et al. Evaluation of prostate segmentation algorithms for MRI: "
             "the PROMISE12 challenge. Med Image Anal 2014;18(2):359-373.",
    layout="training_data/CaseNN.mhd + CaseNN_segmentation.mhd (NN = 00-49); test_data/ and livechallenge_test_data/ unlabelled",
    cases=50,  # labelled training cases (30 + 20 test cases have no released labels)
)
def promise12(root: Path) -> Iterator[CaseFiles]:
    """Every ``CaseNN.mhd`` with a ``CaseNN_segmentation.mhd`` beside it."""
    cases: dict[str, CaseFiles] = {}
    for label in sorted(root.rglob("Case*_segmentation.mhd"), key=natural_key):
        image = label.with_name(label.name.replace("_segmentation", ""))
        if is_junk(label) or not image.is_file() or _case_id(image) in cases:
            continue
        cases[_case_id(image)] = CaseFiles(_case_id(image), (image,), label)
    if not cases:
        raise ValueError(f"{root}: no CaseNN_segmentation.mhd beside a CaseNN.mhd; pass {HINT}")
    yield from (cases[k] for k in sorted(cases))
