"""BTCV: Multi-Atlas Labeling Beyond the Cranial Vault (MICCAI 2015), abdomen task.

Synapse's ``RawData.zip`` unpacks to ``RawData/Training/img/img0001.nii.gz`` with its label in
``RawData/Training/label/label0001.nii.gz`` (30 labelled portal-venous CTs, numbered with gaps);
the 20 test CTs (``RawData/Testing/img``, ``Test`` in some copies) have no public labels and are not
ingested. Label 10 is the portal and splenic veins together; the adrenal glands (12, 13) are tiny,
and the survey names them a SAM failure case. ``CervixRawData.zip`` is a separate task, not this card.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import is_junk, natural_key

LABELS = {
    1: Target(name="spleen", anatomy="spleen"),
    2: Target(name="right-kidney", anatomy="kidney"),
    3: Target(name="left-kidney", anatomy="kidney"),
    4: Target(name="gallbladder", anatomy="gallbladder"),
    5: Target(name="esophagus", anatomy="esophagus"),
    6: Target(name="liver", anatomy="liver"),
    7: Target(name="stomach", anatomy="stomach"),
    8: Target(name="aorta", anatomy="vessels"),
    9: Target(name="inferior-vena-cava", anatomy="vessels"),
    10: Target(name="portal-and-splenic-vein", anatomy="vessels"),
    11: Target(name="pancreas", anatomy="pancreas"),
    12: Target(name="right-adrenal-gland", anatomy="adrenal-gland"),
    13: Target(name="left-adrenal-gland", anatomy="adrenal-gland"),
}
HINT = "RawData.zip from Synapse syn3193805 (or the RawData/ folder it unpacks to)"


@dataset_card(
    id="btcv",
    name="BTCV: Multi-Atlas Labeling Beyond the Cranial Vault (abdomen)",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"), labels=LABELS),),
    source=ManualSource(
        register_at="https://www.synapse.org/#!Synapse:syn3193805 (Synapse account, then join the challenge)",
        what_to_pass=HINT,
    ),
    license="Synapse terms of use for syn3193805 (not verified)",
    citation="Landman B, Xu Z, Iglesias JE, Styner M, Langerak TR, Klein A. MICCAI Multi-Atlas Labeling Beyond "
             "the Cranial Vault - Workshop and Challenge. 2015. doi:10.7303/syn3193805.",
    layout="RawData/Training/img/imgNNNN.nii.gz with RawData/Training/label/labelNNNN.nii.gz; RawData/Test*/img unlabelled",
    cases=30,  # labelled training CTs (the 20 test CTs have no public labels)
)
def btcv(root: Path) -> Iterator[CaseFiles]:
    """Every ``img/imgNNNN.nii.gz`` with a ``label/labelNNNN.nii.gz`` beside its folder."""
    seen: dict[str, CaseFiles] = {}
    for image in sorted(root.rglob("img/img*.nii.gz"), key=natural_key):
        number = image.name.removeprefix("img").removesuffix(".nii.gz")
        label = image.parent.parent / "label" / f"label{number}.nii.gz"
        if is_junk(image) or not label.is_file() or f"img{number}" in seen:
            continue
        seen[f"img{number}"] = CaseFiles(f"img{number}", (image,), label)
    if not seen:
        raise ValueError(f"{root}: no img/imgNNNN.nii.gz with a label/labelNNNN.nii.gz; pass {HINT}")
    yield from (seen[k] for k in sorted(seen))
