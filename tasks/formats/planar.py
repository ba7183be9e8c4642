"""Planar images and masks released as PNG, JPEG, BMP, GIF or TIFF files, read with Pillow.

These files hold no anatomical pixel spacing (a PNG's pHYs or a TIFF's dpi describe printing), so
images get 1.0 mm, flagged as assumed. RGB stays three channels and grey stays one. A mask whose
size differs from its image is resized to it with nearest neighbour when both have the same aspect
ratio (within 1 %), and the case is quarantined when they do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from records.cards import CaseFiles
from tasks.readers import Read
from tasks.volume import CaseError, mark_spacing_assumed

ASPECT_TOLERANCE = 0.01
GREY_MODES = {"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def open_picture(path: Path) -> Image.Image:
    """Open and fully decode one picture file, turning Pillow's errors into a CaseError naming it."""
    if not path.is_file():
        raise CaseError(f"{path}: file is missing")
    try:
        picture = Image.open(path)
        picture.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CaseError(f"{path}: cannot be read as an image ({exc})") from exc
    return picture


def picture_pixels(path: Path) -> np.ndarray:
    """An image file's pixels: ``(y, x)`` for grey pictures, ``(y, x, 3)`` for colour ones (alpha dropped)."""
    picture = open_picture(path)
    if picture.mode == "P":
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode == "LA":
        picture = picture.convert("L")
    if picture.mode in GREY_MODES:
        pixels = np.asarray(picture)
        return pixels.astype(np.uint8) * 255 if pixels.dtype == bool else pixels
    return np.asarray(picture.convert("RGB"))


def image_from_pixels(pixels: np.ndarray) -> sitk.Image:
    """A 2D ITK image (vector for colour) of ``pixels``, its 1.0 mm spacing flagged as assumed."""
    return mark_spacing_assumed(sitk.GetImageFromArray(pixels, isVector=pixels.ndim == 3))


def read_picture(path: Path) -> sitk.Image:
    """One picture file as a 2D ITK image (grey: scalar; colour: three-component vector)."""
    return image_from_pixels(picture_pixels(path))


def mask_levels(path: Path) -> np.ndarray:
    """A mask file's grey levels ``(y, x)``; a colour file must be grey in all channels.

    Palette files are mapped through their palette (the level is what the file shows).
    """
    picture = open_picture(path)
    if picture.mode in ("P", "LA", "1"):
        picture = picture.convert("L")
    pixels = np.asarray(picture)
    if pixels.ndim == 3:
        colour = pixels[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise CaseError(f"{path}: colour mask where grey levels were expected")
        pixels = colour[..., 0]
    return pixels


def mask_indices(path: Path) -> np.ndarray:
    """A mask file's raw values ``(y, x)``: palette indices as stored, or any channel for colour files."""
    picture = open_picture(path)
    pixels = np.asarray(picture)
    if pixels.ndim == 3:
        pixels = pixels[..., :3].max(axis=-1)
    return pixels


def binary_mask(path: Path, threshold: int = 128) -> np.ndarray:
    """A binary mask file as 0/1 ``uint8``: foreground where the brightest channel is >= ``threshold``.

    Lossy (JPEG) masks are grey around edges; the threshold makes them binary again.
    """
    picture = open_picture(path)
    if picture.mode in ("P", "LA", "1"):
        picture = picture.convert("L")
    pixels = np.asarray(picture)
    if pixels.ndim == 3:
        pixels = pixels[..., :3].max(axis=-1)
    return (pixels >= threshold).astype(np.uint8)


def fit_to(mask: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    """``mask`` on an image of ``shape`` (y, x): nearest-neighbour resized when only the scale differs."""
    if mask.shape == tuple(shape):
        return mask
    (mh, mw), (ih, iw) = mask.shape, shape
    if abs(mh / mw - ih / iw) > ASPECT_TOLERANCE * (ih / iw):
        raise CaseError(f"{path}: mask size {mw}x{mh} cannot be matched to image size {iw}x{ih} (aspect ratios differ)")
    rows = np.minimum((np.arange(ih) + 0.5) * mh / ih, mh - 1).astype(np.intp)
    cols = np.minimum((np.arange(iw) + 0.5) * mw / iw, mw - 1).astype(np.intp)
    return mask[np.ix_(rows, cols)]


def label_like(mask: np.ndarray, image: sitk.Image) -> sitk.Image:
    """A label image of ``mask`` on ``image``'s grid (same spacing, origin and direction)."""
    label = sitk.GetImageFromArray(np.ascontiguousarray(mask))
    label.CopyInformation(image)
    return label


def image_shape(image: sitk.Image) -> tuple[int, int]:
    """(y, x) of a 2D ITK image."""
    width, height = image.GetSize()[:2]
    return height, width


def union_of_binary_masks(paths: list[Path], shape: tuple[int, int], threshold: int = 128) -> np.ndarray:
    """Several binary mask files of one image OR-ed together, each fitted to ``shape``."""
    mask = np.zeros(shape, np.uint8)
    for path in paths:
        mask |= fit_to(binary_mask(path, threshold), shape, path)
    return mask


def read_binary(case: CaseFiles) -> Read:
    """One picture and its binary mask files (the label, then the case's ``more`` files), OR-ed to value 1."""
    image = read_picture(case.images[0])
    if case.label is None:
        return [image], None
    masks = [case.label, *case.more]
    return [image], label_like(union_of_binary_masks(masks, image_shape(image)), image)


def read_binary_with_fov(case: CaseFiles) -> Read:
    """A picture with one binary mask, and a field-of-view mask (the case's ``more`` file) that must fit the image."""
    image = read_picture(case.images[0])
    for fov in case.more:
        found = binary_mask(fov).shape
        if found != image_shape(image):
            raise CaseError(f"{fov}: field-of-view mask size {found[::-1]} differs from image size {image_shape(image)[::-1]}")
    if case.label is None:
        return [image], None
    return [image], label_like(fit_to(binary_mask(case.label), image_shape(image), case.label), image)


def read_instances(case: CaseFiles) -> Read:
    """A picture and an instance map (0 = background, 1..N = objects), binarised to value 1."""
    image = read_picture(case.images[0])
    if case.label is None:
        return [image], None
    instances = fit_to(mask_indices(case.label), image_shape(image), case.label)
    return [image], label_like((instances > 0).astype(np.uint8), image)
