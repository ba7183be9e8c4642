"""Exactly one row per result key, and none missing: after option changes, overlapping runs, a
killed run and a retried unit (real sample cases; the filled-box baseline where the model does not
matter, LiteMedSAM on few slices where point prompts are needed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog.query import connect
from flows.plan import Plan
from records.rows import RESULT_KEY
from tests.conftest import copy_catalog, run_samatlas, seed_cache

pytestmark = pytest.mark.slow
KEY = ", ".join(RESULT_KEY)


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


def duplicates(root: Path) -> int:
    return query(root, f"SELECT count(*) FROM (SELECT {KEY} FROM results GROUP BY ALL HAVING count(*) > 1)")[0][0]


def orphans(root: Path) -> int:
    """Result rows whose run has no ``runs`` row."""
    return query(root, "SELECT count(*) FROM results r ANTI JOIN runs USING (run_id)")[0][0]


@pytest.fixture
def root(ingested_samples: Path, data_root: Path) -> Path:
    """This test's data root (its settings point there) with a private copy of the ingested catalog
    (its store is shared and only read)."""
    return copy_catalog(ingested_samples, data_root)


def plan_of(root: Path, model: str, protocol: str, max_slices_per_case: int = 0, cases: tuple[str, ...] = (),
            **options: int) -> Plan:
    """What ``samatlas evaluate`` would still compute, planned in this process by the function the
    command plans with (a command costs a process start, a Prefect run and, with a model, a cluster)."""
    from flows.evaluate import build_protocols, plan_run, planned_specs

    specs = planned_specs(build_protocols([protocol], options))
    return plan_run(root / "catalog", model, None, specs, None, list(cases), max_slices_per_case, "cpu")[1]


def evaluate(root: Path, *args: str) -> str:
    done = run_samatlas(root, "evaluate", "--workers", "1", *args)
    assert done.exit_code == 0, done.output
    return done.output


def test_options_changed_then_restored(root: Path):
    """--clicks 3, then 2: the click sequences of each count exist once, the modes (which do not
    depend on the count) once, and --clicks 3 again has nothing left to compute."""
    one = ("--case", "brain1", "--max-slices-per-case", "1", "--protocol", "mazurowski")
    evaluate(root, *one, "--clicks", "3")
    second = evaluate(root, *one, "--clicks", "2")
    assert "wrote 4 result rows" in second  # clicks 1-2, default and oracle; the modes are done
    assert not plan_of(root, "litemedsam", "mazurowski", 1, ("brain1",), clicks=3).units
    rows = dict(query(root, "SELECT protocol || ' ' || spec, count(*) FROM results GROUP BY ALL"))
    clicks = {k: v for k, v in rows.items() if k.startswith("mazurowski-clicks ")}
    assert sorted(clicks.values()) == [2, 3] and sorted(json.loads(k.split(" ", 1)[1])["clicks"] for k in clicks) == [2, 3]
    assert sum(v for k, v in rows.items() if "-m" in k.split(" ")[0]) == 10  # five modes x two mask choices
    assert duplicates(root) == 0 and orphans(root) == 0


def test_two_overlapping_runs(root: Path):
    """Two evaluate runs started together on one data root, with different selections, end with
    every planned key exactly once, and every row belongs to a recorded run."""
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(seed_cache(root)),
           "SAMATLAS_COMMIT_ROWS": "1"}
    exe = str(Path(sys.executable).with_name("samatlas"))
    args = [[exe, "evaluate", "--model", "filled-box", "--workers", "1"],
            [exe, "evaluate", "--model", "filled-box", "--workers", "1", "--case", "brain1", "--case", "lung2"]]
    procs = [subprocess.Popen(a, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for a in args]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    expected = query(root, "SELECT count(*) FROM objects WHERE area_px >= 10")[0][0]
    assert query(root, "SELECT count(*) FROM results")[0][0] == expected
    assert duplicates(root) == 0 and orphans(root) == 0
    assert not plan_of(root, "filled-box", "medsam-box").units


def test_killed_run_is_completed_by_a_rerun_that_computes_only_the_missing_keys(root: Path):
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(seed_cache(root)),
           "SAMATLAS_COMMIT_ROWS": "1"}
    slices = ("--max-slices-per-case", "2")
    expected = sum(u.objects for u in plan_of(root, "litemedsam", "medsam-box", 2).units)  # one step: a row per object
    exe = str(Path(sys.executable).with_name("samatlas"))
    # LiteMedSAM on two slices per case: a unit takes seconds, so the run is still going after its
    # first commit (filled-box would finish before the kill), and the re-run stays short.
    proc = subprocess.Popen([exe, "evaluate", "--workers", "1", *slices], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    present = 0
    while time.monotonic() < deadline and proc.poll() is None:
        present = query(root, "SELECT count(*) FROM results")[0][0] if (root / "catalog" / "results").exists() else 0
        if present:
            break
        time.sleep(0.5)
    assert proc.poll() is None and present, "the run should have committed a unit and still be running"
    os.killpg(proc.pid, signal.SIGKILL)  # the command and everything it started
    proc.wait()
    present = query(root, "SELECT count(*) FROM results")[0][0]
    assert 0 < present < expected
    (killed,) = query(root, "SELECT status FROM runs WHERE flow = 'evaluate'")
    assert killed == ("running",) and orphans(root) == 0  # its row was written before its results

    evaluate(root, *slices)
    assert query(root, "SELECT count(*) FROM results")[0][0] == expected and duplicates(root) == 0
    statuses = dict(query(root, "SELECT status, counts FROM runs WHERE flow = 'evaluate'"))
    assert set(statuses) == {"killed", "completed"}
    counts = json.loads(statuses["completed"])
    assert counts["committed"] == counts["rows"] == expected - present  # only the missing keys were computed


def test_a_retried_unit_adds_no_key_twice(ingested_samples: Path, tmp_path: Path):
    """A unit run twice (as a Prefect retry or a lost worker would) commits its keys once."""
    from flows.evaluate import ResultBuffer, evaluate_unit_task
    from flows.plan import plan_units
    from tasks.protocols import get_protocol

    catalog = tmp_path / "catalog"
    shutil.copytree(ingested_samples / "catalog", catalog)
    specs = get_protocol("medsam-box").specs
    (unit,) = [u for u in plan_units(catalog, "filled-box", "none", specs).units if u.case_id == "brain1"]
    buffer = ResultBuffer(catalog, rows=10**6, seconds=10**6)
    for _ in range(2):
        rows = evaluate_unit_task.fn(unit, "filled-box", None, "cpu", ["medsam-box"], {}, str(catalog), "run-x", 1).rows
        buffer.add(rows)
    buffer.flush()
    assert buffer.committed == rows.num_rows == len(unit.slices)
    rows = evaluate_unit_task.fn(unit, "filled-box", None, "cpu", ["medsam-box"], {}, str(catalog), "run-y", 1).rows
    assert rows.num_rows == 0  # the worker re-reads what is done when it starts
    assert duplicates(tmp_path) == 0
