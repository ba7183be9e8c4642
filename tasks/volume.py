"""A case as arrays in samatlas's canonical orientation, with the geometry needed to score it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

CANONICAL = "LPS"  # DICOM patient axes: array x runs to the left, y to posterior, z to superior
# Metadata key a reader sets on an ITK image whose file holds no pixel spacing (PNG, JPEG, raw): its
# spacing of 1.0 is an assumption, which the store's attrs then say (``spacing_from_file: false``).
SPACING_ASSUMED = "samatlas:spacing_assumed"


class CaseError(ValueError):
    """A case that cannot be ingested; the message names the file and the problem."""


@dataclass
class Volume:
    """Image ``(c, z, y, x)`` and integer mask ``(z, y, x)`` on one grid; spacing in array order (mm).

    :func:`to_volume` leaves the mask in its file's dtype; :func:`check_label_values` checks it and
    gives the uint8/uint16 mask that is stored.
    """

    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    original_affine: list[list[float]]
    spacing_from_file: bool = True


def affine(image: sitk.Image) -> list[list[float]]:
    """The 4x4 index-to-LPS-world matrix of an ITK image (3D; 2D images get an identity z row)."""
    dim = image.GetDimension()
    direction = np.eye(3)
    direction[:dim, :dim] = np.asarray(image.GetDirection()).reshape(dim, dim)
    spacing = np.ones(3)
    spacing[:dim] = image.GetSpacing()
    origin = np.zeros(3)
    origin[:dim] = image.GetOrigin()
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing
    matrix[:3, 3] = origin
    return matrix.tolist()


def mark_spacing_assumed(image: sitk.Image) -> sitk.Image:
    """Flag ``image`` as having no spacing in its file (its 1.0 mm spacing is assumed); returns it."""
    image.SetMetaData(SPACING_ASSUMED, "1")
    return image


def spacing_assumed(image: sitk.Image) -> bool:
    """True if a reader flagged ``image``'s spacing as assumed rather than read from its file."""
    return image.HasMetaDataKey(SPACING_ASSUMED)


def rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    """Geometry values as plain floats to 4 decimals, for error messages."""
    return tuple(round(float(v), 4) for v in values)


def check_same_grid(image: sitk.Image, label: sitk.Image, image_path: Path, label_path: Path, role: str = "label") -> None:
    """Raise CaseError unless ``label`` (a label, or another ``role`` such as a channel) lies on the image's grid."""
    if image.GetSize() != label.GetSize():
        raise CaseError(f"{label_path}: {role} size {label.GetSize()} differs from image {image_path.name} size {image.GetSize()}")
    checks = {
        "spacing": (image.GetSpacing(), label.GetSpacing(), 1e-3),
        "origin": (image.GetOrigin(), label.GetOrigin(), 1e-2),
        "direction": (image.GetDirection(), label.GetDirection(), 1e-3),
    }
    for what, (a, b, tol) in checks.items():
        if not np.allclose(a, b, atol=tol, rtol=1e-4):
            raise CaseError(f"{label_path}: {role} {what} {rounded(b)} differs from image {rounded(a)}")


def _named(values: np.ndarray, limit: int = 8) -> str:
    """Up to ``limit`` values as a list for a message, with how many more there are."""
    shown = [v.item() for v in values[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{shown}{more}"


# The largest value a mask's values are listed from its boxes for: find_objects keeps one entry per
# value up to the mask's largest, and uint16 (the widest stored mask) ends here.
BOXED_VALUES = 65535


def _unique(mask: np.ndarray, slab: int = 32) -> np.ndarray:
    """``np.unique(mask)``.

    An integer mask of values in [0, 65535] (any mask a card can map, in the dtype its file stored)
    lists them from one ``scipy.ndimage.find_objects`` pass, which finds a box for each positive
    value present: 29 against 106 ms for ``np.unique`` on a 512x512x100 uint8 mask, and no copy.
    Any other mask is taken ``slab`` slices at a time: ``np.unique`` of a whole CT's mask holds a
    second copy of it while it works.
    """
    if mask.dtype.kind in "iu" and mask.size:
        low, high = int(mask.min()), int(mask.max())
        if low >= 0 and high <= BOXED_VALUES:
            boxes = ndimage.find_objects(mask, max_label=high)
            present = [value for value, box in enumerate(boxes, start=1) if box is not None]
            return np.array([0] * (low == 0) + present, dtype=mask.dtype)
    if mask.ndim < 3 or mask.shape[0] <= slab:
        return np.unique(mask)
    return np.unique(np.concatenate([np.unique(mask[z:z + slab]) for z in range(0, mask.shape[0], slab)]))


def check_label_values(
    mask: np.ndarray, allowed: Mapping[int, object], label_path: Path, unmapped: str = "quarantine",
) -> np.ndarray:
    """The mask as uint8 (or uint16), after checking its values in the dtype the file stored them in.

    Raise CaseError, naming the values, for non-integer, non-finite or negative values and for values
    the card does not map: checked before the cast, because a cast turns 65537 into 1, 1.7 into 1
    and -1 into 255. With ``unmapped="background"`` values the card does not map become 0 instead
    (a card that maps a few of an atlas's labels).
    """
    values = _unique(mask)
    if values.dtype.kind == "f":
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if bad.size:
            raise CaseError(f"{label_path}: label values {_named(bad)} are not integers")
    if values.dtype.kind not in "biuf":
        raise CaseError(f"{label_path}: labels of type {values.dtype} are not integers")
    negative = values[values < 0]
    if negative.size:
        raise CaseError(f"{label_path}: label values {_named(negative)} are negative")
    unknown = np.array([v for v in values.tolist() if v != 0 and v not in allowed])
    if unknown.size and unmapped == "background":
        mask = np.where(np.isin(mask, unknown), 0, mask)
        values = values[~np.isin(values, unknown)]  # what is left, without another pass
    elif unknown.size:
        raise CaseError(
            f"{label_path}: label values {_named(unknown, 10)} are not in the card's map {sorted(allowed)} "
            f"(a card can read them as background: unmapped_labels: background)"
        )
    return mask.astype(np.uint8 if values.max(initial=0) < 256 else np.uint16, copy=False)


def check_finite(image: np.ndarray, image_paths: Sequence[Path]) -> None:
    """Raise CaseError if a floating-point image holds NaN or infinite values (named, with counts).

    Stored as they are they become zeros or extremes downstream and still score; no card asks for a
    replacement rule, so such a case is quarantined.
    """
    if image.dtype.kind not in "fc":
        return
    for c in range(image.shape[0]):
        finite = np.isfinite(image[c])
        if not finite.all():
            nan = int(np.isnan(image[c]).sum())
            path = image_paths[min(c, len(image_paths) - 1)]
            raise CaseError(
                f"{path}: channel {c} holds {nan:,} NaN and {finite.size - finite.sum() - nan:,} infinite "
                f"values of {finite.size:,}"
            )


def _canonical(image: sitk.Image) -> sitk.Image:
    """``image`` in the canonical orientation: itself when it already is (a CT stored in LPS, as
    NRRD and DICOM usually are), so no second copy of its pixels is made."""
    if image.GetDimension() != 3:
        return image
    if sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()) == CANONICAL:
        return image
    return sitk.DICOMOrient(image, CANONICAL)


class _Pixels:
    """An ITK image's pixel buffer as a NumPy array that keeps the image alive.

    ``sitk.GetArrayViewFromImage`` gives a view that does not hold its image; an array made from
    this object's ``__array_interface__`` holds this object (its ``base``), and so the image, for
    as long as the array lives. Why: ``sitk.GetArrayFromImage`` copies, and a 512x512x600 CT would
    otherwise be in memory twice while it is ingested.
    """

    def __init__(self, image: sitk.Image):
        self.image = image
        self.__array_interface__ = sitk.GetArrayViewFromImage(image).__array_interface__


def _channels_zyx(image: sitk.Image) -> np.ndarray:
    """(c, z, y, x) from a scalar or vector ITK image of 2 or 3 dimensions, over the image's own
    pixel buffer (no copy; the array keeps the image alive)."""
    array = np.asarray(_Pixels(image))
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    if image.GetDimension() == 2:
        array = array[:, None]
    return array


def to_volume(channels: Sequence[sitk.Image], label: sitk.Image | None) -> Volume:
    """Reorient the channels and label to the canonical orientation and stack them as arrays.

    ``spacing_from_file`` is false when a reader flagged the first channel with
    :func:`mark_spacing_assumed`. A single channel's array (and the mask) lie over the ITK image's
    own buffer, the image passed in when it is already canonical: neither is copied.
    """
    spacing_from_file = not spacing_assumed(channels[0])
    original = affine(channels[0])
    oriented = [_canonical(c) for c in channels]
    arrays = [_channels_zyx(c) for c in oriented]
    image = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    mask = None
    if label is not None:
        mask = _channels_zyx(_canonical(label))[0]  # its file's dtype: check_label_values casts it
    ref = oriented[0]
    spacing = tuple(float(s) for s in reversed(ref.GetSpacing()))
    origin = tuple(float(o) for o in ref.GetOrigin())
    if ref.GetDimension() == 2:
        spacing = (1.0, *spacing)
        origin = (*origin, 0.0)
    return Volume(image, mask, spacing, origin, original, spacing_from_file)
