"""tasks.metrics against an independent brute-force reference, known anisotropic phantoms and the empty-mask convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from dataclasses import replace

import tasks.metrics as metrics
from tasks.metrics import (
    PRESETS, SAMATLAS_VOXELS, MetricConvention, Reference, Scores, dice, hd95, iou, nsd, score,
)

SPACING_3D = (5.0, 0.7, 0.7)  # (z, y, x) mm: thick CT slices
SPACING_2D = (0.7, 1.3)  # (y, x) mm


def voxels(tolerance: float) -> MetricConvention:
    """samatlas' original edge-voxel convention at another tolerance (mm)."""
    return replace(SAMATLAS_VOXELS, nsd_tolerance=tolerance)


def blob(shape: tuple[int, ...], seed: int, sigma: float = 2.0, level: float = 0.3) -> np.ndarray:
    """A few irregular objects: smoothed Gaussian noise above a fraction of its maximum."""
    noise = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return noise > level * noise.max()


def pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference blob and a prediction that overlaps it imperfectly (same field, other noise, other level)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), 2.0)
    gt = field > 0.3 * field.max()
    pred = field + 0.3 * field.std() * gaussian_filter(rng.standard_normal(shape), 1.0) > 0.25 * field.max()
    return pred, gt


def reference_boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with at least one face neighbour outside it (outside the array is background)."""
    padded = np.pad(mask, 1, constant_values=False)
    edge = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            neighbour = tuple(
                slice(1 + step, n + 1 + step) if a == axis else slice(1, n + 1) for a, n in enumerate(mask.shape)
            )
            edge |= mask & ~padded[neighbour]
    return edge


def reference_scores(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...], tolerance: float) -> Scores:
    """The published definitions written out by brute force: explicit neighbour checks and all pairwise distances."""
    overlap, n_pred, n_gt = (pred & gt).sum(), pred.sum(), gt.sum()
    points_pred = np.argwhere(reference_boundary(pred)) * np.asarray(spacing)
    points_gt = np.argwhere(reference_boundary(gt)) * np.asarray(spacing)
    pairwise = cdist(points_pred, points_gt)
    pred_to_gt, gt_to_pred = pairwise.min(axis=1), pairwise.min(axis=0)
    within = (pred_to_gt <= tolerance).sum() + (gt_to_pred <= tolerance).sum()
    return Scores(
        dice=2 * overlap / (n_pred + n_gt),
        iou=overlap / (n_pred + n_gt - overlap),
        nsd=within / (len(pred_to_gt) + len(gt_to_pred)),
        hd95=max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)),
    )


def assert_scores_close(got: Scores, want: Scores, tol: float = 1e-6) -> None:
    for name in ("dice", "iou", "nsd", "hd95"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=tol), name


def embed(mask: np.ndarray, shape: tuple[int, ...], corner: tuple[int, ...]) -> np.ndarray:
    """The mask placed at ``corner`` of an otherwise empty array of ``shape``."""
    big = np.zeros(shape, dtype=bool)
    big[tuple(slice(c, c + n) for c, n in zip(corner, mask.shape, strict=True))] = mask
    return big


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("shape", "spacing"), [((10, 36, 36), SPACING_3D), ((64, 64), SPACING_2D)])
@pytest.mark.parametrize("tolerance", [1.0, 2.0])
def test_score_matches_brute_force_reference(seed, shape, spacing, tolerance):
    pred, gt = pair(shape, seed)
    assert pred.any() and gt.any() and not np.array_equal(pred, gt)
    assert_scores_close(score(pred, gt, spacing, voxels(tolerance)), reference_scores(pred, gt, spacing, tolerance))


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_single_metric_functions_agree_with_score(seed):
    pred, gt = pair((10, 36, 36), seed)
    both = score(pred, gt, SPACING_3D, voxels(2.0))
    assert dice(pred, gt) == both.dice
    assert iou(pred, gt) == both.iou
    assert nsd(pred, gt, SPACING_3D, voxels(2.0)) == both.nsd
    assert hd95(pred, gt, SPACING_3D) == both.hd95


@pytest.mark.parametrize(
    ("shape", "corner", "spacing"),
    [
        ((40, 300, 300), (17, 130, 90), SPACING_3D),  # small object deep inside a big volume
        ((40, 300, 300), (0, 0, 288), SPACING_3D),  # touching the array's faces: the padding is clipped
        ((512, 512), (200, 311), SPACING_2D),
        ((512, 512), (500, 0), SPACING_2D),
    ],
)
def test_cropping_to_the_objects_changes_nothing(shape, corner, spacing):
    small_shape = (6, 12, 12) if len(shape) == 3 else (12, 12)
    pred, gt = pair(small_shape, seed=5)
    big_pred, big_gt = embed(pred, shape, corner), embed(gt, shape, corner)
    got = score(big_pred, big_gt, spacing)
    assert_scores_close(got, reference_scores(big_pred, big_gt, spacing, 2.0))
    assert got == score(pred, gt, spacing)  # the object's own tight array: same values exactly


@pytest.mark.parametrize(("shape", "spacing"), [((120, 140), SPACING_2D), ((12, 60, 70), SPACING_3D)])
def test_a_shared_reference_scores_as_a_fresh_one(shape, spacing, monkeypatch):
    """One Reference scoring predictions of every reach (near the object, far off in a corner, so
    that its kept transform must grow, then near again) under every convention gives exactly the
    scores of a fresh ``score`` call each time, while it makes about half the feature transforms."""
    small = (6, 12, 12) if len(shape) == 3 else (12, 12)
    pred, gt = pair(small, seed=7)
    inner = (3, 40, 50) if len(shape) == 3 else (40, 50)
    far = tuple(n - k for n, k in zip(shape, small))
    big_gt = embed(gt, shape, inner)
    preds = [embed(pred, shape, inner), embed(pred, shape, far), embed(pred, shape, (0,) * len(shape)),
             embed(pred, shape, inner) | embed(gt, shape, far), big_gt, embed(pred, shape, inner)]
    conventions = [c for c in PRESETS.values() if not c.lift_2d or len(shape) == 2]
    fresh = [score(p, big_gt, spacing, c) for c in conventions for p in preds]
    transforms = []
    real = metrics.distance_transform_edt
    monkeypatch.setattr(metrics, "distance_transform_edt", lambda *a, **k: transforms.append(1) or real(*a, **k))
    reference = Reference(big_gt, spacing)
    assert [reference.score(p, c) for c in conventions for p in preds] == fresh
    kinds = {(c.surface, c.lift_2d, c.nsd_unit == "px") for c in conventions}
    assert len(transforms) <= len(fresh) + 3 * len(kinds)  # a fresh call makes two each
    assert reference.voxels == int(big_gt.sum())


@pytest.mark.parametrize("percent", [95, 0, 50, 100, 99.5])
def test_percentile_is_numpys_bitwise(percent):
    """The hand-written percentile returns numpy.percentile's float exactly, on arrays of every length
    up to 1200 (every position of the virtual index and its weight) of spread, tied and rounded distances."""
    rng = np.random.default_rng(5)
    for n in [*range(1, 1201), 4099]:
        for values in (rng.random(n) * 50, np.sqrt(rng.integers(0, 30, n).astype(float)), np.round(rng.random(n) * 3, 1)):
            want = float(np.percentile(values, percent))
            assert metrics._percentile(values, percent) == want, (n, percent)


@pytest.mark.parametrize("shape", [(30, 41), (7, 20, 23)])
@pytest.mark.parametrize("seed", range(3))
def test_eroded_is_scipys_face_erosion(shape, seed):
    """The hand-written erosion equals SciPy's, masks running off the array's faces included."""
    from scipy.ndimage import binary_erosion

    mask = blob(shape, seed, sigma=1.5, level=0.1)
    mask[0] |= mask[1]  # foreground on the low and high faces of the first axis
    mask[-1] = True
    assert np.array_equal(metrics._eroded(mask), binary_erosion(mask))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notice about get_mask_edges
@pytest.mark.parametrize("seed", [20, 21, 22])
@pytest.mark.parametrize(("shape", "spacing"), [((10, 36, 36), SPACING_3D), ((64, 64), SPACING_2D)])
def test_agrees_with_monai(seed, shape, spacing):
    """MONAI's compute_surface_dice (edge voxels) and compute_hausdorff_distance(percentile=95); MONAI works in float32."""
    import monai.metrics as monai_metrics  # a declared test dependency: a missing one must fail, not skip
    import torch
    pred, gt = pair(shape, seed)
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(gt[None, None].astype(np.float32))
    want_nsd = monai_metrics.compute_surface_dice(y_pred, y, [2.0], include_background=True, spacing=list(spacing))
    want_hd95 = monai_metrics.compute_hausdorff_distance(
        y_pred, y, include_background=True, percentile=95, spacing=list(spacing)
    )
    got = score(pred, gt, spacing, voxels(2.0))
    assert got.nsd == pytest.approx(float(want_nsd), abs=1e-6)
    assert got.hd95 == pytest.approx(float(want_hd95), rel=1e-6)


def test_anisotropic_phantom_distances_follow_the_axis_spacing():
    """Two 5x10x10 boxes offset by 2 voxels: along z (5 mm) HD95 is 10 mm, along x (0.7 mm) it is 1.4 mm."""
    gt = np.zeros((20, 20, 20), dtype=bool)
    gt[5:10, 5:15, 5:15] = True
    shifted_z = np.roll(gt, 2, axis=0)
    shifted_x = np.roll(gt, 2, axis=2)
    assert hd95(shifted_z, gt, SPACING_3D) == pytest.approx(10.0)
    assert hd95(shifted_x, gt, SPACING_3D) == pytest.approx(1.4)
    # Every boundary voxel is within 1.4 mm of the other boundary for the x shift, not for the z shift.
    assert nsd(shifted_x, gt, SPACING_3D, voxels(2.0)) == 1.0
    assert nsd(shifted_z, gt, SPACING_3D, voxels(2.0)) < 0.8
    # Spacing given in (x, y, z) order instead of array order swaps the answers: the bug this catches.
    reversed_spacing = SPACING_3D[::-1]
    assert hd95(shifted_z, gt, reversed_spacing) == pytest.approx(1.4)
    assert hd95(shifted_x, gt, reversed_spacing) == pytest.approx(10.0)
    assert nsd(shifted_z, gt, reversed_spacing, voxels(2.0)) == 1.0


def test_anisotropic_phantom_2d():
    """A 12x12 square offset by 3 pixels: along y (0.7 mm) HD95 is 2.1 mm, along x (1.3 mm) 3.9 mm."""
    gt = np.zeros((30, 30), dtype=bool)
    gt[8:20, 8:20] = True
    assert hd95(np.roll(gt, 3, axis=0), gt, SPACING_2D) == pytest.approx(2.1)
    assert hd95(np.roll(gt, 3, axis=1), gt, SPACING_2D) == pytest.approx(3.9)
    assert hd95(np.roll(gt, 3, axis=0), gt, SPACING_2D[::-1]) == pytest.approx(3.9)


def test_parallel_plates_give_the_exact_offset():
    """One-voxel-thick plates are all boundary: every distance is exactly the offset in mm."""
    gt = np.zeros((12, 12, 12), dtype=bool)
    gt[3, 2:10, 2:10] = True
    pred = np.roll(gt, 1, axis=0)
    got = score(pred, gt, SPACING_3D, voxels(4.99))
    assert (got.dice, got.iou, got.nsd, got.hd95) == (0.0, 0.0, 0.0, 5.0)
    assert nsd(pred, gt, SPACING_3D, voxels(5.0)) == 1.0  # a distance equal to the tolerance counts


@pytest.mark.parametrize("seed", range(5))
def test_dice_is_a_function_of_iou(seed):
    pred, gt = pair((48, 48), seed)
    j = iou(pred, gt)
    assert 0 < j < 1
    assert dice(pred, gt) == pytest.approx(2 * j / (1 + j), abs=1e-12)


@pytest.mark.parametrize(("shape", "spacing"), [((10, 36, 36), SPACING_3D), ((64, 64), SPACING_2D)])
def test_identical_masks_are_perfect(shape, spacing):
    mask = blob(shape, seed=7)
    assert score(mask, mask.copy(), spacing) == Scores(dice=1.0, iou=1.0, nsd=1.0, hd95=0.0, convention="voxels-2mm-nogate-max")


def test_zero_one_integer_masks_are_accepted():
    pred, gt = pair((64, 64), seed=3)
    assert score(pred.astype(np.uint8), gt.astype(np.uint8), SPACING_2D) == score(pred, gt, SPACING_2D)


def test_both_empty_is_perfect_agreement():
    empty = np.zeros((4, 5, 6), dtype=bool)
    assert score(empty, empty, SPACING_3D) == Scores(dice=1.0, iou=1.0, nsd=1.0, hd95=0.0, convention="voxels-2mm-nogate-max")
    assert (dice(empty, empty), iou(empty, empty)) == (1.0, 1.0)
    assert (nsd(empty, empty, SPACING_3D), hd95(empty, empty, SPACING_3D)) == (1.0, 0.0)


@pytest.mark.parametrize("which", ["pred", "gt"])
def test_one_empty_takes_the_worst_value(which):
    empty = np.zeros((4, 5, 6), dtype=bool)
    full = empty.copy()
    full[1:3, 2:4, 2:5] = True
    pred, gt = (empty, full) if which == "pred" else (full, empty)
    diagonal = math.sqrt((4 * 5.0) ** 2 + (5 * 0.7) ** 2 + (6 * 0.7) ** 2)
    got = score(pred, gt, SPACING_3D)
    assert got == Scores(dice=0.0, iou=0.0, nsd=0.0, hd95=pytest.approx(diagonal, rel=1e-12))
    assert (dice(pred, gt), iou(pred, gt), nsd(pred, gt, SPACING_3D)) == (0.0, 0.0, 0.0)
    assert hd95(pred, gt, SPACING_3D) == got.hd95
    assert all(math.isfinite(v) for v in (got.dice, got.iou, got.nsd, got.hd95))


def test_empty_in_2d_uses_the_slice_extent():
    empty = np.zeros((100, 50), dtype=bool)
    full = empty.copy()
    full[10, 10] = True
    assert hd95(full, empty, SPACING_2D) == pytest.approx(math.hypot(100 * 0.7, 50 * 1.3))


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: dice(a, b),
        lambda a, b: iou(a, b),
        lambda a, b: nsd(a, b, SPACING_3D),
        lambda a, b: hd95(a, b, SPACING_3D),
        lambda a, b: score(a, b, SPACING_3D),
    ],
)
def test_shape_mismatch_is_refused(call):
    with pytest.raises(ValueError, match="same shape"):
        call(np.zeros((4, 5, 6), dtype=bool), np.zeros((4, 5, 7), dtype=bool))


@pytest.mark.parametrize("function", [nsd, hd95, score])
def test_wrong_spacing_is_refused(function):
    mask = np.zeros((4, 5, 6), dtype=bool)
    with pytest.raises(ValueError, match="one size per array axis"):
        function(mask, mask, (0.7, 0.7))
    with pytest.raises(ValueError, match="finite and positive"):
        function(mask, mask, (5.0, 0.0, 0.7))


def test_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="nsd_tolerance"):
        voxels(-1.0)
