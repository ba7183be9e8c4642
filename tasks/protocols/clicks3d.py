"""Where the CVPR 2025 interactive 3D challenge clicks next (``CVPR25_iter_eval.py``, protocols.md §7.2).

The error is ``pred != gt``; its largest 26-connected component is found; the Euclidean distance
transform of that component is computed on its bounding box padded by 25 % per axis (clipped to the
volume, as the reference crops before its transform), in voxel units; the click is a voxel where it is
largest, ties broken uniformly. It is a foreground click where the GT holds the object, otherwise a
background click. No error, no click.

The reference breaks ties with ``np.random.seed(42)`` re-seeded before every click; here the draw comes
from the object's seeded generator (samatlas seeds every random choice from the object's key and the
spec), which changes only which of several equally deep voxels is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

TWENTY_SIX = np.ones((3, 3, 3), dtype=bool)
CROP_PAD = 0.25


@dataclass(frozen=True)
class Click:
    """One 3D click: voxel (z, y, x) and whether it marks the object (foreground) or not."""

    z: int
    y: int
    x: int
    foreground: bool

    def to_json(self) -> dict[str, object]:
        return {"click": [self.x, self.y, self.z], "label": int(self.foreground)}


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """The largest 26-connected component of ``mask`` (ties: the first in raster order) as a boolean
    crop, with the slices that place the crop in ``mask``; None when ``mask`` is empty."""
    box = ndimage.find_objects(mask.astype(np.uint8))
    if not box:
        return None
    crop = mask[box[0]]
    labels, n = ndimage.label(crop, structure=TWENTY_SIX)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = int(np.argmax(sizes)) + 1
    component = labels == keep
    inner = ndimage.find_objects(component.astype(np.uint8))[0]
    where = tuple(slice(outer.start + s.start, outer.start + s.stop) for outer, s in zip(box[0], inner))
    return component[inner], where


def next_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> Click | None:
    """The next refinement click for prediction ``pred`` against ``gt`` (both (Z, H, W) bool)."""
    found = largest_component(pred != gt)
    if found is None:
        return None
    component, where = found
    padded = tuple(
        slice(max(0, s.start - int(CROP_PAD * (s.stop - s.start))), min(n, s.stop + int(CROP_PAD * (s.stop - s.start))))
        for s, n in zip(where, gt.shape)
    )
    crop = np.zeros(tuple(s.stop - s.start for s in padded), dtype=bool)
    crop[tuple(slice(w.start - p.start, w.stop - p.start) for w, p in zip(where, padded))] = component
    depth = ndimage.distance_transform_edt(crop)
    candidates = np.argwhere(depth == depth.max())
    pick = candidates[int(rng.integers(len(candidates)))] + [p.start for p in padded]
    z, y, x = (int(v) for v in pick)
    return Click(z, y, x, bool(gt[z, y, x]))
