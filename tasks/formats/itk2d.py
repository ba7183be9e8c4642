"""Planar images stored in ITK formats (MetaImage ``.mhd``/``.mha``, NIfTI), spacing from the file.

Some releases store a 2D image as a 3D file: one slice (CAMUS's NIfTI frames) or, for FH-PS-AOP,
three slices that are the three colour channels of one ultrasound frame. Both become 2D images here
(three slices become one three-component image), so the case is stored with z = 1.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.readers import Read, read_sitk
from tasks.volume import CaseError


def planar(image: sitk.Image, path: Path, channels_as_slices: bool = False) -> sitk.Image:
    """``image`` as a 2D image: one slice dropped to 2D, or three slices composed into channels."""
    if image.GetDimension() == 2:
        return image
    depth = image.GetSize()[2]
    if depth == 1:
        return image[:, :, 0]
    if channels_as_slices and depth == 3 and image.GetNumberOfComponentsPerPixel() == 1:
        return sitk.Compose([image[:, :, k] for k in range(3)])
    raise CaseError(f"{path}: {depth} slices where one 2D image was expected")


def read_itk_2d(case: CaseFiles) -> Read:
    """One ITK image file (a 3-slice file is read as three channels) and its label file, both 2D."""
    image = planar(read_sitk(case.images[0]), case.images[0], channels_as_slices=True)
    label = planar(read_sitk(case.label), case.label) if case.label else None
    return [image], label
