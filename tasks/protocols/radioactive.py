"""RadioActive's static 3D prompters (MIC-DKFZ/radioactive, protocols.md §7.4): propagation and interpolation.

``radioactive-propagation``: the tight GT box on the median foreground slice (the key slice), then each
next slice, up and then down, prompted with the tight box of the prediction on the slice before it; the
walk in a direction ends at the first empty prediction (or the volume's end), so it may stop inside the
object or run past it: the prompt gives no range.

``radioactive-interpolation-N`` (N = 3, 5 or 10): tight GT boxes on N slices spread evenly over the
object's slice range (``round(linspace(first, last, N))``; a chosen slice without the object moves to the
nearest one that holds it; fewer than N when the object spans fewer slices), and on every slice between
two prompted ones the box whose corners are linearly interpolated between them. Every slice of the range
is predicted once. The three variants share the unit's embeddings.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import Prompt
from tasks.protocols.base import tight_box
from tasks.protocols.propagation import propagate
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

INTERPOLATION_SLICES = (3, 5, 10)


class RadioActivePropagation(VolumeProtocol):
    """One step: the key slice's GT box carried by tight previous-mask boxes until a prediction is empty."""

    name = "radioactive-propagation"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {"box": "key-slice-gt-tight", "propagation": "previous-mask-box",
                                         "margin_px": 0, "stop": "first-empty"}),)

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        key = ctx.target.key_slice
        box = tuple(float(v) for v in tight_box(ctx.gt[key]))
        pred = ctx.empty()
        propagate(ctx, pred, key, box, 0, ctx.gt.shape[0] - 1, 0, fallback=False)
        yield VolumeStep(self.name, 1, {"box": list(box), "z": key}, pred)


def prompted_slices(gt: np.ndarray, first: int, last: int, n: int) -> list[int]:
    """``n`` slices spread evenly over ``first .. last``, each moved to the nearest slice holding the
    object (the lower one on a tie), without repeats."""
    holding = np.flatnonzero(gt[first:last + 1].any(axis=(1, 2))) + first
    chosen = []
    for z in np.round(np.linspace(first, last, n)).astype(int):
        nearest = int(holding[np.argmin(np.abs(holding - z))])
        if nearest not in chosen:
            chosen.append(nearest)
    return sorted(chosen)


def interpolated_boxes(gt: np.ndarray, slices: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """The tight GT box on each prompted slice and, between two of them, the linear interpolation of their corners."""
    anchors = {z: np.asarray(tight_box(gt[z]), dtype=np.float64) for z in slices}
    boxes = {z: tuple(float(v) for v in anchors[z]) for z in slices}
    for lower, upper in zip(slices, slices[1:]):
        for z in range(lower + 1, upper):
            t = (z - lower) / (upper - lower)
            boxes[z] = tuple(float(v) for v in (1 - t) * anchors[lower] + t * anchors[upper])
    return dict(sorted(boxes.items()))


class RadioActiveInterpolation(VolumeProtocol):
    """One step per variant: GT boxes on N slices, interpolated boxes in between."""

    name = "radioactive-interpolation"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return tuple(
            ProtocolSpec(f"{self.name}-{n}", {"prompted_slices": n, "spread": "linspace-nearest-holding",
                                               "between": "linear-corners"})
            for n in INTERPOLATION_SLICES
        )

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        first, last = ctx.target.first_slice, ctx.target.last_slice
        for n in INTERPOLATION_SLICES:
            name = f"{self.name}-{n}"
            if wanted and name not in wanted:
                continue
            slices = prompted_slices(ctx.gt, first, last, n)
            pred = ctx.empty()
            for z, box in interpolated_boxes(ctx.gt, slices).items():
                pred[z] = ctx.predict(z, Prompt(box=box))
            yield VolumeStep(name, 1, {"prompted": slices}, pred)
