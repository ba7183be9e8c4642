"""The bounding box of a mask, from its projections on each axis.

Protocols box their prompts and metrics crop their work to the objects, many times a slice, on
masks the size of the whole image: projecting each axis within the extent found on the axes before
it reads the mask in full once, a fraction of what ``nonzero`` or ``regionprops`` cost there.
"""

from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The tight box of a non-empty mask's foreground, one slice per axis (stop exclusive)."""
    mask = np.asarray(mask, dtype=bool)
    box = [slice(None)] * mask.ndim
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask[tuple(box)].any(axis=others))
        if hits.size == 0:
            raise ValueError("cannot box an empty mask")
        box[axis] = slice(int(hits[0]), int(hits[-1]) + 1)
    return tuple(box)
