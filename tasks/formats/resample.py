"""Putting a label onto its image's voxel grid: exact axis reordering, or nearest-neighbour resampling.

Some releases store a label on the image's grid but with its axes permuted or flipped (a NIfTI
written RAS beside a DICOM series read LPS): reordering the axes is lossless. Others (NCI-ISBI's
NRRD labels) store the label on a grid of their own; it is resampled onto the image by nearest
neighbour, but only after checking that both cover the same region, so a label of another scan is
quarantined rather than silently cropped or padded.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tasks.volume import CaseError

Bounds = tuple[np.ndarray, np.ndarray]


def match_axes(label: sitk.Image, image: sitk.Image) -> sitk.Image:
    """``label`` with its axes permuted and flipped into the image's orientation (no interpolation).

    The result still has to pass the same-grid check: this only undoes a different axis order.
    """
    if label.GetDimension() != 3 or image.GetDimension() != 3:
        return label
    orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines
    want = orientation(image.GetDirection())
    if orientation(label.GetDirection()) == want:
        return label
    return sitk.DICOMOrient(label, want)


def world_bounds(origin: tuple, spacing: tuple, direction: tuple, size: tuple) -> Bounds:
    """Axis-aligned (min, max) corners in mm of the region a 3D grid covers (voxel edges, not centres)."""
    matrix = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing, dtype=float)
    corners = np.array([[i - 0.5 for i in c] for c in product(*[(0, n) for n in size])])
    world = corners @ matrix.T + np.asarray(origin, dtype=float)
    return world.min(axis=0), world.max(axis=0)


def image_bounds(image: sitk.Image) -> Bounds:
    """The world bounds of an ITK image."""
    return world_bounds(image.GetOrigin(), image.GetSpacing(), image.GetDirection(), image.GetSize())


def bounds_mismatch(a: Bounds, b: Bounds) -> float:
    """The largest distance in mm between corresponding faces of two bounding boxes."""
    return float(np.abs(np.concatenate([a[0] - b[0], a[1] - b[1]])).max())


def resample_onto(label: sitk.Image, image: sitk.Image, label_path: Path) -> sitk.Image:
    """``label`` resampled onto ``image``'s grid by nearest neighbour, after checking both cover one region.

    The tolerance is the coarsest voxel of either grid: labels drawn on the same scan differ by at
    most rounding of a voxel edge, while a label of another scan or field of view differs by more.
    """
    if label.GetDimension() != 3:
        raise CaseError(f"{label_path}: label has {label.GetDimension()} dimensions, the image 3")
    mine, theirs = image_bounds(label), image_bounds(image)
    tolerance = max(max(label.GetSpacing()), max(image.GetSpacing()))
    if bounds_mismatch(mine, theirs) > tolerance:
        raise CaseError(
            f"{label_path}: label covers {np.round(mine[0], 1).tolist()}..{np.round(mine[1], 1).tolist()} mm but the "
            f"image covers {np.round(theirs[0], 1).tolist()}..{np.round(theirs[1], 1).tolist()} mm; not the same region"
        )
    values = sitk.GetArrayViewFromImage(label)
    if not np.array_equal(values, np.round(values)):
        raise CaseError(f"{label_path}: label holds non-integer values; it is not a label map")
    pixel = sitk.sitkUInt16 if values.max(initial=0) > 255 else sitk.sitkUInt8
    integer = sitk.Cast(label, pixel) if label.GetPixelID() != pixel else label
    return sitk.Resample(integer, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, pixel)
