"""The CVPR case summary's arithmetic on synthetic volume rows (no image behind them: the numbers are
chosen so every mean, gate and trapezoid can be checked by hand)."""

from __future__ import annotations

import dataclasses

import pytest

from catalog import tables
from catalog.query import CVPR_CASES_SQL, CVPR_SUMMARY_SQL, connect
from records.rows import VOLUME, ResultRow
from tasks.protocols import get_protocol
from tests.synthetic_rows import result_row

SPEC = get_protocol("cvpr25-interactive").specs[0]


def volume_row(case_id: str, label: int, step: int, dice: float, nsd: float) -> ResultRow:
    row = result_row(case_id, -1, SPEC, step=step, dice=dice, label=label)
    return dataclasses.replace(row, scope=VOLUME, nsd=nsd)


@pytest.fixture()
def catalog(tmp_path):
    rows = []
    for step, (d1, d2) in enumerate([(0.1, 0.2), (0.5, 0.7), (0.6, 0.8), (0.7, 0.9), (0.8, 0.9), (0.9, 1.0)], start=1):
        rows += [volume_row("a", 1, step, d1, d1 + 0.05), volume_row("a", 2, step, d2, d2 + 0.05)]
    for step in range(1, 7):  # a case whose mean DSC never passes the gate: NSD 0 at every step
        rows.append(volume_row("b", 1, step, 0.2, 0.9))
    tables.insert_missing(tmp_path, rows, ResultRow)
    return tmp_path


def test_case_scores_average_the_labels_gate_nsd_on_the_case_dice_and_integrate_the_clicks(catalog):
    con = connect(catalog)
    cursor = con.execute(CVPR_CASES_SQL)
    names = [d[0] for d in cursor.description]
    cases = {r[names.index("case_id")]: dict(zip(names, r)) for r in cursor.fetchall()}
    a, b = cases["a"], cases["b"]
    assert a["labels"] == 2 and a["steps"] == 6
    assert a["dsc_first"] == pytest.approx(0.15)
    assert a["nsd_first"] == 0.0  # step 1 mean DSC 0.15 <= 0.2
    assert a["dsc_final"] == pytest.approx(0.95) and a["nsd_final"] == pytest.approx(1.0)
    # click steps 2..6 mean DSC: 0.6, 0.7, 0.8, 0.85, 0.95 -> 0.3 + 0.7 + 0.8 + 0.85 + 0.475
    assert a["dsc_auc"] == pytest.approx(3.125)
    assert a["nsd_auc"] == pytest.approx(3.125 + 4 * 0.05)
    assert b["nsd_final"] == 0.0 and b["nsd_auc"] == 0.0  # DSC 0.2 is not > 0.2
    assert b["dsc_auc"] == pytest.approx(0.8)


def test_summary_averages_the_case_scores(catalog):
    cursor = connect(catalog).execute(CVPR_SUMMARY_SQL)
    names = [d[0] for d in cursor.description]
    [row] = [dict(zip(names, r)) for r in cursor.fetchall()]
    assert row["cases"] == 2
    assert row["dsc_auc"] == pytest.approx((3.125 + 0.8) / 2, abs=1e-4)
    assert row["dsc_final"] == pytest.approx((0.95 + 0.2) / 2, abs=1e-4)
