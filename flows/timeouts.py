"""Waiting on Dask-run units with a per-unit time limit: a unit that hangs is stopped and reported.

Prefect's task ``timeout_seconds`` cannot do this on Dask: a task there runs in a worker thread,
and Prefect cancels such threads by injecting an exception, which takes effect only when the
thread next runs Python bytecode, never while it blocks in C (a stuck read, a CUDA call, a sleep).
Checked here: two tasks with ``timeout_seconds=2`` that sleep 20 s, on a one-thread worker, were
reported timed out 20 s apart; the worker stayed blocked for the whole sleep each time.
So the flow watches instead: the scheduler knows from worker heartbeats how long each task has
been executing (not queued); a unit past the limit is cancelled and its worker process restarted
by its nanny (the only way to stop a thread), and the units queued behind it run on the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import distributed
from distributed import Client
from prefect.client.orchestration import get_client
from prefect.states import Failed
from prefect_dask.task_runners import PrefectDaskFuture

logger = logging.getLogger(__name__)


class UnitTimeout(TimeoutError):
    """A unit ran past the per-unit time limit and was stopped."""


def _executing(dask_scheduler: distributed.Scheduler) -> dict[str, tuple[str, float]]:
    """On the scheduler: {task key: (worker address, seconds executing at its last heartbeat)}."""
    return {str(ts.key): (ws.address, seconds)
            for ws in dask_scheduler.workers.values() for ts, seconds in ws.executing.items()}


def _stop(client: Client, future: PrefectDaskFuture, worker: str, message: str) -> str:
    """Cancel ``future``, restart the worker that runs it, mark its task run failed; say what was done."""
    client.cancel([future.wrapped_future], force=True)
    restarted = client.restart_workers([worker], raise_for_error=False).get(worker) == "OK"
    with get_client(sync_client=True) as prefect:  # the run would otherwise stay Running in Prefect
        prefect.set_task_run_state(future.task_run_id, Failed(message=message), force=True)
    return message + ("; its worker was restarted" if restarted else "; its worker could not be restarted (no nanny)")


def results_within(futures: Iterable[PrefectDaskFuture], timeout_s: float, poll_s: float = 1.0) -> Iterator[tuple[PrefectDaskFuture, Any]]:
    """Yield ``(future, result)`` as units finish, as ``prefect.futures.as_completed`` would.

    ``result`` is the unit's return value or its exception (``raise_on_failure=False``); a unit
    executing longer than ``timeout_s`` is stopped and yields a ``UnitTimeout``.
    """
    pending = {str(f.wrapped_future.key): f for f in futures}
    if not pending:
        return
    client = next(iter(pending.values())).wrapped_future.client
    while pending:
        try:
            with client.as_current():  # distributed.wait looks for the current client
                done, _ = distributed.wait([f.wrapped_future for f in pending.values()], timeout=poll_s,
                                           return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        for dask_future in done:
            future = pending.pop(str(dask_future.key))
            yield future, future.result(raise_on_failure=False)
        for key, (worker, seconds) in client.run_on_scheduler(_executing).items():
            if key in pending and seconds > timeout_s:
                future = pending.pop(key)
                message = _stop(client, future, worker, f"still running after {timeout_s:g} s (SAMATLAS_UNIT_TIMEOUT_S), stopped")
                logger.warning("%s: %s", key, message)
                yield future, UnitTimeout(message)
