"""One Prefect API for a command and all its Dask worker processes.

In no-server mode every process that needs the API would start its own temporary server on the
same SQLite file, Dask worker processes included. When no ``PREFECT_API_URL`` is set, the command
starts one temporary server and exports its URL, so workers inherit it; logs and events are drained
before the server stops (otherwise the log worker retries against a dead server for a minute).
Prefect announces that temporary server on every command ("Starting temporary server ... See
https://docs.prefect.io/... for more information on running a dedicated Prefect server", then
"Stopping temporary server"); a user who did not ask for a server is spared those lines, here only.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync


async def _drain() -> None:
    for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
        if inspect.isawaitable(result):
            await result


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
        yield current
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    with _quiet():
        server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
            run_coro_as_sync(_drain())
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        with _quiet():
            server.stop()
