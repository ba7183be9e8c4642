"""Benchmark: planning, summaries and file counts of a large synthetic catalog (not a test).

Builds a catalog of N objects (100 per case: 50 slices x 2 labels, over 4 modalities x 5 anatomies)
through the project's own writer, committed the way ingest and evaluate commit (``catalog.tables``:
cases and objects replaced in batches of 256 cases, results inserted by key in batches of 50,000
rows), and R result rows under one spec (half the objects evaluated by default; with more rows, more
steps per object). Then, in one run, before and after ``catalog compact``:

* the dry-run plan of ``evaluate`` (``flows.plan.plan_units``) in a fresh child process: seconds and
  peak RSS of that process;
* the data files of each table;
* a grouped summary over all results (modality x anatomy x model x spec), in seconds.

The rows are synthetic: this measures storage and SQL, not models.

    python bench/catalog.py [--objects 1000000] [--results N] [--objects 10000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import tables  # noqa: E402
from catalog.query import connect, summary_sql  # noqa: E402
from records.rows import CaseRow, ObjectRow, ResultRow  # noqa: E402
from tasks.protocols import get_protocol  # noqa: E402

PER_CASE = 100
MODALITIES = np.array(["ct", "mr", "us", "xray"])
ANATOMIES = np.array(["abdomen", "brain", "chest", "heart", "pelvis"])
CASES_PER_COMMIT = 256  # flows/ingest.py
ROWS_PER_COMMIT = 50_000  # the evaluate default (SAMATLAS_COMMIT_ROWS)
SHA = "f" * 64


def case_table(first: int, count: int) -> pa.Table:
    ids = np.arange(first, first + count)
    n = len(ids)
    return pa.Table.from_pydict({
        "dataset": ["synth"] * n, "case_id": [f"case{i:08d}" for i in ids], "subset": ["default"] * n,
        "status": ["ok"] * n, "reason": [None] * n, "shape": [[1, 50, 256, 256]] * n, "spacing": [[1.0, 1.0, 1.0]] * n,
        "zarr_path": [f"/store/synth/case{i:08d}" for i in ids], "source_files": [[]] * n, "source_sha256": [[]] * n,
        "n_objects": [PER_CASE] * n, "ingested_at": [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n, "run_id": ["bench"] * n,
        "modality": MODALITIES[ids % 4].tolist(), "anatomy": ANATOMIES[ids % 5].tolist(),
    }, schema=CaseRow.SCHEMA)


def object_table(first: int, count: int, rng: np.random.Generator) -> pa.Table:
    case = np.repeat(np.arange(first, first + count), PER_CASE)
    within = np.tile(np.arange(PER_CASE), count)
    n = len(case)
    return pa.Table.from_pydict({
        "dataset": ["synth"] * n, "case_id": [f"case{i:08d}" for i in case], "subset": ["default"] * n,
        "slice_index": (within // 2).astype(np.int32), "label": (within % 2 + 1).astype(np.int32),
        "target": np.where(within % 2, "b", "a").tolist(), "area_px": rng.integers(5, 5000, n),
        "area_mm2": rng.random(n) * 5000, "bbox": [[0, 0, 10, 10]] * n, "components": np.ones(n, np.int32),
        "modality": MODALITIES[case % 4].tolist(), "anatomy": ANATOMIES[case % 5].tolist(),
    }, schema=ObjectRow.SCHEMA)


def result_table(objects: pa.Table, steps: int, spec, rng: np.random.Generator) -> pa.Table:
    """One row per object and step (the first ``steps`` steps of ``spec``)."""
    rep = objects.take(np.repeat(np.arange(objects.num_rows), steps))
    n = rep.num_rows
    dice = rng.random(n)
    return pa.Table.from_pydict({
        "dataset": rep["dataset"], "case_id": rep["case_id"], "scope": ["slice"] * n,
        "slice_index": rep["slice_index"], "label": rep["label"], "target": rep["target"],
        "model": ["litemedsam"] * n, "model_sha256": [SHA] * n, "protocol": [spec.name] * n,
        "spec_id": [spec.id] * n, "spec": [spec.params_json] * n, "spec_label": [spec.label] * n,
        "step": np.tile(np.arange(1, steps + 1, dtype=np.int32), objects.num_rows), "prompt": ["{}"] * n,
        "dice": dice, "iou": dice / (2 - dice), "nsd": rng.random(n), "hd95": rng.random(n) * 20,
        "gt_area_px": rep["area_px"], "pred_area_px": rep["area_px"], "model_score": rng.random(n),
        "encode_s": np.full(n, 1.5), "decode_s": np.full(n, 0.05), "run_id": ["bench"] * n, "code_version": ["bench"] * n,
        "modality": rep["modality"], "anatomy": rep["anatomy"],
    }, schema=ResultRow.SCHEMA)


def build(root: Path, n_objects: int, n_results: int) -> dict[str, float]:
    """Write the synthetic catalog; return the seconds each table took."""
    rng = np.random.default_rng(0)
    cases = n_objects // PER_CASE
    spec = get_protocol("microsam-iterative", iterations=max(1, -(-n_results // (n_objects // 2)))).specs[1]
    steps = spec.steps
    evaluated_objects = n_results // steps
    timings = {"objects_s": 0.0, "results_s": 0.0}
    pending: list[pa.Table] = []
    done_objects = 0
    for first in range(0, cases, CASES_PER_COMMIT):
        count = min(CASES_PER_COMMIT, cases - first)
        start = time.perf_counter()
        objects = object_table(first, count, rng)
        scope = {"dataset": ["synth"], "case_id": [f"case{i:08d}" for i in range(first, first + count)]}
        tables.replace(root, objects, ObjectRow, scope)
        tables.replace(root, case_table(first, count), CaseRow, scope)
        timings["objects_s"] += time.perf_counter() - start
        take = min(objects.num_rows, evaluated_objects - done_objects)
        if take > 0:
            pending.append(result_table(objects.slice(0, take), steps, spec, rng))
            done_objects += take
        start = time.perf_counter()
        while sum(t.num_rows for t in pending) >= ROWS_PER_COMMIT or (pending and first + count >= cases):
            batch = pa.concat_tables(pending)
            tables.insert_missing(root, batch.slice(0, ROWS_PER_COMMIT), ResultRow)
            rest = batch.slice(ROWS_PER_COMMIT)
            pending = [rest] if rest.num_rows else []
        timings["results_s"] += time.perf_counter() - start
        print(f"\r  {first + count}/{cases} cases written", end="", flush=True)
    print()
    timings["spec"] = spec
    return timings


PLAN_CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from flows.plan import plan_units
from records.specs import ProtocolSpec
spec = [ProtocolSpec({name!r}, json.loads({params!r}), steps={steps})]
start = time.perf_counter()
plan = plan_units({root!r}, "litemedsam", {sha!r}, spec, ["synth"])
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))  # ru_maxrss survives exec
print(json.dumps({{"plan_s": seconds, "rss_mb": hwm / 1024,
                   "units": len(plan.units), "missing": sum(d.pairs_missing for d in plan.datasets),
                   "done": sum(d.pairs_done for d in plan.datasets)}}))
"""


def measure(root: Path, spec) -> dict[str, float]:
    """Plan (child process: planning's own imports, no model), files per table, and the summary."""
    repo = str(Path(__file__).resolve().parents[1])
    child = PLAN_CHILD.format(repo=repo, name=spec.name, params=spec.params_json, steps=spec.steps, root=str(root), sha=SHA)
    out = subprocess.run([sys.executable, "-c", child],
                         capture_output=True, text=True, check=True).stdout
    plan = json.loads(out.strip().splitlines()[-1])
    files = {t: len(tables.data_files(root, t)) for t in ("cases", "objects", "results")}
    con = connect(root)
    start = time.perf_counter()
    groups = con.execute(summary_sql(("modality", "anatomy", "model", "spec_id"))).fetchall()
    summary_s = time.perf_counter() - start
    return {**plan, "files": files, "summary_s": summary_s, "groups": len(groups)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--results", type=int, default=None, help="result rows (default: half the objects, one step)")
    args = parser.parse_args()
    n_results = args.results if args.results is not None else args.objects // 2
    root = Path(tempfile.mkdtemp(prefix="samatlas-bench-catalog-")) / "catalog"
    print(f"building {args.objects:,} objects and {n_results:,} result rows under {root}")
    start = time.perf_counter()
    built = build(root, args.objects, n_results)
    spec = built.pop("spec")
    print(f"  built in {time.perf_counter() - start:.0f} s (objects {built['objects_s']:.0f} s, results {built['results_s']:.0f} s)")
    before = measure(root, spec)
    start = time.perf_counter()
    tables.compact(root)
    compact_s = time.perf_counter() - start
    after = measure(root, spec)
    results = connect(root).execute("SELECT count(*) FROM results").fetchone()[0]
    for name, m in (("before compaction", before), ("after compaction", after)):
        print(f"\n{name}:")
        print(f"  dry-run plan        {m['plan_s']:8.2f} s   peak RSS {m['rss_mb']:7.0f} MB   "
              f"({m['units']} units, {m['missing']:,} object-spec pairs missing, {m['done']:,} done)")
        print(f"  data files          {m['files']}")
        print(f"  grouped summary     {m['summary_s']:8.2f} s   ({m['groups']} groups over {results:,} rows)")
    print(f"\ncompaction took {compact_s:.1f} s; summary before / after: {before['summary_s'] / after['summary_s']:.2f}x, "
          f"plan before / after: {before['plan_s'] / after['plan_s']:.2f}x")
    print(json.dumps({
        "plan_s": round(after["plan_s"], 3), "plan_rss_mb": round(after["rss_mb"]), "files": after["files"],
        "files_before_compaction": before["files"], "summary_s": round(after["summary_s"], 3),
        "summary_s_before_compaction": round(before["summary_s"], 3), "objects": args.objects, "results": results,
    }))


if __name__ == "__main__":
    main()
