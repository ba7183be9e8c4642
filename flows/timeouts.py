"""Waiting on Dask-run units with a per-unit time limit: a unit that hangs is stopped and reported.

Prefect's task ``timeout_seconds`` cannot do this on Dask: a task there runs in a worker thread,
and Prefect cancels such threads by injecting an exception, which takes effect only when the
thread next runs Python bytecode, never while it blocks in C (a stuck read, a CUDA call, a sleep).
Checked here: two tasks with ``timeout_seconds=2`` that sleep 20 s, on a one-thread worker, were
reported timed out 20 s apart; the worker stayed blocked for the whole sleep each time.
So the flow watches instead: the scheduler knows from worker heartbeats how long each task has
been executing (not queued); a unit past the limit is cancelled and its worker process restarted
by its nanny (the only way to stop a thread), and the units queued behind it run on the new one.

It also ends a stall no time limit would: Dask pauses a worker whose process memory passes 80 % of
its limit until it drops again, but a model worker's memory is its model and libraries (about
1.5 GiB with LiteMedSAM), which no pause frees. Seen here: a run on `dask worker --memory-limit
2GiB` workers waited for ten minutes with its units queued on a paused worker and said nothing.
When every worker has been paused that long, the units still waiting are given up and reported, and
they stay planned for a re-run on workers with more memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import distributed
from distributed import Client
from distributed.core import Status
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Failed
from prefect_dask.task_runners import PrefectDaskFuture

logger = logging.getLogger(__name__)


class UnitTimeout(TimeoutError):
    """A unit ran past the per-unit time limit and was stopped."""


class WorkersPaused(RuntimeError):
    """No worker could start a unit: every one stayed paused at its memory limit."""


@dataclass(frozen=True)
class PausedWorker:
    """A worker Dask paused for memory: its address, process memory and memory limit in bytes."""

    address: str
    memory: int
    limit: int

    def describe(self) -> str:
        """``tcp://...: 1.6 of 2.0 GiB``."""
        return f"{self.address}: {self.memory / 2**30:.1f} of {self.limit / 2**30:.1f} GiB"


def _scheduler_view(dask_scheduler: distributed.Scheduler) -> tuple[dict[str, tuple[str, float]], int, list[tuple[str, int, int]]]:
    """On the scheduler: {task key: (worker address, seconds executing at its last heartbeat)}, how
    many workers there are, and (address, process memory, memory limit) of those paused. Plain
    tuples: the answer is unpickled here, whatever the scheduler's own environment holds."""
    executing = {str(ts.key): (ws.address, seconds)
                 for ws in dask_scheduler.workers.values() for ts, seconds in ws.executing.items()}
    paused = [(ws.address, int(ws.memory.process), int(ws.memory_limit or 0))
              for ws in dask_scheduler.workers.values() if ws.status == Status.paused]
    return executing, len(dask_scheduler.workers), paused


def paused_message(workers: list[PausedWorker], seconds: float) -> str:
    """Why a unit was given up while every worker stayed paused, and what to do about it."""
    return (f"no worker could start it: all {len(workers)} Dask worker(s) stayed paused near their memory limit "
            f"(Dask pauses at 80 % by default) for {seconds:g} s ({'; '.join(w.describe() for w in workers)}); a model's memory stays in use "
            "between units, so give workers more memory (dask worker --memory-limit, or fewer workers per machine) "
            "or turn pausing off (distributed.worker.memory.pause: false); the unit stays planned for a re-run")


def _mark_failed(future: PrefectDaskFuture, message: str) -> None:
    """Mark a unit's task run failed in Prefect, where it would otherwise stay Running. A unit that
    never began has no task run there yet (Prefect creates it when the task starts): nothing to mark."""
    with get_client(sync_client=True) as prefect:
        try:
            prefect.set_task_run_state(future.task_run_id, Failed(message=message), force=True)
        except PrefectHTTPStatusError as error:
            if error.response.status_code != 404:
                raise


def _give_up(future: PrefectDaskFuture, message: str) -> None:
    """Cancel a unit no worker has started and mark its task run (if any) failed with ``message``."""
    future.wrapped_future.cancel()
    _mark_failed(future, message)


def _stop(client: Client, future: PrefectDaskFuture, worker: str, message: str) -> str:
    """Cancel ``future``, restart the worker that runs it, mark its task run failed; say what was done."""
    client.cancel([future.wrapped_future], force=True)
    restarted = client.restart_workers([worker], raise_for_error=False).get(worker) == "OK"
    _mark_failed(future, message)
    return message + ("; its worker was restarted" if restarted else "; its worker could not be restarted (no nanny)")


def results_within(futures: Iterable[PrefectDaskFuture], timeout_s: float, poll_s: float = 1.0,
                   paused_limit_s: float = 120.0) -> Iterator[tuple[PrefectDaskFuture, Any]]:
    """Yield ``(future, result)`` as units finish, as ``prefect.futures.as_completed`` would.

    ``result`` is the unit's return value or its exception (``raise_on_failure=False``); a unit
    executing longer than ``timeout_s`` is stopped and yields a ``UnitTimeout``. Once every worker has
    been paused for memory for ``paused_limit_s`` with no unit executing, each unit still waiting
    yields a ``WorkersPaused``.
    """
    pending = {str(f.wrapped_future.key): f for f in futures}
    if not pending:
        return
    client = next(iter(pending.values())).wrapped_future.client
    paused_since: float | None = None
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
        if not pending:
            return
        executing, n_workers, paused = client.run_on_scheduler(_scheduler_view)
        for key, (worker, seconds) in executing.items():
            if key in pending and seconds > timeout_s:
                future = pending.pop(key)
                message = _stop(client, future, worker, f"still running after {timeout_s:g} s (SAMATLAS_UNIT_TIMEOUT_S), stopped")
                logger.warning("%s: %s", key, message)
                yield future, UnitTimeout(message)
        stalled = bool(paused) and len(paused) == n_workers and not set(executing) & set(pending)
        if not stalled:
            paused_since = None
            continue
        workers = [PausedWorker(*w) for w in paused]
        if paused_since is None:
            paused_since = time.monotonic()
            logger.warning("every Dask worker is paused for memory (%s): %d unit(s) wait; they are given up after %g s "
                           "unless a worker resumes (SAMATLAS_PAUSED_LIMIT_S)", "; ".join(w.describe() for w in workers),
                           len(pending), paused_limit_s)
        elif time.monotonic() - paused_since > paused_limit_s:
            message = paused_message(workers, paused_limit_s)
            for key in list(pending):
                future = pending.pop(key)
                _give_up(future, message)
                yield future, WorkersPaused(message)
