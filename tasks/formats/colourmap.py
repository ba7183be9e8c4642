"""Colour-coded label images (AbdomenUS): each structure is one RGB colour, mapped to a label value.

Annotation PNGs may carry an alpha channel (fully transparent pixels are background) and the
background is black or near-black ((10, 10, 10) in the simulated images): any colour whose channels
are all <= ``NEAR_BLACK`` is background. A pixel must be within ``TOLERANCE`` (per channel) of a
documented colour; any other colour quarantines the case with the colours found, since guessing
would assign pixels to the wrong organ.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from records.cards import CaseFiles
from tasks.formats.planar import fit_to, image_shape, label_like, open_picture, read_picture
from tasks.readers import Read
from tasks.volume import CaseError

NEAR_BLACK = 16
TOLERANCE = 8
# US simulation & segmentation (Vitale et al. 2020): annotation colour -> label value.
ABDOMENUS_COLOURS: dict[tuple[int, int, int], int] = {
    (100, 0, 100): 1,  # liver
    (255, 255, 0): 2,  # kidney
    (0, 0, 255): 3,  # pancreas
    (255, 0, 0): 4,  # vessels
    (0, 255, 255): 5,  # adrenals
    (0, 255, 0): 6,  # gallbladder
    (255, 255, 255): 7,  # bones
    (255, 0, 255): 8,  # spleen
}


def colour_pixels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An annotation's RGB pixels ``(y, x, 3)`` and its opacity ``(y, x)`` (all true without alpha)."""
    picture = open_picture(path)
    if picture.mode == "P":
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA"):
        rgba = np.asarray(picture.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3] > 0
    rgb = np.asarray(picture.convert("RGB"))
    return rgb, np.ones(rgb.shape[:2], bool)


def labels_from_colours(rgb: np.ndarray, opaque: np.ndarray, palette: Mapping[tuple[int, int, int], int], path: Path) -> np.ndarray:
    """Map each pixel's colour to its label value (see the module notes for background and tolerance)."""
    labels = np.zeros(rgb.shape[:2], np.uint8)
    claimed = ~opaque | (rgb.max(axis=-1) <= NEAR_BLACK)
    signed = rgb.astype(np.int16)
    for colour, value in palette.items():
        near = (np.abs(signed - np.asarray(colour, np.int16)).max(axis=-1) <= TOLERANCE) & ~claimed
        labels[near] = value
        claimed |= near
    if not claimed.all():
        stray = np.unique(rgb[~claimed], axis=0)
        shown = ", ".join(str(tuple(int(v) for v in c)) for c in stray[:5])
        raise CaseError(f"{path}: {int((~claimed).sum())} pixels have colours not in the label colour map, e.g. {shown}")
    return labels


def read_abdomenus(case: CaseFiles) -> Read:
    """An AbdomenUS scan (as stored: grey or RGB) and its colour-coded annotation."""
    image = read_picture(case.images[0])
    if case.label is None:
        return [image], None
    rgb, opaque = colour_pixels(case.label)
    labels = labels_from_colours(rgb, opaque, ABDOMENUS_COLOURS, case.label)
    return [image], label_like(fit_to(labels, image_shape(image), case.label), image)
