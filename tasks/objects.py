"""Objects: the unit of evaluation, one per (slice, label value) present in a case's mask."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class SliceObject:
    """One label on one axial slice: its size, tight box (y0, x0, y1, x1 inclusive) and components."""

    slice_index: int
    label: int
    area_px: int
    area_mm2: float
    bbox: tuple[int, int, int, int]
    components: int


def slice_objects(mask: np.ndarray, spacing: tuple[float, float, float], labels: Mapping[int, object]) -> Iterator[SliceObject]:
    """Yield the objects of a ``(z, y, x)`` mask for the label values in ``labels``."""
    pixel_mm2 = float(spacing[1] * spacing[2])
    for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        plane = mask[z]
        for value in np.unique(plane):
            if value == 0 or int(value) not in labels:
                continue
            binary = plane == value
            ys, xs = np.nonzero(binary)
            _, n = ndimage.label(binary, structure=EIGHT_CONNECTED)
            area = int(ys.size)
            yield SliceObject(
                slice_index=int(z), label=int(value), area_px=area, area_mm2=area * pixel_mm2,
                bbox=(int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())), components=int(n),
            )
