"""Masks whose grey levels encode classes (REFUGE's 0/128/255, JSRT Segmentation02's 255/85).

Every level in the file must be one the release documents; anything else quarantines the case,
because a silently dropped level would lose a structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from records.cards import CaseFiles
from tasks.formats.planar import fit_to, image_shape, label_like, mask_levels, read_picture
from tasks.readers import Read
from tasks.volume import CaseError

# REFUGE Disc_Cup_Masks: 0 = optic cup, 128 = disc rim (disc minus cup), 255 = background.
REFUGE_LEVELS = {0: 1, 128: 2, 255: 0}


def relabel(levels: np.ndarray, mapping: Mapping[int, int], path: Path) -> np.ndarray:
    """Map each grey level to its label value; raise CaseError naming levels the mapping lacks."""
    found = np.unique(levels)
    unknown = sorted(set(found.tolist()) - set(mapping))
    if unknown:
        raise CaseError(f"{path}: grey levels {unknown[:8]} are not among the documented {sorted(mapping)}")
    lookup = np.zeros(int(found.max()) + 1, np.uint8)
    for level, value in mapping.items():
        if level < lookup.size:
            lookup[level] = value
    return lookup[levels]


def read_levels(case: CaseFiles, mapping: Mapping[int, int]) -> Read:
    """A picture and its grey-level mask mapped through ``mapping``, fitted to the picture."""
    image = read_picture(case.images[0])
    if case.label is None:
        return [image], None
    labels = relabel(mask_levels(case.label), mapping, case.label)
    return [image], label_like(fit_to(labels, image_shape(image), case.label), image)


def read_refuge(case: CaseFiles) -> Read:
    """A REFUGE fundus photograph and its inverted disc/cup BMP (0 = cup, 128 = rim, 255 = background)."""
    return read_levels(case, REFUGE_LEVELS)
