"""One Prefect API for a command and all its Dask worker processes.

In no-server mode every process that needs the API would start its own temporary server on the
same SQLite file, Dask worker processes included. When no ``PREFECT_API_URL`` is set, the command
starts one temporary server and exports its URL, so workers inherit it; logs and events are drained
before the server stops (otherwise the log worker retries against a dead server for a minute), and
before the command ends on a server of the user's: the console script ends without the
interpreter's teardown (``flows.cli.main``), which would otherwise send what Prefect still queues.
Prefect announces that temporary server on every command ("Starting temporary server ... See
https://docs.prefect.io/... for more information on running a dedicated Prefect server", then
"Stopping temporary server"); a user who did not ask for a server is spared those lines, here only.

The server process is tied to the command: it runs in its own session, so a Ctrl-C at the terminal
reaches only the command (which then stops it, see ``flows/interrupt.py``) instead of killing the
server under a running flow, and on Linux it gets SIGKILL from the kernel when the command dies
(``prctl(PR_SET_PDEATHSIG)``), so even a ``kill -9`` of the command leaves no server holding a port.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with(parent: int) -> None:
    """In a child before exec: ask the kernel for SIGKILL when ``parent`` dies (Linux), or exit now if it has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _tied_server():
    """Prefect's temporary API server, its process started in its own session and tied to this one."""
    from prefect.server.api.server import SubprocessASGIServer

    class TiedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect builds the uvicorn command; only how the process starts is changed here.
            tied = functools.partial(subprocess.Popen, preexec_fn=functools.partial(die_with, os.getpid()),
                                     start_new_session=True)
            with mock.patch.object(subprocess, "Popen", tied):
                return super()._run_uvicorn_command()

    return TiedServer()


async def _drain() -> None:
    for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
        if inspect.isawaitable(result):
            await result


@contextmanager
def _drained() -> Iterator[None]:
    """Send what Prefect queued in the block (events, logs) when it ends, a failure too (a failed run's
    states are what its user looks for), but not on Ctrl-C: the user wants out now."""
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not interrupted:
            run_coro_as_sync(_drain())


@contextmanager
def _quiet(logger_name: str = "prefect") -> Iterator[None]:
    """Raise ``logger_name`` to WARNING for the block: Prefect logs its server notices there at INFO."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the API URL in use, starting (and afterwards stopping) a temporary server if needed."""
    current = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if current:
        with _drained():
            yield current
        return
    server = _tied_server()
    with _quiet():
        server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}), _drained():
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        with _quiet():
            server.stop()
