"""Per-class binary masks merged into one label map (TotalSegmentator, HaN-Seg).

Such releases ship one binary file per structure instead of a label map. The card lists the
classes in a fixed order; the mask of the class at position ``v`` (1-based) is painted with value
``v`` in that order, so where masks overlap the later class wins. Each mask is checked against the
image's grid: it must share the spacing and the axes (up to a permutation or flip, which is
re-indexed, never resampled), and its voxels must land on image voxels. A mask saved on a cropped
extent (3D Slicer ``.seg.nrrd`` files may be) is pasted at its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.readers import Read, read_sitk
from tasks.volume import CaseError, rounded

OFFSET_TOLERANCE = 0.05  # voxels: a mask's origin must sit this close to an image voxel centre


@dataclass(frozen=True)
class MaskSetCase(CaseFiles):
    """A case whose label is one binary file per class: ``masks`` = (label value, file), in painting order.

    ``label`` names the folder the masks live in (for messages); the masks themselves count as
    source files, so a changed mask changes the case's checksums and triggers a re-ingest.
    """

    masks: tuple[tuple[int, Path], ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """The image files and every mask file."""
        return self.images + tuple(path for _, path in self.masks)


def _binary(mask: sitk.Image) -> np.ndarray:
    """Non-zero voxels of a mask as a (z, y, x) bool array; multi-component (layered) masks are OR-ed."""
    array = sitk.GetArrayViewFromImage(mask)
    if mask.GetNumberOfComponentsPerPixel() > 1:
        return np.any(array != 0, axis=-1)
    return array != 0


def _on_image_axes(mask: sitk.Image, image: sitk.Image, mask_path: Path, image_path: Path) -> sitk.Image:
    """``mask`` indexed along the image's axes: a mask stored with its axes permuted or flipped is
    re-indexed (no resampling); a mask of another spacing or an oblique rotation is refused."""
    if mask.GetDimension() != image.GetDimension():
        raise CaseError(f"{mask_path}: mask is {mask.GetDimension()}D, image {image_path.name} is {image.GetDimension()}D")
    same = partial(np.allclose, atol=1e-3, rtol=1e-4)
    if mask.GetDimension() == 3 and not same(mask.GetDirection(), image.GetDirection()):
        code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        mask = sitk.DICOMOrient(mask, code)
    checks = (("direction", image.GetDirection(), mask.GetDirection()), ("spacing", image.GetSpacing(), mask.GetSpacing()))
    for what, a, b in checks:
        if not same(a, b):
            raise CaseError(f"{mask_path}: mask {what} {rounded(b)} differs from image {image_path.name} {rounded(a)}")
    return mask


def paste(target: np.ndarray, mask: sitk.Image, value: int, image: sitk.Image, mask_path: Path, image_path: Path) -> None:
    """Paint ``value`` into ``target`` (the image's (z, y, x) label array) where ``mask`` is set."""
    mask = _on_image_axes(mask, image, mask_path, image_path)
    start = np.asarray(image.TransformPhysicalPointToContinuousIndex(mask.GetOrigin()))
    if np.abs(start - np.rint(start)).max() > OFFSET_TOLERANCE:
        raise CaseError(f"{mask_path}: mask origin {mask.GetOrigin()} falls between voxels of image {image_path.name}")
    start = np.rint(start).astype(int)[::-1]  # (z, y, x)
    binary = _binary(mask)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + binary.shape, target.shape)
    overlaps = bool(np.all(hi > lo))
    inside = binary[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] if overlaps else None
    if (int(inside.sum()) if overlaps else 0) != int(binary.sum()):
        raise CaseError(f"{mask_path}: mask voxels lie outside image {image_path.name}")
    if overlaps:
        target[tuple(slice(a, b) for a, b in zip(lo, hi))][inside] = value


def read_merged(case: CaseFiles) -> Read:
    """The image, and a label map painted from the case's per-class masks in the card's order."""
    if not isinstance(case, MaskSetCase):
        raise CaseError(f"{case.images[0]}: the merge-masks reader needs a MaskSetCase, got {type(case).__name__}")
    image = read_sitk(case.images[0])
    top = max((value for value, _ in case.masks), default=0)
    shape = sitk.GetArrayViewFromImage(image).shape[: image.GetDimension()]
    target = np.zeros(shape, np.uint8 if top < 256 else np.uint16)
    for value, path in case.masks:
        paste(target, read_sitk(path), value, image, path, case.images[0])
    label = sitk.GetImageFromArray(target)
    label.CopyInformation(image)
    return [image], label
