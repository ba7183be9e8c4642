"""JSRT chest radiographs: headerless ``.IMG`` files with the SCR masks, or the Segmentation02 release.

An ``.IMG`` is 2048 x 2048 big-endian unsigned 16-bit pixels holding 12-bit values, with no header
(so no spacing: 1.0 mm is assumed and flagged; the database documents 0.175 mm). The values are
film optical density, dark for high values, so they are stored inverted (4095 - v) to show bone
bright as a DICOM MONOCHROME2 radiograph would.

SCR masks are one GIF per structure at 1024 x 1024, resized to the image with nearest neighbour.
Segmentation02 ships its own BMP images and one PNG label per image (255 = lung, 85 = heart).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from records.cards import CaseFiles
from tasks.formats.greylevels import read_levels
from tasks.formats.planar import binary_mask, fit_to, image_from_pixels, label_like
from tasks.readers import Read
from tasks.volume import CaseError

SIDE = 2048
MAX_VALUE = 4095  # 12-bit data
# SCR structure folders and the label value each gets; painted in this order (later ones on top).
SCR_LABELS = {"right lung": 1, "left lung": 2, "heart": 3}
SEGMENTATION02_LEVELS = {0: 0, 255: 1, 85: 2}


def read_img(path: Path) -> np.ndarray:
    """The pixels of a JSRT ``.IMG`` file, inverted so that bone is bright (uint16, 2048 x 2048)."""
    if not path.is_file():
        raise CaseError(f"{path}: file is missing")
    expected = SIDE * SIDE * 2
    size = path.stat().st_size
    if size != expected:
        raise CaseError(f"{path}: {size} bytes, but a JSRT .IMG holds {expected} (2048 x 2048 big-endian uint16)")
    raw = np.fromfile(path, dtype=">u2").reshape(SIDE, SIDE)
    if raw.max() > MAX_VALUE:
        raise CaseError(f"{path}: values up to {raw.max()} exceed 12 bits; not a JSRT .IMG")
    return (MAX_VALUE - raw).astype(np.uint16)


def scr_labels(masks: list[Path], shape: tuple[int, int]) -> np.ndarray:
    """SCR structure masks (named by their folder) painted into one label map on ``shape``."""
    labels = np.zeros(shape, np.uint8)
    by_structure = {p.parent.name: p for p in masks}
    for structure, value in SCR_LABELS.items():
        path = by_structure.get(structure)
        if path is None:
            raise CaseError(f"{masks[0]}: the SCR '{structure}' mask of this image is missing")
        labels[fit_to(binary_mask(path), shape, path) > 0] = value
    return labels


def read_jsrt(case: CaseFiles) -> Read:
    """An ``.IMG`` radiograph with its SCR masks (subset ``scr``), or a Segmentation02 pair."""
    if case.subset == "segmentation02":
        return read_levels(case, SEGMENTATION02_LEVELS)
    image = image_from_pixels(read_img(case.images[0]))
    if case.label is None:
        return [image], None
    return [image], label_like(scr_labels([case.label, *case.more], (SIDE, SIDE)), image)
