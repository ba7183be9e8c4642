"""Carrying a box prompt from slice to slice: the rules the volumetric protocols share.

Boxes are (x0, y0, x1, y1) in original pixels, inclusive, as ``tasks.protocols.base`` makes them;
margins are in model-input pixels (the CVPR 2024 baseline's ``get_bbox256`` adds 3 px at 256 scale), so
``expand_box`` scales them to the slice. The reference takes the neighbour's box on its mask resized to
256; here it is the tight box of the mask at the original resolution, expanded by the margin in
model-input pixels: the same box up to the resize's rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tasks.models.base import Prompt
from tasks.protocols.base import expand_box, tight_box
from tasks.protocols.volumetric import VolumeContext

Box = tuple[float, float, float, float]


def mask_box(mask: np.ndarray, ctx: VolumeContext, margin: float) -> Box | None:
    """The tight box of a slice's predicted ``mask`` expanded by ``margin`` model-input pixels
    (clipped to the image), or None for an empty mask."""
    if not mask.any():
        return None
    box = tight_box(mask)
    return expand_box(box, ctx.geometry, margin) if margin else tuple(float(v) for v in box)


def walk_order(start: int, low: int, high: int) -> list[int]:
    """``start``, then ``start+1 .. high``, then ``start-1 .. low``: the CVPR 2024 baseline's order."""
    return [start, *range(start + 1, high + 1), *range(start - 1, low - 1, -1)]


def propagate(
    ctx: VolumeContext, pred: np.ndarray, start: int, start_box: Box, low: int, high: int, margin: float,
    fallback: bool, boxes: dict[int, Box] | None = None,
) -> None:
    """Predict ``start`` with ``start_box``, then each slice up to ``high`` and down to ``low`` with the box
    of the prediction on the slice before it in the walk, expanded by ``margin``, writing into ``pred``.

    An empty neighbouring prediction either falls back to ``start_box`` (``fallback``, the CVPR 2024
    rule) or ends the walk in that direction (RadioActive's). ``boxes`` receives the box each slice got.
    """
    for direction in (+1, -1):
        z = start if direction == +1 else start - 1
        while low <= z <= high:
            if z == start:
                box = start_box
            else:
                box = mask_box(pred[z - direction], ctx, margin)
                if box is None and not fallback:
                    break
                box = start_box if box is None else box
            if boxes is not None:
                boxes[z] = box
            pred[z] = ctx.predict(z, Prompt(box=box))
            z += direction


def box_and_clicks(box: Box, clicks: Iterable[tuple[int, int, int]]) -> Prompt:
    """A slice's prompt: its box and every click placed on it, ((x, y), label) with label 1 or 0."""
    clicks = list(clicks)
    return Prompt(box=box, points=tuple((float(x), float(y)) for x, y, _ in clicks),
                  point_labels=tuple(int(lab) for _, _, lab in clicks))
