"""Ending a process at once, without the interpreter's teardown: ``samatlas`` after its command
(``flows.cli.main``), and a Dask worker process when its worker has closed.

When a command closes its local cluster, each nanny asks its worker to close and waits for the
worker's process to end. The worker closes in a few milliseconds; the process then spent about
1.3 s tearing down the interpreter (torch, ONNX Runtime, the model: measured from ``close()`` on a
one-worker cluster with LiteMedSAM built, 1.35 s against 0.1 s), and the command waited 2.4 s for
its task runner to stop (2.2-2.7 s of every ``samatlas evaluate``). Nothing is left to do by then:
the worker has returned its units' rows, released its directory and joined its queues to the nanny;
Prefect's services drain at thread shutdown, before any ``atexit`` handler. So the handler installed
here flushes the logging handlers (Prefect's API handler drains its queue), then ends the process
as ``samatlas`` itself ends after its command.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # distributed is imported in worker processes only
    from distributed import Worker

_installed = False


def end_process(code: int) -> None:
    """Flush the standard streams and end this process with ``code`` at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def end_quickly_after_close() -> None:
    """In a Dask worker's own process (a nanny's child), end it as soon as the interpreter exits if
    the worker closed normally; elsewhere (a test, a threaded worker in the command's process) do
    nothing. Installed once per process."""
    global _installed
    if _installed or multiprocessing.parent_process() is None:
        return
    worker = _current_worker()
    if worker is not None:
        atexit.register(_end_if_closed, worker)
        _installed = True


def _current_worker() -> Worker | None:
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _end_if_closed(worker: Worker) -> None:
    """End the process with status 0 if ``worker`` closed normally; otherwise let the interpreter exit
    as it would (a worker that failed keeps its exit status and its teardown)."""
    from distributed.core import Status

    if worker.status != Status.closed:
        return
    logging.shutdown()
    end_process(0)
