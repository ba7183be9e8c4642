"""Benchmark: ingest of many small images through the real ingest flow (not a test; prints figures of one run).

Builds a synthetic QaTa-COV19 v2 replica (``Train Set/Images/<id>.png`` + ``Ground-truths/mask_<id>.png``,
64x64, 5,000 images by default), ingests it with the real ``ingest`` flow against a temporary Prefect
server, and prints what this run measured: images/s, files and directories written per image (store
and catalog), and Prefect task runs (read back from the Prefect API) against images; then the
re-run of the unchanged release. The baseline, in the same process, is the pre-batching path (one
task per image, zarr's own writer) on a subset, reached by
registering a copy of the card that says 3D (3D cards take that path), under the same thread pool.

    python bench/ingest_many_images.py [--images 5000] [--baseline-images 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
SIDE = 64


def write_replica(root: Path, n: int) -> Path:
    """A QaTa-COV19 v2 release of ``n`` synthetic 64x64 images, six in seven with a lesion."""
    top = root / "QaTa-COV19-v2" / "Train Set"
    (top / "Images").mkdir(parents=True)
    (top / "Ground-truths").mkdir()
    y, x = np.indices((SIDE, SIDE))
    for k in range(n):
        Image.fromarray(((3 * y + 2 * x + k) % 256).astype(np.uint8)).save(top / "Images" / f"covid_{k}.png")
        mask = np.zeros((SIDE, SIDE), np.uint8)
        if k % 7:
            mask[10:20 + k % 9, 12:40] = 255
        Image.fromarray(mask).save(top / "Ground-truths" / f"mask_covid_{k}.png")
    return root


def count_task_runs(flow_run_id: str, expected: int, patience_s: float = 60.0) -> int:
    """Task runs the Prefect API holds for one flow run, read until all ``expected`` are recorded or it stops growing.

    The server records task runs from events after the flow returns, so an immediate read undercounts.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    deadline, previous = time.monotonic() + patience_s, -1
    with get_client(sync_client=True) as client:
        while True:
            runs, page = 0, 200
            while True:
                got = client.read_task_runs(flow_run_filter=flow_runs, limit=page, offset=runs)
                runs += len(got)
                if len(got) < page:
                    break
            if runs >= expected or runs == previous or time.monotonic() > deadline:
                return runs
            previous = runs
            time.sleep(2)


def tree_counts(folder: Path) -> tuple[int, int]:
    """(files, directories) under ``folder``."""
    files = dirs = 0
    for _, subdirs, names in os.walk(folder):
        files += len(names)
        dirs += len(subdirs)
    return files, dirs


def fragments(catalog: Path) -> int:
    """Data files of the current ``cases`` and ``objects`` tables."""
    from catalog.tables import data_files

    return sum(len(data_files(catalog, table)) for table in ("cases", "objects"))


def latest_run(catalog: Path) -> str:
    from catalog.query import connect

    return connect(catalog).execute("SELECT run_id FROM runs ORDER BY started_at DESC, run_id LIMIT 1").fetchone()[0]


def timed_ingest(dataset: str, source: Path) -> tuple[float, object]:
    from flows.ingest import ingest

    start = time.perf_counter()
    reports = ingest([dataset], str(source))
    return time.perf_counter() - start, reports[0]


def register_per_image_clone() -> str:
    """A copy of the QaTa card that says 3D, so the flow takes the one-task-per-case path."""
    from catalog.registry import REGISTRY, dataset_card, get_card
    from records.cards import DatasetCard

    base = get_card("qata_cov19")
    fields = {name: getattr(base, name) for name in DatasetCard.model_fields if name != "discover"}
    fields.update(id="bench-per-image", dimensionality=3)
    REGISTRY["bench-per-image"] = dataset_card(**fields)(base.discover)
    return "bench-per-image"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--baseline-images", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="samatlas-bench-"))
    os.environ["SAMATLAS_DATA_ROOT"] = str(work / "data")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")  # the temporary server's shutdown noise
    from flows.server import prefect_api
    from tasks.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    started = time.perf_counter()
    full = write_replica(work / "full", args.images)
    subset = write_replica(work / "subset", args.baseline_images)
    print(f"replicas written in {time.perf_counter() - started:.1f} s under {work}")

    with prefect_api():
        seconds, report = timed_ingest("qata_cov19", full)
        run = latest_run(settings.catalog_root)
        tasks = count_task_runs(run, report.tasks)
        files, dirs = tree_counts(settings.store_root / "qata_cov19")
        parquet = fragments(settings.catalog_root)
        rerun_seconds, rerun = timed_ingest("qata_cov19", full)

        clone = register_per_image_clone()
        base_seconds, base_report = timed_ingest(clone, subset)
        base_tasks = count_task_runs(latest_run(settings.catalog_root), base_report.tasks)
        base_files, base_dirs = tree_counts(settings.store_root / clone)
        base_parquet = fragments(settings.catalog_root) - parquet

    n, m = args.images, args.baseline_images
    rate, base_rate = len(report.ingested) / seconds, len(base_report.ingested) / base_seconds
    print(f"\nbatched ingest (2D path): {n} images, {len(report.ingested)} ingested, {len(report.quarantined)} quarantined")
    print(f"  wall time                {seconds:8.1f} s   -> {rate:7.1f} images/s")
    print(f"  store files per image    {files / n:8.2f}     (+ {dirs / n:.2f} directories per image)")
    print(f"  catalog Parquet files    {parquet:8d}     ({parquet / n:.4f} per image, cases + objects)")
    print(f"  Prefect task runs        {tasks:8d}     for {n} images ({n / max(tasks, 1):.0f} images per task run; "
          f"{report.tasks} submitted)")
    print(f"  re-run, all unchanged    {rerun_seconds:8.1f} s   ({len(rerun.skipped)} skipped, {len(rerun.skipped) / rerun_seconds:.0f} images/s)")
    print(f"\nbaseline, one task per image (pre-batching path) on {m} images:")
    print(f"  wall time                {base_seconds:8.1f} s   -> {base_rate:7.1f} images/s")
    print(f"  store files per image    {base_files / m:8.2f}     (+ {base_dirs / m:.2f} directories per image)")
    print(f"  catalog Parquet files    {base_parquet:8d}     ({base_parquet / m:.2f} per image)")
    print(f"  Prefect task runs        {base_tasks:8d}     for {m} images ({base_report.tasks} submitted)")
    print(f"\nbatched / per-image throughput: {rate / base_rate:.1f}x")
    print(json.dumps({"images": n, "images_per_s": round(rate, 1), "baseline_images_per_s": round(base_rate, 1),
                      "speedup": round(rate / base_rate, 2), "catalog_files": parquet, "task_runs": tasks}))


if __name__ == "__main__":
    main()
