"""micro-sam's instance metrics: hand-worked images, and a brute-force matching over permutations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tasks.instance_metrics import THRESHOLDS, image_scores, instance_map, iou_matrix, match, relabel


def boxes(shape: tuple[int, int], *rects: tuple[int, int, int, int]) -> np.ndarray:
    """A label image with rectangle k+1 at rows r0:r1, cols c0:c1."""
    out = np.zeros(shape, np.int32)
    for k, (r0, r1, c0, c1) in enumerate(rects, start=1):
        out[r0:r1, c0:c1] = k
    return out


def test_thresholds_are_elfs() -> None:
    assert len(THRESHOLDS) == 10 and THRESHOLDS[0] == 0.5 and THRESHOLDS[5] == pytest.approx(0.75)
    assert THRESHOLDS[-1] == pytest.approx(0.95)


def test_hand_worked_image() -> None:
    gt = boxes((20, 20), (0, 4, 0, 4), (10, 14, 10, 14))  # two 4x4 squares
    pred = boxes((20, 20), (0, 4, 0, 4), (10, 14, 12, 16))  # exact; shifted by 2: overlap 8, union 24
    np.testing.assert_allclose(iou_matrix(pred, gt), [[1.0, 0.0], [0.0, 1 / 3]])
    scores = match(pred, gt)
    assert scores.tp == (1,) * 10 and (scores.n_gt, scores.n_pred) == (2, 2)
    assert scores.sa50 == pytest.approx(1 / 3) and scores.msa == pytest.approx(1 / 3)
    half = boxes((20, 20), (0, 4, 0, 4), (10, 14, 12, 14))  # half of the second square: IoU exactly 0.5
    scores = match(half, gt)
    assert scores.tp == (2,) + (1,) * 9
    assert scores.sa50 == 1.0 and scores.sa75 == pytest.approx(1 / 3)
    assert scores.msa == pytest.approx((1 + 9 / 3) / 10)


def test_empty_cases() -> None:
    gt = boxes((8, 8), (0, 4, 0, 4))
    nothing = np.zeros((8, 8), np.int32)
    assert match(nothing, gt).msa == 0.0 and match(gt, nothing).msa == 0.0
    assert match(nothing, nothing).accuracies == (0.0,) * 10  # elf: TP = 0 scores 0, even with nothing to find


def test_paste_largest_first_and_fragments_count_as_instances() -> None:
    big = np.zeros((10, 10), bool)
    big[0:6, 0:6] = True
    small = np.zeros((10, 10), bool)
    small[4:8, 4:8] = True  # 16 px, 4 of them under the big mask
    pasted = instance_map([small, big], (10, 10))
    assert pasted[5, 5] == pasted[0, 0] and pasted[7, 7] != pasted[0, 0]  # the big one keeps the overlap
    assert np.count_nonzero(pasted == pasted[7, 7]) == 12
    covered = np.zeros((10, 10), bool)
    covered[1:3, 1:3] = True  # entirely under the big mask: pasted after it, it keeps no pixel
    assert instance_map([covered, big, np.zeros((10, 10), bool)], (10, 10)).max() == 1  # empty masks add none
    two_parts = np.zeros((10, 10), bool)
    two_parts[0:2, 0:2] = two_parts[8:10, 8:10] = True
    scores = image_scores([two_parts], boxes((10, 10), (0, 2, 0, 2)))
    assert (scores.n_pred, scores.n_gt, scores.tp[0]) == (2, 1, 1) and scores.sa50 == 0.5  # the far part is an FP


def test_gt_relabelled_by_components_and_touching_ids_kept_apart() -> None:
    gt = np.zeros((6, 6), np.int32)
    gt[0, 0] = gt[5, 5] = 3  # one label, two components: two GT instances
    gt[2, 2:4] = 1
    gt[3, 2:4] = 2  # touching a different id: still its own instance
    assert relabel(gt).max() == 4
    diagonal = np.zeros((3, 3), np.int32)
    diagonal[0, 0] = diagonal[1, 1] = 1
    assert relabel(diagonal).max() == 2  # face connectivity


def brute_force_tp(ious: np.ndarray, threshold: float) -> int:
    """The most pairs with IoU >= threshold over every injective assignment (tiny images only)."""
    n_pred, n_gt = ious.shape
    if min(n_pred, n_gt) == 0:
        return 0
    best = 0
    small, large = (n_pred, n_gt) if n_pred <= n_gt else (n_gt, n_pred)
    for perm in itertools.permutations(range(large), small):
        pairs = [(i, j) if n_pred <= n_gt else (j, i) for i, j in enumerate(perm)]
        best = max(best, sum(ious[p, g] >= threshold for p, g in pairs))
    return best


def random_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Up to ``n`` random rectangles on a 12x12 grid, later ones painted over earlier ones, relabelled."""
    out = np.zeros((12, 12), np.int32)
    for k in range(1, n + 1):
        r0, c0 = rng.integers(0, 10, size=2)
        out[r0 : r0 + rng.integers(1, 6), c0 : c0 + rng.integers(1, 6)] = k
    return relabel(out)


def test_hungarian_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        pred, gt = random_labels(rng, int(rng.integers(0, 5))), random_labels(rng, int(rng.integers(0, 5)))
        ious = iou_matrix(pred, gt)
        scores = match(pred, gt)
        assert scores.n_pred == pred.max() and scores.n_gt == gt.max()
        for t, tp in zip(THRESHOLDS, scores.tp):
            assert tp == brute_force_tp(ious, t)
        low = (0.05, 0.1, 0.2, 0.3)  # below 0.5 a prediction can reach several GTs: the assignment matters
        assert match(pred, gt, low).tp == tuple(brute_force_tp(ious, t) for t in low)
        expected = [tp / (tp + (scores.n_pred - tp) + (scores.n_gt - tp)) if tp else 0.0 for tp in scores.tp]
        assert scores.msa == pytest.approx(np.mean(expected))


# ---------------------------------------------------------------- per slice, in an evaluation unit


@pytest.fixture(scope="module")
def three_squares(tmp_path_factory):
    """A stored one-slice case with three 8x8 labelled squares."""
    from tasks.store import write_case
    from tasks.volume import Volume

    mask = np.zeros((1, 40, 40), np.uint8)
    for label, (r, c) in enumerate(((2, 2), (2, 20), (20, 10)), start=1):
        mask[0, r : r + 8, c : c + 8] = label
    volume = Volume(image=mask[None].astype(np.float32) * 50, mask=mask, spacing=(1.0, 1.0, 1.0),
                    origin=(0.0, 0.0, 0.0), original_affine=np.eye(4).tolist())
    return write_case(tmp_path_factory.mktemp("store"), "ds", "c1", volume, {"window": [[0.0, 255.0]]})


def run_box_only(path, labels):
    from records.units import PlannedObject
    from tasks.evaluate_unit import PlannedSpec, RunStamp, run_unit
    from tasks.models import load_model
    from tasks.protocols import get_protocol

    protocol = get_protocol("microsam")
    spec = protocol.spec("microsam-box-only")
    objects = [PlannedObject(0, label, f"t{label}", "CT", "chest", (spec.id,)) for label in labels]
    return spec, run_unit(path, "ds", "c1", objects, load_model("filled-box"), {spec.id: PlannedSpec(spec, protocol)},
                          RunStamp("run-1", "test"))


def test_unit_writes_one_instance_row_per_slice_and_step(three_squares) -> None:
    spec, result = run_box_only(three_squares, (1, 2, 3))
    assert len(result.rows) == 3
    (row,) = result.instances
    assert (row.dataset, row.case_id, row.slice_index, row.spec_id, row.step) == ("ds", "c1", 0, spec.id, 1)
    # filled-box fills the exclusive box one pixel past the object: 9x9 over 8x8, IoU 64/81 = 0.79
    assert all(r.iou == pytest.approx(64 / 81) for r in result.rows)
    assert (row.n_gt, row.n_pred) == (3, 3) and row.tp == [3] * 6 + [0] * 4
    assert row.sa50 == row.sa75 == 1.0 and row.msa == pytest.approx(0.6)


def test_a_slice_with_objects_left_out_gets_no_instance_row(three_squares) -> None:
    _, result = run_box_only(three_squares, (1, 3))
    assert len(result.rows) == 2 and result.instances == []


def test_instance_rows_reach_the_catalog_summary_and_report(three_squares, tmp_path) -> None:
    from catalog.query import INSTANCE_SUMMARY_SQL, connect
    from catalog.report import write_report
    from flows.evaluate import ResultBuffer
    from records.rows import InstanceRow, ResultRow, to_table

    spec, result = run_box_only(three_squares, (1, 2, 3))
    catalog = tmp_path / "catalog"
    buffer = ResultBuffer(catalog, rows=10**6, seconds=10**6)
    for _ in range(2):  # a retried unit adds no key twice
        buffer.add(to_table(result.rows, ResultRow), to_table(result.instances, InstanceRow))
    buffer.flush()
    assert (buffer.committed, buffer.committed_instances) == (3, 1)
    cursor = connect(catalog).execute(INSTANCE_SUMMARY_SQL)
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    assert row["images"] == 1 and row["msa"] == pytest.approx(0.6) and row["spec_label"] == spec.label
    report = write_report(catalog, tmp_path / "report", overlays=False).read_text()
    assert "## Instance segmentation (micro-sam)" in report and "microsam-box-only" in report
