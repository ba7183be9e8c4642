"""4D images as 3D volumes: MSD's stacked MR channels, and the labelled frames of a cine MR.

MSD BrainTumour and Prostate store their sequences as the 4th NIfTI axis (x, y, z, channel); M&Ms
stores the whole cardiac cycle as (x, y, z, t) for both the image and the ground truth, which is
non-zero only at the end-diastolic and end-systolic frames. Both become plain 3D volumes here.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.readers import Read, read_sitk
from tasks.volume import CaseError


def volume_at(image: sitk.Image, index: int, path: Path) -> sitk.Image:
    """The 3D volume at position ``index`` of a 4D image's last axis, keeping its spatial geometry."""
    if image.GetDimension() != 4:
        raise CaseError(f"{path}: expected a 4D image, found {image.GetDimension()}D of size {image.GetSize()}")
    size = list(image.GetSize())
    if not 0 <= index < size[3]:
        raise CaseError(f"{path}: index {index} is outside its 4th axis of length {size[3]}")
    size[3] = 0
    return sitk.Extract(image, size, [0, 0, 0, index], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)


def read_channels(case: CaseFiles) -> Read:
    """One file whose 4th axis holds the channels (3D files are one channel); a 3D label.

    ``case.extra["channels"]``, if given, is the comma-separated channel list the card expects; a
    file with another number of channels is refused rather than stored under wrong names.
    """
    image = read_sitk(case.images[0])
    channels = [image] if image.GetDimension() == 3 else [
        volume_at(image, c, case.images[0]) for c in range(image.GetSize()[3])
    ]
    expected = case.extra.get("channels")
    if expected is not None and len(channels) != len(expected.split(",")):
        raise CaseError(f"{case.images[0]}: has {len(channels)} channels, the card expects {expected}")
    label = read_sitk(case.label) if case.label else None
    return channels, label


def read_cine_frame(case: CaseFiles) -> Read:
    """The frame ``case.extra["frame"]`` (0-based) of a cine image and of its cine label.

    A 3D image or label is taken as the frame itself, so a release that ships frames as separate
    files can use the same reader. An empty frame of a 4D label means the frame index is wrong (the cine
    ground truth is labelled only at ED and ES), so it is refused rather than stored as no objects.
    """
    frame = int(case.extra["frame"])
    image = read_sitk(case.images[0])
    channel = image if image.GetDimension() == 3 else volume_at(image, frame, case.images[0])
    label = None
    if case.label:
        label = read_sitk(case.label)
        if label.GetDimension() == 4:
            label = volume_at(label, frame, case.label)
            if not sitk.GetArrayViewFromImage(label).any():
                raise CaseError(f"{case.label}: frame {frame} has no labelled voxel; is the ED/ES frame index right?")
    return [channel], label
