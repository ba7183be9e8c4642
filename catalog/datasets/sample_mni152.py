"""The MNI ICBM152 2009a symmetric T1 template with tissue labels, from nilearn's wheel.

The wheel ships the skull-stripped T1 average and grey/white-matter probability maps (x255), but no
label map; labels are derived at fetch time by thresholding the probabilities at 0.5: white matter
= 1 where P(WM) > 0.5, grey matter = 2 where P(GM) > 0.5 (the two cannot both exceed 0.5). These
are honest but hard targets for a box-prompted model (big, non-convex, on a blurry average brain).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from records.cards import CaseFiles, PackageSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card

DATA = "nilearn/datasets/data"
STEM = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
LABELS = "mni152_tissue_labels.nii.gz"
THRESHOLD = 0.5


def derive_labels(root: Path) -> None:
    """Write the thresholded WM (1) / GM (2) label map beside the template, once."""
    target = root / DATA / LABELS
    if target.exists():
        return
    wm = sitk.ReadImage(str(root / DATA / STEM.format("wm")))
    gm = sitk.ReadImage(str(root / DATA / STEM.format("gm")))
    labels = np.zeros(sitk.GetArrayViewFromImage(wm).shape, dtype=np.uint8)
    labels[sitk.GetArrayViewFromImage(wm) / 255.0 > THRESHOLD] = 1
    labels[sitk.GetArrayViewFromImage(gm) / 255.0 > THRESHOLD] = 2
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(wm)
    tmp = target.with_name(".tmp-" + LABELS)
    sitk.WriteImage(image, str(tmp), useCompression=True)
    tmp.rename(target)


@dataset_card(
    id="sample-mni152",
    name="MNI ICBM152 2009a template (nilearn)",
    dimensionality=3,
    subsets=(
        Subset(modality="mr", region="brain", intensity=PercentileClip(), labels={
            1: Target(name="white-matter", anatomy="brain"),
            2: Target(name="grey-matter", anatomy="brain"),
        }),
    ),
    source=PackageSource(
        requirement="nilearn==0.14.1",
        filename="nilearn-0.14.1-py3-none-any.whl",
        sha256="725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a",
        members=(f"{DATA}/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz",),
    ),
    license="MNI ICBM152 2009a copyright notice (permissive, keep the notice); nilearn BSD-3-Clause",
    citation="Fonov V et al. Unbiased average age-appropriate atlases for pediatric studies. NeuroImage 2011;54(1):313-327.",
    layout=f"{DATA}/{STEM.format('t1')} with derived {LABELS} (WM = 1 if P>0.5, GM = 2 if P>0.5)",
    prepare=derive_labels,
    cases=1,
)
def sample_mni152(root: Path) -> Iterator[CaseFiles]:
    """The single template case."""
    data = root / DATA
    yield CaseFiles("mni152-2009a", (data / STEM.format("t1"),), data / LABELS)
