"""Evaluate against an existing Dask scheduler (``--cluster tcp://...``), on loopback only.

The filled-box baseline keeps this cheap where the test is about the cluster path, not the model;
the worker-kill test runs LiteMedSAM on two slices per case so that units last seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog.query import connect
from flows.cluster import make_task_runner
from records.rows import RESULT_KEY
from tests.conftest import copy_catalog, run_samatlas, seed_cache

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Scheduler:
    """A running `dask scheduler`'s address and its worker processes."""

    address: str
    workers: list[subprocess.Popen]


@pytest.fixture
def scheduler(tmp_path: Path, prefect_server: None) -> Iterator[Scheduler]:
    """A `dask scheduler` and two single-threaded worker processes on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", sched_file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        # two worker processes of their own (no nanny), so a test can kill one for good; a LiteMedSAM
        # worker holds about 1.5 GiB, and Dask pauses one past 80 % of its limit
        for _ in range(2):
            procs.append(subprocess.Popen(
                [BIN / "dask", "worker", "--scheduler-file", sched_file, "--host", "127.0.0.1", "--no-nanny",
                 "--nthreads", "1", "--no-dashboard", "--memory-limit", "4GiB", "--death-timeout", "30"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(scheduler_file=str(sched_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            yield Scheduler(json.loads(sched_file.read_text())["address"], procs[1:])
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_evaluate_on_an_existing_scheduler(scheduler: Scheduler, ingested_samples: Path, tmp_path: Path):
    root = copy_catalog(ingested_samples, tmp_path / "data")
    done = run_samatlas(root, "evaluate", "--model", "filled-box", "--cluster", scheduler.address)
    assert done.exit_code == 0, done.output
    assert "planned 5 units" in done.output
    from distributed import Client

    with Client(scheduler.address, timeout=30) as client:  # the units ran on this scheduler, not a cluster of their own
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes)) > 0
    con = connect(root / "catalog")
    assert con.execute("SELECT count(DISTINCT case_id), count(*) FROM results").fetchone() == (5, 27)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_key_and_adds_none_twice(scheduler: Scheduler, ingested_samples: Path,
                                                                   tmp_path: Path):
    """One of the two workers is killed (SIGKILL) once the first unit's rows are committed: Dask runs
    its unit again on the other, and the catalog ends with exactly one row per planned key."""
    root = copy_catalog(ingested_samples, tmp_path / "data")
    slices = ("--max-slices-per-case", "2")  # LiteMedSAM: seconds per unit, so units are running at the kill
    planned = run_samatlas(root, "evaluate", *slices, "--cluster", scheduler.address, "--dry-run")
    expected = int(re.search(r"planned 5 units, (\d+) objects", planned.output).group(1))
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(seed_cache(root)),
           "SAMATLAS_COMMIT_ROWS": "1"}
    run = subprocess.Popen([BIN / "samatlas", "evaluate", *slices, "--cluster", scheduler.address], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while run.poll() is None and time.monotonic() < deadline and not _rows(root):
        time.sleep(0.3)
    assert run.poll() is None and 0 < _rows(root) < expected, "the kill must come while units still run"
    from distributed import Client

    with Client(scheduler.address, timeout=30) as client:  # kill a worker that is running a unit now
        pids = client.run(os.getpid)
        busy = [pids[address] for address, keys in client.processing().items() if keys]
    (victim,) = [w for w in scheduler.workers if w.pid == busy[0]]
    victim.kill()
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    assert victim.wait(timeout=30) != 0 and all(w.poll() is None for w in scheduler.workers if w is not victim)
    con = connect(root / "catalog")
    keys = ", ".join(RESULT_KEY)
    assert con.execute(f"SELECT count(*), count(DISTINCT ({keys})) FROM results").fetchone() == (expected, expected)


def _rows(root: Path) -> int:
    """Result rows committed so far (0 before the first commit)."""
    if not (root / "catalog" / "results").exists():
        return 0
    return connect(root / "catalog").execute("SELECT count(*) FROM results").fetchone()[0]


def test_unknown_and_uninstalled_clusters_are_clear_errors(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match="unknown cluster"):
        make_task_runner("yarn")
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)  # as if the extra were not installed
    with pytest.raises(ValueError, match=r"pip install 'samatlas\[kubernetes\]'"):
        make_task_runner("kubernetes")


@pytest.mark.slow
def test_a_failing_unit_is_reported_and_the_others_complete(cli, data_root: Path):
    assert cli("ingest", "sample-radiomics").exit_code == 0
    for chunk in (data_root / "store" / "sample-radiomics" / "lung1" / "image" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a zstd frame")
    done = cli("evaluate", "--model", "filled-box", "--workers", "1")
    assert done.exit_code == 1
    assert "failed sample-radiomics/lung1" in done.output and "stay planned" in done.output
    con = connect(data_root / "catalog")
    assert con.execute("SELECT count(DISTINCT case_id) FROM results").fetchone() == (4,)
    assert json.loads(con.execute("SELECT counts FROM runs WHERE flow = 'evaluate'").fetchone()[0])["failed"]
    again = cli("evaluate", "--model", "filled-box", "--dry-run")
    assert "planned 1 units, 3 objects" in again.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_device_is_a_clear_error(tmp_path: Path):
    done = run_samatlas(tmp_path, "evaluate", "--device", "cuda", "--dry-run")
    assert done.exit_code == 2 and "no usable CUDA device" in done.output and "Traceback" not in done.output


def _overlaps(runs: list[tuple[str, float, float]]) -> bool:
    """True if two runs on the same worker overlap in time."""
    for i, (worker, start, end) in enumerate(runs):
        for other, s, e in runs[i + 1:]:
            if worker == other and start < e and s < end:
                return True
    return False


def test_gpu_units_run_one_at_a_time_per_worker(prefect_server: None):
    """The annotation evaluate uses on CUDA, checked on CPU: a worker with two threads and GPU=1 runs
    annotated tasks one at a time; without the annotation the same worker runs them together."""
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    from flows.cluster import unit_resources

    @task
    def hold(i: int) -> tuple[str, float, float]:
        from distributed import get_worker

        start = time.monotonic()
        time.sleep(1.5)  # long beside the ~0.5 s of Prefect bookkeeping, so unannotated runs overlap
        return get_worker().address, start, time.monotonic()

    @flow
    def fan_out(device: str) -> list[tuple[str, float, float]]:
        with unit_resources(device):
            futures = [hold.submit(i) for i in range(4)]
        return [f.result() for f in futures]

    def runner() -> DaskTaskRunner:
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": 1, "threads_per_worker": 2, "processes": False, "resources": {"GPU": 1},
            "dashboard_address": None})

    assert not _overlaps(fan_out.with_options(task_runner=runner())("cuda"))
    assert _overlaps(fan_out.with_options(task_runner=runner())("cpu"))


def _worker_settings() -> tuple[dict[str, str | None], bool, bool | float]:
    import dask

    return ({k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
            dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.worker.memory.pause"))


def test_local_workers_get_glibc_malloc_ceilings_and_no_profiler(monkeypatch: pytest.MonkeyPatch):
    """A local cluster's worker process gets glibc's own malloc ceilings instead of the nanny's
    MALLOC_TRIM_THRESHOLD_=65536 (which makes every large tensor a fresh mmap), even after a default
    cluster exported Dask's value into this process, runs no sampling profiler (the speed this buys
    is measured by bench/worker_speed.py, not here), and is never paused for its memory."""
    from distributed import Client, LocalCluster

    from flows.cluster import MALLOC_ENVIRON, start_cluster

    for name in MALLOC_ENVIRON:  # the nannies export into this process: restored after the test
        monkeypatch.delenv(name, raising=False)
    options = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}
    with LocalCluster(**options):  # Dask's nanny exports its MALLOC_TRIM_THRESHOLD_ into this process
        pass
    with start_cluster("distributed.LocalCluster", **options) as cluster, Client(cluster) as client:
        expected = (MALLOC_ENVIRON, False, False)
        assert list(client.run(_worker_settings).values()) == [expected]
    import dask

    assert dask.config.get("distributed.worker.profile.enabled")  # only the cluster's workers changed
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536"  # this process's environment as it was


WARMED = textwrap.dedent("""
    import functools, json, sys
    from distributed import Client
    from flows.cluster import EarlyCluster, local_cluster_kwargs
    from tasks.models import worker_model

    def models_built():
        from tasks.models import load_model
        return load_model.cache_info().currsize

    early = EarlyCluster(local_cluster_kwargs(1, "cpu", False), functools.partial(worker_model, "filled-box", None, "cpu", 1))
    with early.hand_over() as cluster, Client(cluster) as client:
        built = list(client.run(models_built).values())
    early.close()  # taken: closing it is the taker's (here the with block's)
    print(json.dumps({"built": built, "model_imported_here": "tasks.models.filled_box" in sys.modules}))
""")


def test_an_early_cluster_is_warm_when_taken_and_closed_when_never_taken():
    """The cluster evaluate starts beside its Prefect server: its workers have built the model when
    prefect-dask takes it, without the model's module in the flow process though the warm-up returns
    the model (a client unpickles each result's type: 7.5 s of imports for LiteMedSAM's), and
    one that is never taken leaves no worker process behind."""
    from multiprocessing import resource_tracker

    import psutil

    from flows.cluster import EarlyCluster, local_cluster_kwargs

    done = subprocess.run([sys.executable, "-c", WARMED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"built": [1], "model_imported_here": False}
    resource_tracker.ensure_running()  # multiprocessing's resource tracker stays: not one of the cluster's
    before = set(psutil.Process().children(recursive=True))
    never = EarlyCluster(local_cluster_kwargs(1, "cpu", False))
    deadline, started = time.monotonic() + 60, set()
    while not started and time.monotonic() < deadline:  # it starts at once, unasked
        started = set(psutil.Process().children(recursive=True)) - before
        time.sleep(0.2)
    assert started
    never.close()
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive


def test_environ_set_puts_back_only_its_own_variables(monkeypatch: pytest.MonkeyPatch):
    """The cluster's malloc variables are set while another thread may set others (the command sets
    PREFECT_API_URL while its cluster starts): only they are put back afterwards."""
    from flows.cluster import MALLOC_ENVIRON, environ_set

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("SAMATLAS_SET_MEANWHILE", raising=False)
    with environ_set(MALLOC_ENVIRON):
        assert {k: os.environ[k] for k in MALLOC_ENVIRON} == MALLOC_ENVIRON
        monkeypatch.setenv("SAMATLAS_SET_MEANWHILE", "kept")
    assert os.environ["SAMATLAS_SET_MEANWHILE"] == "kept"
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536" and "MALLOC_MMAP_THRESHOLD_" not in os.environ
