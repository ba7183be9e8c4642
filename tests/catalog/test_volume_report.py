"""The report's 3D section on synthetic volume rows and synthetic stored predictions.

Two tiny 3D cases (cubes of labels 1 and 2 in ``a``, one cube in ``b``) are written by the store's own
writer; the results, volume_steps, volume_objects and cases rows are made up, with Dice values chosen
so every mean, pairing and best/worst pick can be checked by hand. The predictions stored in the
cases are made-up masks too: the test is about plumbing (which rows reach which table, which objects
are drawn from which stored image), not about any model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from catalog import tables
from catalog.figures import volume_picks
from catalog.query import connect
from catalog.report import write_report
from records.rows import VOLUME, CaseRow, ResultRow, VolumeObjectRow, VolumeStepRow
from tasks.predictions import PredictionInfo, prediction_name, store_prediction
from tasks.protocols import get_protocol
from tasks.store import write_case
from tasks.volume import Volume
from tests.synthetic_rows import case_row, result_row

GRID = (8, 24, 24)
SHA = "ab" * 32
CLICKS = get_protocol("cvpr25-interactive").specs[0]
BOX3D = get_protocol("cvpr24-box3d").specs[0]
SLICEWISE = get_protocol("slicewise-box3d").specs[0]
CUBES = {("a", 1): (slice(2, 6), slice(4, 12), slice(4, 12)),
         ("a", 2): (slice(1, 7), slice(14, 22), slice(14, 22)),
         ("b", 1): (slice(3, 5), slice(8, 16), slice(8, 16))}
KEY_SLICE = {("a", 1): 3, ("a", 2): 4, ("b", 1): 3}
# cvpr25-interactive per step: (a/1, a/2) and b/1 (whose case DSC never passes the 0.2 gate)
CLICK_DICE = [(0.1, 0.2), (0.5, 0.7), (0.6, 0.8), (0.7, 0.9), (0.8, 0.9), (0.9, 1.0)]
BOX3D_DICE = {("a", 1): 0.8, ("a", 2): 0.6, ("b", 1): 0.4}
SLICEWISE_DICE = {("a", 1): 0.9, ("a", 2): 0.5, ("b", 1): 0.7}


def gt(case_id: str) -> np.ndarray:
    mask = np.zeros(GRID, np.uint8)
    for (case, label), cube in CUBES.items():
        if case == case_id:
            mask[cube] = label
    return mask


def volume_result(case_id: str, label: int, spec, step: int, dice: float, nsd: float) -> ResultRow:
    row = result_row(case_id, -1, spec, step=step, sha=SHA, dice=dice, label=label)
    return dataclasses.replace(row, scope=VOLUME, nsd=nsd)


def volume_step(case_id: str, label: int, spec, step: int, prediction: str | None) -> VolumeStepRow:
    return VolumeStepRow(
        dataset="d", case_id=case_id, label=label, model="m", model_sha256=SHA, protocol=spec.name,
        spec_id=spec.id, step=step, visited=[KEY_SLICE[(case_id, label)]], encoder_calls=1, decoder_calls=1,
        gt_mm3=1.0, pred_mm3=1.0, seconds=0.0, prediction=prediction, run_id="r", modality="ct", anatomy="lung",
    )


def volume_object(case_id: str, label: int) -> VolumeObjectRow:
    z, y, x = CUBES[(case_id, label)]
    return VolumeObjectRow(
        dataset="d", case_id=case_id, subset="default", label=label, target="t",
        voxels=(z.stop - z.start) * (y.stop - y.start) * (x.stop - x.start), volume_mm3=1.0,
        bbox=[z.start, y.start, x.start, z.stop - 1, y.stop - 1, x.stop - 1], first_slice=z.start,
        last_slice=z.stop - 1, key_slice=KEY_SLICE[(case_id, label)], slices=z.stop - z.start, components=1,
        modality="ct", anatomy="lung",
    )


def name(spec, step: int) -> str:
    return prediction_name("m", SHA, spec.name, spec.id, step)


def store(path, spec, step: int, labels: dict[int, np.ndarray]) -> str:
    info = PredictionInfo(model="m", model_sha256=SHA, protocol=spec.name, spec_id=spec.id,
                          spec_label=spec.label, step=step, labels=tuple(labels), run_id="r")
    return store_prediction(path, info, labels)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("volume-report")
    paths = {}
    for case_id in ("a", "b"):
        mask = gt(case_id)
        volume = Volume(image=(mask[None] * 100).astype(np.float32), mask=mask, spacing=(2.0, 1.0, 1.0),
                        origin=(0.0, 0.0, 0.0), original_affine=np.eye(4).tolist())
        paths[case_id] = write_case(root / "store", "d", case_id, volume, {"window": [[0.0, 255.0]]})
    # Stored predictions: cvpr24-box3d for both cases (the GT cube shifted one voxel in x), cvpr25 step 6
    # for case a only; slicewise-box3d's steps name an image that was never stored.
    for case_id in ("a", "b"):
        shifted = {label: np.roll(gt(case_id) == label, 1, axis=2) for (c, label) in CUBES if c == case_id}
        store(paths[case_id], BOX3D, 1, shifted)
    store(paths["a"], CLICKS, 6, {1: gt("a") == 1, 2: gt("a") == 2})

    results, steps = [], []
    for step, (d1, d2) in enumerate(CLICK_DICE, start=1):
        for (case_id, label), dice in ((("a", 1), d1), (("a", 2), d2), (("b", 1), 0.2)):
            nsd = 0.9 if case_id == "b" else dice + 0.05
            results.append(volume_result(case_id, label, CLICKS, step, dice, nsd))
            steps.append(volume_step(case_id, label, CLICKS, step, name(CLICKS, step) if case_id == "a" and step == 6 else None))
    for (case_id, label) in CUBES:
        results.append(volume_result(case_id, label, BOX3D, 1, BOX3D_DICE[(case_id, label)], BOX3D_DICE[(case_id, label)]))
        steps.append(volume_step(case_id, label, BOX3D, 1, name(BOX3D, 1)))
        results.append(volume_result(case_id, label, SLICEWISE, 1, SLICEWISE_DICE[(case_id, label)], 0.5))
        steps.append(volume_step(case_id, label, SLICEWISE, 1, name(SLICEWISE, 1)))
    catalog = root / "catalog"
    tables.insert_missing(catalog, steps, VolumeStepRow)
    tables.insert_missing(catalog, results, ResultRow)
    scope = {"dataset": ["d"], "case_id": ["a", "b"]}
    tables.replace(catalog, [volume_object(c, label) for (c, label) in CUBES], VolumeObjectRow, scope)
    cases = [dataclasses.replace(case_row(c), shape=[1, *GRID], spacing=[2.0, 1.0, 1.0], zarr_path=str(paths[c]),
                                 n_objects=2 if c == "a" else 1, ingested_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
             for c in ("a", "b")]
    tables.replace(catalog, cases, CaseRow, scope)
    return catalog


def table_after(report: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table after ``heading``, as dicts by column name."""
    lines = report.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([cell.strip() for cell in line.strip("|").split("|")])
    columns, rows = block[0], block[2:]
    return [dict(zip(columns, row)) for row in rows]


@pytest.fixture(scope="module")
def report(catalog, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("report")
    return outdir, write_report(catalog, outdir, overlays=True).read_text()


def test_volume_table_scores_each_spec_at_its_final_step(report):
    _, text = report
    rows = {r["spec"].split()[0]: r for r in table_after(text, "## Volumes (3D)")}
    assert set(rows) == {"cvpr25-interactive", "cvpr24-box3d", "slicewise-box3d"}
    clicks = rows["cvpr25-interactive"]
    assert clicks["step"] == "6" and clicks["n"] == "3"
    assert float(clicks["dice_median"]) == 0.9 and float(clicks["dice_mean"]) == pytest.approx(0.7)
    assert float(clicks["dice_q1"]) == pytest.approx(0.55) and float(clicks["dice_q3"]) == pytest.approx(0.95)
    assert float(clicks["nsd_median"]) == 0.95  # a/1 0.95, a/2 1.05, b/1 0.9
    assert float(rows["cvpr24-box3d"]["dice_mean"]) == pytest.approx(0.6)
    assert "Per target, model and protocol spec at step 1, per slice" not in text  # no slice-scope rows


def test_cvpr_table_has_the_case_scores(report):
    _, text = report
    rows = {r["protocol"]: r for r in table_after(text, "## CVPR case scores (3D)")}
    clicks = rows["cvpr25-interactive"]
    assert clicks["cases"] == "2"
    # case a: DSC_AUC 3.125, final 0.95; case b: 0.8 and 0.2 (see tests/catalog/test_cvpr_summary.py)
    assert float(clicks["dsc_auc"]) == pytest.approx((3.125 + 0.8) / 2, abs=1e-4)
    assert float(clicks["dsc_final"]) == pytest.approx((0.95 + 0.2) / 2, abs=1e-4)
    assert float(rows["cvpr24-box3d"]["dsc_final"]) == pytest.approx(((0.8 + 0.6) / 2 + 0.4) / 2, abs=1e-4)
    assert rows["cvpr24-box3d"]["dsc_auc"] == ""  # one step: no click AUC


def test_propagation_is_paired_with_slicewise_boxes_on_the_same_objects(report):
    _, text = report
    rows = {r["spec"].split()[0]: r for r in table_after(text, "## Propagation against slice-wise boxes (3D)")}
    assert set(rows) == {"cvpr24-box3d", "cvpr25-interactive"}  # the baseline is not paired with itself
    box3d, clicks = rows["cvpr24-box3d"], rows["cvpr25-interactive"]
    assert box3d["n"] == "3" and float(box3d["difference_mean"]) == pytest.approx(-0.1)
    assert box3d["at_least_slicewise"] == "1"  # a/2: 0.6 against 0.5
    # cvpr25-interactive at step 1 (the box's propagation): 0.1, 0.2, 0.2 against 0.9, 0.5, 0.7
    assert float(clicks["dice_mean"]) == pytest.approx(0.167, abs=1e-3)
    assert float(clicks["difference_median"]) == pytest.approx(-0.5)


def test_figures_and_overlays_are_drawn_from_stored_predictions_only(report, catalog):
    outdir, text = report
    for png in ("volume_clicks.png", "volume_propagation.png", "volume_overlays.png"):
        assert (outdir / png).stat().st_size > 0 and f"]({png})" in text
    picks = {(p.protocol, p.pick): (p.case_id, p.label, p.key_slice) for p in volume_picks(connect(catalog))}
    assert picks == {
        ("cvpr24-box3d", "best"): ("a", 1, 3), ("cvpr24-box3d", "worst"): ("b", 1, 3),
        ("cvpr25-interactive", "best"): ("a", 2, 4), ("cvpr25-interactive", "worst"): ("b", 1, 3),
        ("slicewise-box3d", "best"): ("a", 1, 3), ("slicewise-box3d", "worst"): ("a", 2, 4),
    }
    skipped = text.split("Not drawn, prediction not stored: ", 1)[1].splitlines()[0]
    assert skipped.count(";") == 2  # cvpr25 worst (null name), both slicewise picks (name never stored)
    assert "m / cvpr25-interactive worst: d/b label 1" in skipped
    assert "slicewise-box3d best" in skipped and "slicewise-box3d worst" in skipped
    assert "cvpr24-box3d" not in skipped


def test_no_volume_section_without_volume_results(tmp_path):
    tables.insert_missing(tmp_path, [result_row("a", 0, get_protocol("medsam-box").specs[0])], ResultRow)
    text = write_report(tmp_path, tmp_path / "report", overlays=False).read_text()
    assert "## Volumes (3D)" not in text and "CVPR" not in text.split("## Published beside ours")[0]
