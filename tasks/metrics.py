"""Overlap and boundary metrics of one predicted mask against its reference, in physical units.

Definitions (G = reference, S = prediction, both binary arrays of the same shape, 2D or 3D):

* Dice = 2|G∩S| / (|G|+|S|); IoU = |G∩S| / |G∪S|.
* Boundary ∂X: the voxels of X removed by one binary erosion with face connectivity (the
  cross-shaped structuring element; outside the array counts as background). These are the inner
  edge voxels of MONAI's ``get_mask_edges``, counted one by one, not weighted by surfel area as in
  DeepMind's ``surface-distance`` (which differs by a few percent on small objects).
* Surface distances: from every voxel of ∂S to the nearest voxel of ∂G, and from every voxel of ∂G
  to the nearest voxel of ∂S, by the exact Euclidean distance transform
  (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), in mm.
* NSD at tolerance τ mm (Nikolov et al. 2021), as MONAI ``compute_surface_dice`` with
  ``use_subvoxels=False``: (#∂G within τ of ∂S + #∂S within τ of ∂G) / (|∂G| + |∂S|), where a
  distance equal to τ counts as within.
* HD95: the larger of the two directed 95th percentiles (linear interpolation) of those distances,
  the DeepMind / MONAI / Metrics Reloaded convention, not MedPy's percentile of the pooled distances.

Spacing is in mm and in ARRAY AXIS ORDER: (sz, sy, sx) for a (z, y, x) volume, (sy, sx) for a slice
of it. SimpleITK's ``GetSpacing()`` is (x, y, z) and must be reversed before it reaches here.

Empty masks take the worst value rather than being skipped as NaN, as Metrics Reloaded advises, so
that a false-positive-only or missed object cannot silently vanish from an average:

* both empty: Dice 1, IoU 1, NSD 1, HD95 0 (the prediction agrees that nothing is there);
* exactly one empty: Dice 0, IoU 0, NSD 0, HD95 = the diagonal of the array's physical extent,
  sqrt(Σ (n_i·s_i)²), the largest distance the image can hold.

No metric returns NaN or inf.

Boundaries and distances are computed on the bounding box of the union of both masks, padded by
one voxel: both boundaries lie inside it, so the erosion and the distance to the nearest boundary
voxel are the same as on the whole array, while a small object in a large image stays cheap.
``score`` computes them once for NSD and HD95 together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt


@dataclass(frozen=True)
class Scores:
    """The four metrics of one (prediction, reference) pair; see the module docstring."""

    dice: float
    iou: float
    nsd: float
    hd95: float


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient 2|G∩S| / (|G|+|S|); 1 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    return _dice_iou(pred, gt)[0]


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union |G∩S| / |G∪S| (Jaccard); 1 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    return _dice_iou(pred, gt)[1]


def nsd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 2.0) -> float:
    """Normalised surface Dice: the share of both boundaries within ``tolerance_mm`` of the other."""
    pred, gt = _masks(pred, gt)
    sizes = _spacing(spacing, pred.ndim)
    _check_tolerance(tolerance_mm)
    if not (pred.any() and gt.any()):
        return float(pred.any() == gt.any())
    return _nsd(*_surface_distances(pred, gt, sizes), tolerance_mm)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm: the larger of the two directed 95th percentiles."""
    pred, gt = _masks(pred, gt)
    sizes = _spacing(spacing, pred.ndim)
    if not (pred.any() and gt.any()):
        return 0.0 if pred.any() == gt.any() else _diagonal(pred.shape, sizes)
    return _hd95(*_surface_distances(pred, gt, sizes))


def score(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 2.0) -> Scores:
    """All four metrics at once, sharing the boundaries and distance transforms between NSD and HD95."""
    pred, gt = _masks(pred, gt)
    sizes = _spacing(spacing, pred.ndim)
    _check_tolerance(tolerance_mm)
    dice_value, iou_value = _dice_iou(pred, gt)
    if not (pred.any() and gt.any()):
        if pred.any() == gt.any():
            return Scores(dice=1.0, iou=1.0, nsd=1.0, hd95=0.0)
        return Scores(dice=0.0, iou=0.0, nsd=0.0, hd95=_diagonal(pred.shape, sizes))
    distances = _surface_distances(pred, gt, sizes)
    return Scores(dice=dice_value, iou=iou_value, nsd=_nsd(*distances, tolerance_mm), hd95=_hd95(*distances))


def _masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays (non-zero is foreground), refusing different shapes."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """The voxel size per array axis in mm, refusing a wrong length or a non-positive size."""
    sizes = tuple(float(s) for s in spacing)
    if len(sizes) != ndim:
        raise ValueError(
            f"spacing must give one size per array axis in array order ({ndim} for these masks), got {len(sizes)}"
        )
    if not all(math.isfinite(s) and s > 0 for s in sizes):
        raise ValueError(f"spacing must be finite and positive, got {sizes}")
    return sizes


def _check_tolerance(tolerance_mm: float) -> None:
    """Refuse a tolerance that is negative or not finite, as NSD is meaningless then."""
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be finite and >= 0, got {tolerance_mm}")


def _dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Dice and IoU from the voxel counts, both 1 when both masks are empty."""
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt))
    if n_pred + n_gt == 0:
        return 1.0, 1.0
    overlap = int(np.count_nonzero(pred & gt))
    return 2.0 * overlap / (n_pred + n_gt), overlap / (n_pred + n_gt - overlap)


def _diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The physical diagonal of the whole array in mm: the worst HD95 an image allows."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))


def _union_box(pred: np.ndarray, gt: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the union of two non-empty masks, padded by one voxel within the array."""
    union = pred | gt
    box = []
    for axis, length in enumerate(union.shape):
        others = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(np.any(union, axis=others))
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, length)))
    return tuple(box)


def _surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each voxel of ∂S to ∂G and from each voxel of ∂G to ∂S (both masks non-empty)."""
    box = _union_box(pred, gt)
    pred, gt = pred[box], gt[box]
    edge_pred = pred & ~binary_erosion(pred)
    edge_gt = gt & ~binary_erosion(gt)
    pred_to_gt = distance_transform_edt(~edge_gt, sampling=spacing)[edge_pred]
    gt_to_pred = distance_transform_edt(~edge_pred, sampling=spacing)[edge_gt]
    return pred_to_gt, gt_to_pred


def _nsd(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, tolerance_mm: float) -> float:
    """The share of boundary voxels of both masks that lie within the tolerance of the other boundary."""
    within = np.count_nonzero(pred_to_gt <= tolerance_mm) + np.count_nonzero(gt_to_pred <= tolerance_mm)
    return within / (pred_to_gt.size + gt_to_pred.size)


def _hd95(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    """The larger of the two directed 95th percentiles of the surface distances."""
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))
