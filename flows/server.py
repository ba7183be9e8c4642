"""One Prefect API for a command and all its Dask worker processes.

In no-server mode every process that needs the API would start its own temporary server on the
same SQLite file, Dask worker processes included. When no ``PREFECT_API_URL`` is set, the command
launches one temporary server as it begins (:func:`launched_prefect_api`: it starts while the
command imports, checks and plans) and, where it first needs the API, waits for it and exports its
URL, so workers inherit it; logs and events are drained before the server stops (otherwise the log
worker retries against a dead server for a minute), and before the command ends on a server of the
user's: the console script ends without the interpreter's teardown (``flows.cli.main``), which
would otherwise send what Prefect still queues. Unlike Prefect's own temporary server, this one
prints no notice ("Starting temporary server ..."): a user who did not ask for a server is spared it.

The server process is tied to the command: it runs in its own session, so a Ctrl-C at the terminal
reaches only the command (which then stops it, see ``flows/interrupt.py``) instead of killing the
server under a running flow, and on Linux it gets SIGKILL from the kernel when the command dies
(``prctl(PR_SET_PDEATHSIG)``), so even a ``kill -9`` of the command leaves no server holding a port.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync

SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
    # At every start a server registers the block types (Prefect's typed configuration documents) of
    # every installed Prefect collection: it imports them all (prefect-dask among them) and hashes the
    # block registry, even when a memo says nothing changed. This server only records this command's
    # flow and task runs, which use no block; without it the server answered 1.0 s sooner (4.9 against
    # 5.9 s, 1.0 CPU s less; median of 6 alternating starts). A user's own server registers them.
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false", "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}
"""What the temporary server's process runs with, beside the command's Prefect settings."""

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Off on a temporary server. A flow run's heartbeats let a lasting server mark the run crashed if its
# process dies unreported; a temporary server dies with the command, so no one is left to watch them,
# and the flow engine's exit waits for its heartbeat thread to wake from its current 1 s sleep (0-1 s
# at the end of every command, 0.55 s in a profiled evaluate). On a user's server they stay on.
HEARTBEAT_FREQUENCY = "flows.heartbeat_frequency"


def die_with(parent: int) -> None:
    """In a child before exec: ask the kernel for SIGKILL when ``parent`` dies (Linux), or exit now if it has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


SERVER_PORTS = range(8000, 9000)
"""Where a temporary server listens, as Prefect picks: below Linux's ephemeral range (32768-60999), so
an outgoing connection of this machine cannot take the port between its pick and the server's bind."""
PORT_TAKEN = 3  # uvicorn's exit status when its port is taken meanwhile


def _free_port() -> int:
    """A port of :data:`SERVER_PORTS` nothing listens on now."""
    for port in random.sample(SERVER_PORTS, 20):
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {SERVER_PORTS.start}-{SERVER_PORTS.stop - 1} for a temporary Prefect server; "
                       "set PREFECT_API_URL to a running server")


class TemporaryServer:
    """Prefect's API served by uvicorn in a child process of this command, tied to it, launched at once.

    Written here, not taken from ``prefect.server.api.server.SubprocessASGIServer`` (which launches the
    same uvicorn command and waits the same way): importing that module imports Prefect's whole API
    application into the command's process, 1.7-2.4 s of its start on 2 cores, only to start a child
    process that imports it again. Launching without waiting also lets the server start while the
    command imports, checks and plans (:meth:`wait_ready` waits where the API is first needed).
    The app runs ephemeral (Prefect's ``PREFECT__SERVER_EPHEMERAL``: no UI, no background services)
    and registers no block types (:data:`SERVER_ENV`).
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.process = self._launch()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> subprocess.Popen:
        import prefect
        from prefect.settings import get_current_settings

        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # not a server of itself
        env |= get_current_settings().to_environment_variables(exclude_unset=True)
        env |= SERVER_ENV
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parents[1]),
                   "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
        return subprocess.Popen(command, env=env, start_new_session=True,
                                preexec_fn=functools.partial(die_with, os.getpid()))

    def wait_ready(self, timeout: float) -> None:
        """Return once the server answers its health check; relaunch it on another port if its port
        was taken meanwhile. Raises RuntimeError, saying what to do, if it exits or stays silent."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                status = self.process.poll()
                if status == PORT_TAKEN:
                    self.port = _free_port()
                    self.process = self._launch()
                    continue
                if status is not None:
                    raise RuntimeError(f"the temporary Prefect server exited with status {status} before it answered "
                                       "(its messages are above); set PREFECT_API_URL to a running server instead")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the temporary Prefect server did not answer within {timeout:g} s; raise "
                           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL to a running server")

    def stop(self) -> None:
        """Terminate the server (kill it after 5 s) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()


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


@dataclass
class PrefectApi:
    """A command's Prefect API: the user's (``PREFECT_API_URL``) or a temporary server being launched.

    :meth:`ready` points this process at it, waiting (once) for a temporary server to answer; what
    Prefect queued is drained when the command's block ends (see ``_drained``)."""

    user_url: str | None
    server: TemporaryServer | None
    stack: ExitStack
    url: str | None = None

    def ready(self) -> str:
        """The API URL, once it answers; this process (and the workers it starts after) use it."""
        if self.url is None:
            if self.server is not None:
                self.server.wait_ready(float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
                os.environ["PREFECT_API_URL"] = self.server.api_url
                self.stack.enter_context(temporary_settings(updates={PREFECT_API_URL: self.server.api_url,
                                                                     HEARTBEAT_FREQUENCY: None}))
            self.stack.enter_context(_drained())
            self.url = self.user_url or self.server.api_url
        return self.url


@contextmanager
def launched_prefect_api() -> Iterator[PrefectApi]:
    """The command's Prefect API for the block: without ``PREFECT_API_URL``, a temporary server launched
    now (it starts while the block goes on) and stopped when the block ends, however it ends."""
    user_url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    server = None if user_url else TemporaryServer()
    try:
        with ExitStack() as stack:
            yield PrefectApi(user_url, server, stack)
    finally:
        if server is not None:
            if os.environ.get("PREFECT_API_URL") == server.api_url:
                del os.environ["PREFECT_API_URL"]
            server.stop()


@contextmanager
def prefect_api() -> Iterator[str]:
    """The command's Prefect API URL for the block, a temporary server's waited for at once."""
    with launched_prefect_api() as api:
        yield api.ready()
