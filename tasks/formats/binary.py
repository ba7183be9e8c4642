"""Binary masks stored loosely: floats from interpolation, 0/255, or one value per instance.

MosMed's masks are floats that amid thresholds at 0.5, VESSEL12's lung masks are read as
non-zero = lung, and CT Lymph Nodes numbers each node; each becomes one target, value 1.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.formats.resample import match_axes
from tasks.readers import Read, read_sitk

THRESHOLD = 0.5


def binarise(label: sitk.Image) -> sitk.Image:
    """1 where the label exceeds 0.5, else 0 (uint8), on the label's own grid."""
    mask = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(label) > THRESHOLD).astype(np.uint8))
    mask.CopyInformation(label)
    return mask


def read_binary(case: CaseFiles) -> Read:
    """Image files as SimpleITK reads them; the label binarised and put in the image's axis order."""
    channels = [read_sitk(p) for p in case.images]
    label = None
    if case.label:
        label = binarise(match_axes(read_sitk(case.label), channels[0]))
    return channels, label
