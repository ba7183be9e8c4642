"""Volume objects: one label through a whole 3D case, the unit that volumetric protocols plan and score.

Where :mod:`tasks.objects` describes a label on each axial slice, a volume object describes it once
per case: its size, tight 3D box, the slices it spans and holds, the slice a volumetric protocol
starts from, and how many 3D pieces it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

TWENTY_SIX_CONNECTED = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class VolumeObject:
    """One label through a ``(z, y, x)`` mask.

    ``bbox`` is (z0, y0, x0, z1, y1, x1), inclusive. ``first_slice``/``last_slice`` are its z range;
    ``slices`` counts the slices that hold it (fewer than the range where it has a gap in z).
    ``key_slice`` is the voxel-weighted median slice (see :func:`key_slice`), ``components`` its
    26-connected 3D components.
    """

    label: int
    voxels: int
    volume_mm3: float
    bbox: tuple[int, int, int, int, int, int]
    first_slice: int
    last_slice: int
    key_slice: int
    slices: int
    components: int


def key_slice(per_slice: np.ndarray, first_slice: int = 0) -> int:
    """The z of the middle foreground voxel in z order, from the voxel count of each slice.

    This is the CVPR 2025 ``get_boxes.py`` rule (``z_indices[len(z_indices) // 2]`` over the z of
    every foreground voxel in ``np.where`` order), computed from a cumulative sum of the per-slice
    counts rather than by listing every voxel's index. It weights slices by voxels, so a label with
    a large part and a small one starts inside the large part, not at the middle of its z range.
    ``per_slice[i]`` counts slice ``first_slice + i``.
    """
    cumulative = np.cumsum(per_slice)
    return first_slice + int(np.searchsorted(cumulative, cumulative[-1] // 2, side="right"))


def volume_objects(mask: np.ndarray, spacing: tuple[float, float, float], labels: Mapping[int, object]) -> list[VolumeObject]:
    """The volume objects of a ``(z, y, x)`` integer mask for the label values present in it and
    mapped in ``labels`` (other values, 0 among them, are skipped), in ascending label order.

    One :func:`scipy.ndimage.find_objects` pass finds every label's box; each label is then measured
    on its box alone, so a 512x512x600 CT with a hundred small labels costs one full-volume pass, not
    one per label. ``spacing`` is (sz, sy, sx) in mm.
    """
    if mask.ndim != 3:
        raise ValueError(f"volume_objects needs a (z, y, x) mask, got shape {mask.shape}")
    wanted = sorted(int(v) for v in labels if int(v) > 0)
    if not wanted or mask.size == 0:
        return []
    voxel_mm3 = float(spacing[0] * spacing[1] * spacing[2])
    boxes = ndimage.find_objects(mask, max_label=wanted[-1])
    found = []
    for value in wanted:
        box = boxes[value - 1]
        if box is None:
            continue
        binary = mask[box] == value
        per_slice = binary.sum(axis=(1, 2))
        voxels = int(per_slice.sum())
        _, components = ndimage.label(binary, structure=TWENTY_SIX_CONNECTED)
        z, y, x = box
        found.append(VolumeObject(
            label=value, voxels=voxels, volume_mm3=voxels * voxel_mm3,
            bbox=(z.start, y.start, x.start, z.stop - 1, y.stop - 1, x.stop - 1),
            first_slice=z.start, last_slice=z.stop - 1, key_slice=key_slice(per_slice, z.start),
            slices=int(np.count_nonzero(per_slice)), components=int(components),
        ))
    return found
