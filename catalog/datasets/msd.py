"""Medical Segmentation Decathlon (MSD): ten tasks, one card, one subset per task.

The survey counts MSD as one dataset (row 12, CT and MR, "multiple" anatomy), so it is one card;
each task is a subset because each has its own modality, label map, intensity preset and channels.
Each task ships as ``TaskXX_Name.tar`` holding ``TaskXX_Name/{imagesTr,labelsTr,imagesTs}/*.nii.gz``
and ``dataset.json``; only ``imagesTr`` has labels, so only those cases are ingested. BrainTumour and
Prostate images are 4D (the sequences on the 4th axis) and are split into named channels.
The tars carry macOS ``._*`` files, which are skipped. Task03 Liver is LiTS and Task01 is
derived from BraTS 2016/17, so those overlap with the ``lits`` and ``brats2023`` cards.

The tars are openly hosted on AWS for MONAI; the URLs and MD5 sums below are MONAI's
(``monai.apps.datasets.DecathlonDataset.resource`` and ``.md5``, MONAI 1.6.1), recorded here as
data: samatlas does not import MONAI. ``samatlas fetch msd --subset Task04_Hippocampus`` fetches one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from catalog.registry import dataset_card
from records.cards import CaseFiles, CTWindow, PercentileClip, Subset, Target, UrlSource
from tasks.formats.release import find
from tasks.formats.split4d import read_channels

SOFT_TISSUE = CTWindow(preset="ct-soft-tissue")
LUNG = CTWindow(preset="ct-lung")

# Task folder -> subset; label values and channel order as each task's dataset.json states them.
TASKS: dict[str, Subset] = {
    "Task01_BrainTumour": Subset(
        name="task01-braintumour", modality="mr", region="brain", intensity=PercentileClip(),
        channels=("flair", "t1w", "t1gd", "t2w"), labels={
            1: Target(name="edema", anatomy="brain"),
            2: Target(name="non-enhancing-tumour", anatomy="brain"),
            3: Target(name="enhancing-tumour", anatomy="brain"),
        }),
    "Task02_Heart": Subset(
        name="task02-heart", modality="mr", region="heart", intensity=PercentileClip(),
        labels={1: Target(name="left-atrium", anatomy="heart")}),
    "Task03_Liver": Subset(
        name="task03-liver", modality="ct", region="abdomen", intensity=SOFT_TISSUE, labels={
            1: Target(name="liver", anatomy="liver"),
            2: Target(name="liver-tumour", anatomy="liver"),
        }),
    "Task04_Hippocampus": Subset(
        name="task04-hippocampus", modality="mr", region="brain", intensity=PercentileClip(), labels={
            1: Target(name="hippocampus-anterior", anatomy="brain"),
            2: Target(name="hippocampus-posterior", anatomy="brain"),
        }),
    "Task05_Prostate": Subset(
        name="task05-prostate", modality="mr", region="prostate", intensity=PercentileClip(),
        channels=("t2", "adc"), labels={
            1: Target(name="prostate-peripheral-zone", anatomy="prostate"),
            2: Target(name="prostate-transition-zone", anatomy="prostate"),
        }),
    "Task06_Lung": Subset(
        name="task06-lung", modality="ct", region="chest", intensity=LUNG,
        labels={1: Target(name="lung-tumour", anatomy="lung")}),
    "Task07_Pancreas": Subset(
        name="task07-pancreas", modality="ct", region="abdomen", intensity=SOFT_TISSUE, labels={
            1: Target(name="pancreas", anatomy="pancreas"),
            2: Target(name="pancreas-tumour", anatomy="pancreas"),
        }),
    "Task08_HepaticVessel": Subset(
        name="task08-hepaticvessel", modality="ct", region="abdomen", intensity=SOFT_TISSUE, labels={
            1: Target(name="hepatic-vessel", anatomy="liver"),
            2: Target(name="liver-tumour", anatomy="liver"),
        }),
    "Task09_Spleen": Subset(
        name="task09-spleen", modality="ct", region="abdomen", intensity=SOFT_TISSUE,
        labels={1: Target(name="spleen", anatomy="spleen")}),
    "Task10_Colon": Subset(
        name="task10-colon", modality="ct", region="abdomen", intensity=SOFT_TISSUE,
        labels={1: Target(name="colon-tumour", anatomy="colon")}),
}

AWS = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
# Task -> the tar's MD5 as MONAI publishes it (monai/apps/datasets.py, DecathlonDataset.md5).
MD5 = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}


@dataset_card(
    id="msd",
    name="Medical Segmentation Decathlon",
    dimensionality=3,
    subsets=tuple(TASKS.values()),
    source=UrlSource(
        files={f"{task}.tar": (f"{AWS}/{task}.tar", md5) for task, md5 in MD5.items()},
        algorithm="md5",
        subsets={f"{task}.tar": TASKS[task].name for task in MD5},
    ),
    license="CC BY-SA 4.0 (per medicaldecathlon.com; not verified here)",
    citation="Antonelli M et al. The Medical Segmentation Decathlon. Nat Commun 2022;13:4128.",
    layout="TaskXX_Name/{imagesTr,labelsTr,imagesTs}/<case>.nii.gz + dataset.json per task; "
           "BrainTumour and Prostate images are 4D (channels last)",
    cases=2633,  # volumes in the ten tasks (1,411 CT + 1,222 MR); the labelled imagesTr ones are ingested
    reader=read_channels,
)
def msd(root: Path) -> Iterator[CaseFiles]:
    """Every labelled case of every task folder found, as ``<official file stem>`` in the task's subset."""
    for label in find(root, "labelsTr/*.nii.gz", "a TaskXX_Name folder or tar, or a folder holding several"):
        task = label.parent.parent.name
        if task not in TASKS:
            raise ValueError(f"{label.parent.parent}: not an MSD task folder; expected one of {sorted(TASKS)}")
        subset = TASKS[task]
        extra = {"channels": ",".join(subset.channels)} if len(subset.channels) > 1 else {}
        image = label.parent.parent / "imagesTr" / label.name
        yield CaseFiles(label.name.removesuffix(".nii.gz"), (image,), label, subset=subset.name, extra=extra)
