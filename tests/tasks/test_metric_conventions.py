"""Named metric conventions: the surfel convention against DeepMind's ``surface-distance`` itself,
the Dice gate, the px unit, the HD95 symmetrisations and each convention's empty-mask results.

The masks are random (smoothed noise, some touching the array's faces), strongly anisotropic in 3D.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import surface_distance  # a declared test dependency: a missing one must fail, not skip
from scipy.ndimage import gaussian_filter

from tasks.metrics import (
    CVPR24_2D, CVPR24_3D, DEFAULT_CONVENTION, MEDSAM_PAPER, PRESETS, SAMATLAS_VOXELS, SURFELS_2D_2PX,
    MetricConvention, convention, score,
)

SPACING_3D = (5.0, 0.7, 0.7)
SPACING_2D = (0.7, 1.3)
SURFELS_POOLED = replace(MEDSAM_PAPER, hd95="pooled")


def random_pair(shape: tuple[int, ...], seed: int, touch_edge: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping random masks; with ``touch_edge`` the prediction reaches the array's last column."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), 1.5)
    gt = field > 0.1
    pred = field + 0.5 * gaussian_filter(rng.standard_normal(shape), 1.0) > 0.1
    if touch_edge:
        pred[..., -1] = True
    return pred, gt


def deepmind(pred: np.ndarray, gt: np.ndarray, spacing, tolerance: float) -> tuple[float, float, float]:
    """NSD, max-directed and pooled area-weighted HD95 from surface-distance's own functions."""
    d = surface_distance.compute_surface_distances(gt, pred, spacing)
    pooled = np.concatenate([d["distances_gt_to_pred"], d["distances_pred_to_gt"]])
    areas = np.concatenate([d["surfel_areas_gt"], d["surfel_areas_pred"]])
    order = np.argsort(pooled, kind="stable")
    cumulative = np.cumsum(areas[order]) / areas.sum()
    pooled_hd95 = pooled[order][min(int(np.searchsorted(cumulative, 0.95)), pooled.size - 1)]
    return (
        surface_distance.compute_surface_dice_at_tolerance(d, tolerance),
        surface_distance.compute_robust_hausdorff(d, 95),
        float(pooled_hd95),
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # surface-distance imports scipy.ndimage.filters
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("shape", "spacing"), [((9, 32, 28), SPACING_3D), ((48, 40), SPACING_2D)])
@pytest.mark.parametrize("tolerance", [1.0, 2.0, 5.0])
def test_surfels_equal_surface_distance(seed, shape, spacing, tolerance):
    pred, gt = random_pair(shape, seed, touch_edge=seed % 2 == 1)
    want_nsd, want_max, want_pooled = deepmind(pred, gt, spacing, tolerance)
    got = score(pred, gt, spacing, replace(MEDSAM_PAPER, nsd_tolerance=tolerance))
    assert got.nsd == pytest.approx(want_nsd, abs=1e-6)
    assert got.hd95 == pytest.approx(want_max, abs=1e-6)
    assert score(pred, gt, spacing, replace(SURFELS_POOLED, nsd_tolerance=tolerance)).hd95 == pytest.approx(
        want_pooled, abs=1e-6
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_spacing_is_in_array_order_for_surfels():
    pred, gt = random_pair((9, 32, 28), seed=3, touch_edge=False)
    reversed_spacing = SPACING_3D[::-1]
    want = deepmind(pred, gt, reversed_spacing, 2.0)[0]
    assert score(pred, gt, reversed_spacing, MEDSAM_PAPER).nsd == pytest.approx(want, abs=1e-6)
    assert abs(score(pred, gt, SPACING_3D, MEDSAM_PAPER).nsd - want) > 1e-3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_px_unit_measures_on_the_pixel_grid():
    pred, gt = random_pair((48, 40), seed=4, touch_edge=False)
    got = score(pred, gt, SPACING_2D, SURFELS_2D_2PX)
    want_nsd, want_hd95, _ = deepmind(pred, gt, (1.0, 1.0), 2.0)
    assert got.dice > 0.2 and got.nsd == pytest.approx(want_nsd, abs=1e-6) and got.hd95 == pytest.approx(want_hd95)
    assert got.nsd != pytest.approx(score(pred, gt, SPACING_2D, replace(SURFELS_2D_2PX, nsd_unit="mm")).nsd, abs=1e-3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("seed", range(4))
def test_cvpr_2d_scores_a_one_slice_volume(seed):
    """The CVPR scorers' 2D cases: np.expand_dims(gts, -1) with spacing [1, 1, 1] into surface-distance."""
    pred, gt = random_pair((48, 40), seed, touch_edge=seed % 2 == 1)
    want_nsd, want_hd95, _ = deepmind(pred[..., None], gt[..., None], (1.0, 1.0, 1.0), 2.0)
    got = score(pred, gt, SPACING_2D, CVPR24_2D)
    assert got.nsd == pytest.approx(want_nsd, abs=1e-6) and got.hd95 == pytest.approx(want_hd95, abs=1e-6)
    assert abs(got.nsd - score(pred, gt, SPACING_2D, SURFELS_2D_2PX).nsd) > 1e-3  # the faces count


def test_dice_gate_sets_nsd_to_zero_at_or_below_the_gate():
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    pred = np.zeros_like(gt)
    pred[10:30, 27:37] = True  # overlaps 3 of 20 columns: Dice 120 / 600, exactly the gate (scored only if > 0.2)
    ungated = score(pred, gt, (1.0, 1.0), MEDSAM_PAPER)
    gated = score(pred, gt, (1.0, 1.0), SURFELS_2D_2PX)
    assert ungated.dice == gated.dice == 0.2
    assert ungated.nsd > 0 and gated.nsd == 0.0 and gated.hd95 == ungated.hd95
    good = np.roll(gt, 1, axis=1)
    assert score(good, gt, (1.0, 1.0), SURFELS_2D_2PX).nsd == score(good, gt, (1.0, 1.0), MEDSAM_PAPER).nsd > 0.9


def test_voxel_hd95_pooled_is_the_percentile_of_both_directions():
    pred, gt = random_pair((9, 32, 28), seed=5, touch_edge=False)
    pooled = score(pred, gt, SPACING_3D, replace(SAMATLAS_VOXELS, hd95="pooled")).hd95
    directed = score(pred, gt, SPACING_3D, SAMATLAS_VOXELS).hd95
    assert pooled <= directed and pooled != directed


@pytest.mark.parametrize("conv", list(PRESETS.values()) + [SURFELS_POOLED], ids=lambda c: c.name)
@pytest.mark.parametrize(("shape", "spacing"), [((4, 10, 20), SPACING_3D), ((10, 20), SPACING_2D)])
def test_empty_masks_under_every_convention(conv, shape, spacing):
    empty = np.zeros(shape, bool)
    full = empty.copy()
    full[(slice(1, 3),) * len(shape)] = True
    unit_spacing = (1.0,) * len(shape) if conv.nsd_unit == "px" else spacing
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, unit_spacing)))
    both = score(empty, empty, spacing, conv)
    assert (both.dice, both.iou, both.nsd, both.hd95, both.convention) == (1.0, 1.0, 1.0, 0.0, conv.name)
    for pred, gt in ((full, empty), (empty, full)):  # GT empty, then prediction empty
        one = score(pred, gt, spacing, conv)
        assert (one.dice, one.iou, one.nsd) == (0.0, 0.0, 0.0)
        assert one.hd95 == pytest.approx(diagonal)


def test_names_params_and_presets():
    assert CVPR24_3D.name == "surfels-2mm-gate0.2-max" and CVPR24_2D.name == "surfels-slab-2px-gate0.2-max"
    assert SURFELS_2D_2PX.name == "surfels-2px-gate0.2-max"
    assert MEDSAM_PAPER.name == "surfels-2mm-nogate-max" and SURFELS_POOLED.name == "surfels-2mm-nogate-pooled"
    assert DEFAULT_CONVENTION is SAMATLAS_VOXELS and SAMATLAS_VOXELS.name == "voxels-2mm-nogate-max"
    assert MetricConvention(**CVPR24_3D.to_params()) == CVPR24_3D
    assert CVPR24_3D.to_params() == {
        "surface": "surfels", "nsd_tolerance": 2.0, "nsd_unit": "mm", "nsd_gate_dice": 0.2, "hd95": "max-directed",
        "lift_2d": False,
    }
    assert MetricConvention(**CVPR24_2D.to_params()) == CVPR24_2D
    assert convention("cvpr24-3d") is CVPR24_3D
    with pytest.raises(ValueError, match="unknown metric convention 'nope'; choose from samatlas-voxels"):
        convention("nope")
    for bad in ({"surface": "edges"}, {"nsd_unit": "cm"}, {"hd95": "mean"}, {"nsd_gate_dice": 1.5}, {"lift_2d": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MetricConvention(**bad)


def test_the_specs_default_scoring_is_the_default_convention():
    """records.specs cannot import tasks.metrics (it is the leaf), so it restates the default: keep them equal."""
    from records.specs import DEFAULT_SCORING
    from tasks.metrics import DEFAULT_CONVENTION, MetricConvention

    assert DEFAULT_SCORING == DEFAULT_CONVENTION.to_params()
    assert MetricConvention(**DEFAULT_SCORING) == DEFAULT_CONVENTION
