"""A unit that hangs is stopped by the per-unit time limit and reported; the other units complete;
units no paused worker will start are given up and reported.

A tiny flow of plain tasks stands in for evaluate's units (the mechanism is the same
``results_within`` the evaluate flow waits with); one worker process, so the other units can only
finish if the hanging one is really stopped, not merely abandoned.
"""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task
from prefect_dask import DaskTaskRunner

from flows.timeouts import UnitTimeout, WorkersPaused, results_within

pytestmark = pytest.mark.slow


@task
def unit(i: int) -> int:
    """Unit 0 hangs in a blocking call (where Prefect's own task timeout cannot interrupt it)."""
    if i == 0:
        time.sleep(3600)
    return i * 10


@flow
def fan_out(timeout_s: float) -> list[tuple[str, object]]:
    futures = [unit.submit(i) for i in range(3)]
    return [(str(f.task_run_id), outcome) for f, outcome in results_within(futures, timeout_s)]


def test_a_hanging_unit_is_stopped_and_reported_and_the_rest_complete(prefect_server: None):
    from prefect.client.orchestration import get_client

    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None, "memory_limit": "2GiB"})
    outcomes = fan_out.with_options(task_runner=runner)(timeout_s=5)
    values = sorted(o for _, o in outcomes if not isinstance(o, BaseException))
    stopped = [(run_id, o) for run_id, o in outcomes if isinstance(o, UnitTimeout)]
    assert values == [10, 20] and len(stopped) == 1 and len(outcomes) == 3
    assert "still running after 5 s" in str(stopped[0][1]) and "worker was restarted" in str(stopped[0][1])
    with get_client(sync_client=True) as client:
        assert client.read_task_run(stopped[0][0]).state.is_failed()


@task
def fill(i: int) -> int:
    """Unit 0 leaves its worker's process at 87 % of its memory limit, as a loaded model does (memory
    Dask does not manage, so it cannot spill it), and waits for Dask's memory monitor to pause it."""
    if i == 0:
        import numpy as np
        import psutil
        from distributed import get_worker

        worker = get_worker()
        wanted = int(0.87 * worker.memory_manager.memory_limit) - psutil.Process().memory_info().rss
        worker.samatlas_test_ballast = np.ones(max(wanted, 0), np.uint8)
        time.sleep(2)
    return i


@flow
def fill_up(paused_limit_s: float) -> list[object]:
    futures = [fill.submit(i) for i in range(3)]
    return [outcome for _, outcome in results_within(futures, 600, paused_limit_s=paused_limit_s)]


def test_units_no_paused_worker_starts_are_given_up_and_reported(prefect_server: None):
    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None, "memory_limit": "1.5GiB"})
    outcomes: list[object] = []
    # in a thread of its own, so that a wait that never ends fails the test instead of hanging the suite
    waiting = threading.Thread(target=lambda: outcomes.extend(fill_up.with_options(task_runner=runner)(paused_limit_s=3)),
                               daemon=True)
    waiting.start()
    waiting.join(timeout=180)
    assert not waiting.is_alive(), "the units queued on the paused worker were never given up"
    given_up = [o for o in outcomes if isinstance(o, WorkersPaused)]
    assert [o for o in outcomes if not isinstance(o, BaseException)] == [0] and len(given_up) == 2
    message = str(given_up[0])
    assert "stayed paused" in message and "of 1.5 GiB" in message and "--memory-limit" in message
