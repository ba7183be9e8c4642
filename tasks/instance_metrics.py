"""micro-sam's instance metrics of one image: mSA, SA50, SA75 over Hungarian-matched instances.

micro-sam (protocols.md §3.4; ``micro_sam/util.py:mask_data_to_segmentation``,
``micro_sam/evaluation/evaluation.py:_run_evaluation``, ``elf/evaluation/matching.py``) scores an
image, not an object:

1. The per-object predicted masks are pasted into one instance map in order of decreasing area
   (equal areas keep their order; Python's stable sort); each pixel keeps the first mask that
   claims it (``merge_exclusively``).
2. Connected components relabel that map (``label_masks=True``; elf's ``parallel.label`` supports
   face connectivity only): a fragmented prediction becomes several predicted instances. The GT
   image is relabelled by connected components too (``evaluation.py`` calls ``label(gt)``; its
   connectivity is taken to be the same face connectivity, which the sources read here do not state).
   Labelling keeps different ids apart where they touch (skimage ``label`` joins equal values only).
3. IoU of every (prediction, GT) pair of instances; background is ignored.
4. For each threshold t in ``np.arange(0.5, 1.0, 0.05)`` (elf's default; 0.5, 0.55, .., 0.95 with
   float rounding, so an IoU of exactly 0.6 is below the third threshold 0.6000000000000001), a
   maximum matching of pairs with IoU >= t, the summed IoU of the pairs breaking ties
   (``scipy.optimize.linear_sum_assignment``); TP = matched pairs with IoU >= t, FP = predicted
   instances - TP, FN = GT instances - TP.
5. SA(t) = TP / (TP + FP + FN), and 0 when TP = 0 (so an image with neither GT nor prediction
   scores 0, as elf returns); mSA = the mean of SA(t) over the thresholds, SA50 = SA(0.5),
   SA75 = SA(0.75) (the sixth threshold). A dataset's score is the plain mean over its images.

Written here rather than imported: elf (and micro-sam) are not on PyPI, and the matching is a few
lines over SciPy's assignment solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.measure import label

THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.arange(0.5, 1.0, 0.05))
SA50_INDEX, SA75_INDEX = 0, 5


@dataclass(frozen=True)
class InstanceScores:
    """One image's matching counts per threshold, and the accuracies they give."""

    n_gt: int
    n_pred: int
    tp: tuple[int, ...]  # per threshold of THRESHOLDS

    @property
    def accuracies(self) -> tuple[float, ...]:
        """SA(t) = TP / (TP + FP + FN) per threshold, 0 where TP is 0."""
        return tuple(tp / (self.n_pred + self.n_gt - tp) if tp else 0.0 for tp in self.tp)

    @property
    def msa(self) -> float:
        """Mean segmentation accuracy over the thresholds."""
        return float(np.mean(self.accuracies))

    @property
    def sa50(self) -> float:
        return self.accuracies[SA50_INDEX]

    @property
    def sa75(self) -> float:
        return self.accuracies[SA75_INDEX]


def instance_map(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Object masks pasted largest first onto free pixels, then relabelled by connected components."""
    pasted = np.zeros(shape, dtype=np.int32)
    areas = [int(np.count_nonzero(m)) for m in masks]
    for seg_id, i in enumerate(sorted(range(len(masks)), key=lambda i: -areas[i]), start=1):
        pasted[np.asarray(masks[i], dtype=bool) & (pasted == 0)] = seg_id
    return relabel(pasted)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Connected components of a label image (face connectivity; touching ids stay apart), 0 is background."""
    return label(np.asarray(labels), background=0, connectivity=1).astype(np.int32)


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every (predicted instance, GT instance) pair of two label images with ids 1..n, 0 ignored."""
    pred = np.asarray(pred, dtype=np.int64)
    gt = np.asarray(gt, dtype=np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction and GT label images differ in shape: {pred.shape} vs {gt.shape}")
    n_pred, n_gt = int(pred.max(initial=0)), int(gt.max(initial=0))
    overlap = np.bincount((pred * (n_gt + 1) + gt).ravel(), minlength=(n_pred + 1) * (n_gt + 1))
    overlap = overlap.reshape(n_pred + 1, n_gt + 1)[1:, 1:].astype(np.float64)
    sizes_pred = np.bincount(pred.ravel(), minlength=n_pred + 1)[1:, None]
    sizes_gt = np.bincount(gt.ravel(), minlength=n_gt + 1)[None, 1:]
    return overlap / np.maximum(sizes_pred + sizes_gt - overlap, 1)


def true_positives(ious: np.ndarray, threshold: float) -> int:
    """Pairs with IoU >= ``threshold`` in a matching that has as many of them as possible."""
    hits = ious >= threshold
    if not hits.any():
        return 0
    # One unit per pair above the threshold dominates the summed IoU tie-breaker (< 1/2 in total).
    weights = hits + ious / (2 * min(ious.shape))
    rows, cols = linear_sum_assignment(weights, maximize=True)
    return int(np.count_nonzero(hits[rows, cols]))


def match(pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> InstanceScores:
    """Matching counts of two instance label images (ids 1..n, consecutive; 0 is background)."""
    ious = iou_matrix(pred, gt)
    return InstanceScores(n_gt=ious.shape[1], n_pred=ious.shape[0], tp=tuple(true_positives(ious, t) for t in thresholds))


def image_scores(pred_masks: Sequence[np.ndarray], gt_labels: np.ndarray) -> InstanceScores:
    """micro-sam's evaluation of one image: the objects' predicted masks against the GT label image."""
    gt_labels = np.asarray(gt_labels)
    return match(instance_map(pred_masks, gt_labels.shape), relabel(gt_labels))
