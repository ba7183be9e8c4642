"""Mask geometry shared by the prompt protocols: components, distance-transform centres, random pixels.

Coordinates returned to protocols are (x, y) = (column, row) integer pixel indices of the original
slice, which is what SAM-family predictors take (the prompt encoder adds the half-pixel shift).
Every random choice takes a ``numpy.random.Generator`` argument; nothing here touches the global
NumPy or Python random state.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label
from skimage.segmentation import find_boundaries

from tasks.boxes import bounding_box

Point = tuple[int, int]



def child_rngs(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators drawn from ``rng`` in a fixed order, one per protocol variant.

    Giving each variant its own stream keeps its prompts unchanged when another variant (or an
    option such as the number of clicks) changes, and keeps prefix sequences stable: clicks 1..5
    are the same whether 5 or 9 clicks are asked for.
    """
    seeds = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


def components(mask: np.ndarray, ties: str = "first") -> list[np.ndarray]:
    """The 8-connected components of ``mask`` as boolean masks of its shape, largest area first.

    Components are numbered in raster order of their first pixel (skimage ``label``). ``ties``
    says which of two equal-area components comes first: ``"first"`` keeps label order (a stable
    sort on area, as SAM-Med2D's ``sorted(regions, key=area, reverse=True)``), ``"last"`` puts the
    higher label first (Mazurowski's ``sorted(zip(areas, ids))[::-1]``). Labelling runs on the mask's
    bounding box: the raster order of its pixels there is their order in the whole image.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    box = bounding_box(mask)
    labels, n = label(mask[box], connectivity=2, return_num=True)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    ids = np.arange(1, n + 1)
    if ties == "first":
        order = sorted(ids, key=lambda i: -areas[i - 1])
    elif ties == "last":
        order = [i for _, i in sorted(zip(areas, ids))][::-1]
    else:
        raise ValueError(f"ties must be 'first' or 'last', not {ties!r}")
    return [_placed(labels == i, box, mask.shape) for i in order]


def _placed(crop: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A box's boolean crop put back in an otherwise empty mask of ``shape``."""
    whole = np.zeros(shape, dtype=bool)
    whole[box] = crop
    return whole


def padded_edt(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each pixel to the nearest zero, with the image border counted as zero.

    The mask is padded by 1 px of zeros before the transform and the padding cropped afterwards,
    as the reference code does around ``cv2.distanceTransform``.
    """
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def maxima(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every pixel where ``values`` equals its maximum, in raster order."""
    return np.nonzero(values == values.max())


def pick(rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> Point:
    """One of the given pixels, uniformly at random, as (x, y)."""
    if len(rows) == 0:
        raise ValueError("no pixel to pick from")
    i = int(rng.integers(0, len(rows)))
    return int(cols[i]), int(rows[i])


def edt_centre(mask: np.ndarray, rng: np.random.Generator) -> Point:
    """A pixel where the padded exact EDT of ``mask`` is largest, ties broken uniformly by ``rng``."""
    return pick(rng, *edt_maxima(mask))


def edt_maxima(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) in raster order of every pixel where the padded exact EDT of ``mask`` is largest.

    If ``mask`` is empty the transform is zero everywhere and every pixel of the image ties.
    Otherwise the transform is taken on the mask's bounding box (padded by 1 px of zeros, as the
    image is): every pixel outside the box is zero, and a pixel inside it is never nearer a zero
    outside the padding ring than one on it, so the distances (from integer offsets, exact), their
    maxima and the maxima's raster order are those of the whole image, at the cost of the box.
    """
    mask = np.asarray(mask, dtype=bool)
    return _maxima_on_box(mask, bounding_box(mask) if mask.any() else None)


def _maxima_on_box(mask: np.ndarray, box: tuple[slice, slice] | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`edt_maxima` of a boolean mask whose bounding box is ``box`` (None: the mask is empty)."""
    if box is None:
        return maxima(padded_edt(mask))
    rows, cols = maxima(padded_edt(mask[box]))
    return rows + box[0].start, cols + box[1].start


class EdtCentres:
    """:func:`edt_centre` for the masks of one object's steps, each mask's maxima found once.

    Mazurowski's modes and both click sequences start from the same mask (the object, or its largest
    component), and the two sequences click on the same error regions while their masks agree: a
    fifth of its transforms were repeats in ``bench/pipeline.py``. The tie-break still draws from the
    caller's generator on every call, so the clicks are those of :func:`edt_centre`.
    """

    def __init__(self) -> None:
        self._maxima: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, mask: np.ndarray, rng: np.random.Generator) -> Point:
        mask = np.asarray(mask, dtype=bool)
        box = bounding_box(mask) if mask.any() else None
        crop = mask if box is None else mask[box]
        bounds = None if box is None else tuple((b.start, b.stop) for b in box)
        key = (mask.shape, bounds, np.packbits(crop).tobytes())
        if key not in self._maxima:
            self._maxima[key] = _maxima_on_box(mask, box)
        return pick(rng, *self._maxima[key])


def random_pixel(region: np.ndarray, rng: np.random.Generator) -> Point:
    """A uniformly random pixel of a non-empty boolean region, as (x, y)."""
    return pick(rng, *np.nonzero(region))


def bbox_exclusive(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box of all of ``mask`` as (x0, y0, x1, y1), max exclusive (skimage ``regionprops``' convention)."""
    rows, cols = bounding_box(mask)
    return cols.start, rows.start, cols.stop, rows.stop


def inner_boundary_centre(mask: np.ndarray) -> Point:
    """micro-sam's object centre: the object pixel farthest from the object's inner boundary.

    As ``micro_sam.util.get_centers_and_bounding_boxes(mode="v")``: pad by 1, mark the inner
    boundary (``find_boundaries(mode="inner")``), exact EDT to that boundary, and take the first
    maximum in raster order among the object's pixels (``np.argmax``; no random tie-break).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("cannot centre an empty mask")
    padded = np.pad(mask, 1)
    boundaries = find_boundaries(padded, mode="inner")
    distances = ndimage.distance_transform_edt(~boundaries)[1:-1, 1:-1]
    masked = np.where(mask, distances, -1.0)
    row, col = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return int(col), int(row)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a ∪ b| of two boolean masks; 0 when both are empty."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0
