"""A Dask worker process ends at once after its worker closes: what was registered to run at exit
after the handler still runs, logs are flushed, what was registered before (the interpreter's
teardown side) is skipped; outside a worker process nothing is installed."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import distributed

from flows.cluster import local_cluster_kwargs, make_cluster
from tasks import process_exit


def _in_worker(folder: str) -> int:
    """Register an exit handler before and one after the quick end, and buffer a log record that only
    a flush writes; return the process id."""
    import atexit

    def mark(name: str) -> None:
        Path(folder, name).write_text("ran")

    atexit.register(mark, "registered-before")  # runs after the quick end's handler (LIFO): skipped
    process_exit.end_quickly_after_close()
    process_exit.end_quickly_after_close()  # once per process
    atexit.register(mark, "registered-after")  # runs before it
    target = logging.FileHandler(Path(folder, "log.txt"))
    buffered = logging.handlers.MemoryHandler(capacity=100, target=target)  # written on flush only
    logger = logging.getLogger("samatlas.test-worker-exit")
    logger.addHandler(buffered)
    logger.warning("the last words of a worker")
    return os.getpid()


def test_a_closed_worker_process_ends_at_once_with_its_logs_flushed(tmp_path: Path):
    cluster = make_cluster(**local_cluster_kwargs(1, "cpu", False))
    try:
        with distributed.Client(cluster) as client:
            pid = client.submit(_in_worker, str(tmp_path), pure=False).result()
    finally:
        cluster.close()
    assert (tmp_path / "registered-after").read_text() == "ran"
    assert not (tmp_path / "registered-before").exists()  # the process ended before it
    assert "the last words of a worker" in (tmp_path / "log.txt").read_text()
    assert pid != os.getpid()  # it ran in the worker's process


def test_nothing_is_installed_outside_a_worker_process():
    """Neither in a plain process nor in a threaded Dask worker running in this process (ending it
    would end the command)."""
    process_exit.end_quickly_after_close()
    assert not process_exit._installed
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        found = client.submit(lambda: process_exit._current_worker() is not None, pure=False).result()
        client.submit(process_exit.end_quickly_after_close, pure=False).result()
    assert found  # the task ran in a Dask worker, of this process
    assert not process_exit._installed
