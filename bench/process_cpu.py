"""CPU seconds of a command and of every process it starts, by role, sampled while it runs.

``bench/evaluate.py`` uses it to say what a ``samatlas evaluate`` spends before its first unit: the
command itself, its temporary Prefect server and its Dask worker each start a Python process that
imports a large stack, and on a machine with few cores their CPU seconds over the cores bound how
soon the first unit can begin. A process's CPU seconds are read from the system (``psutil``) every
``interval`` seconds on a background thread; a process that has ended keeps the last value read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

COMMAND, SERVER, WORKER, OTHER = "command", "Prefect server", "Dask worker", "other"
ROLES = (COMMAND, SERVER, WORKER, OTHER)


def role(process: psutil.Process, root: int) -> str:
    """What a process of the tree is, from its command line: the command itself (``root``), the
    temporary Prefect server (uvicorn), a Dask worker (multiprocessing's spawned child), or other
    (multiprocessing's resource tracker)."""
    if process.pid == root:
        return COMMAND
    line = " ".join(process.cmdline())
    if "uvicorn" in line:
        return SERVER
    if "spawn_main" in line:
        return WORKER
    return OTHER


@dataclass(frozen=True)
class CpuSample:
    """The CPU seconds each role's processes had used at epoch time ``at``."""

    at: float
    cpu_s: dict[str, float]


class ProcessTreeCpu:
    """Samples the CPU seconds of process ``pid`` and its descendants, by :func:`role`, until stopped."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.samples: list[CpuSample] = []
        self._last: dict[int, tuple[str, float]] = {}  # pid -> (role, CPU s last read)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-cpu", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)
        self._sample()

    def _sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:  # the command has ended: its tree is gone with it
            processes = []
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    name = self._last[process.pid][0] if process.pid in self._last else role(process, self.root.pid)
                self._last[process.pid] = (name, times.user + times.system)
            except psutil.Error:  # ended between the listing and the read: its last value stands
                continue
        totals = dict.fromkeys(ROLES, 0.0)
        for name, cpu_s in self._last.values():
            totals[name] += cpu_s
        self.samples.append(CpuSample(time.time(), totals))

    def stop(self) -> None:
        """Take a last sample and stop sampling."""
        self._stop.set()
        self._thread.join()

    def at(self, epoch: float) -> dict[str, float]:
        """Each role's CPU seconds in the last sample taken at or before ``epoch`` (zeros before the first)."""
        before = [s for s in self.samples if s.at <= epoch]
        return dict(before[-1].cpu_s) if before else dict.fromkeys(ROLES, 0.0)
