"""Ctrl-C (or SIGTERM) ends a command at once, with one line saying what was kept, and no child left.

Without this, a Ctrl-C reached the temporary Prefect server first (it shared the terminal's process
group), the flow then retried against the dead server for over a minute and ended in a 400-line
``ConnectError`` traceback. Here the signal handler prints one line, kills every descendant (the
Prefect server, Dask workers) and exits with 128 + the signal number (130 for SIGINT) at once,
without unwinding: whatever was finished is already durable (cases are renamed into the store and
catalog fragments written whole only when complete), and a killed writer leaves only staging
folders, which the next run sweeps, and cases or units without rows, which it redoes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


def kill_descendants(timeout: float = 3.0) -> None:
    """SIGKILL every process this one started, and their children, and wait for them to go."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=timeout)


@contextmanager
def exit_on_interrupt(kept: str) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM print ``interrupted: <kept>``, kill the children and exit.

    The line is written with ``os.write`` (a handler may run in the middle of another print), then
    stdout and stderr go to ``/dev/null``: the command's other threads (Dask's nannies noticing their
    workers die, multiprocessing relaunching its resource tracker) would otherwise add warnings and
    tracebacks in the moment before the exit. A second sweep kills what was relaunched meanwhile.
    """

    def stop(signum: int, frame: object) -> None:
        os.write(2, f"interrupted: {kept}\n".encode())
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        kill_descendants()
        kill_descendants(timeout=1.0)
        os._exit(128 + signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
