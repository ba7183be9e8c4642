"""Ctrl-C and kill -9 of a running command leave no Prefect server, no Dask worker and no open port.

The real CLI is started in a subprocess with no ``PREFECT_API_URL``, so it starts its own temporary
server; the test waits until that server listens (and, for evaluate, until Dask workers run), then
signals the command. The release is synthetic (many tiny LiTS-shaped cases: plumbing, not quality).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import SimpleITK as sitk

from conftest import seed_cache

CASES = 150  # enough that ingest is still running when the signal comes


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lits") / "Training Batch 1"
    root.mkdir()
    for n in range(CASES):
        image = (np.arange(3 * 16 * 16) % 200 + n).astype(np.int16).reshape(3, 16, 16)
        mask = np.zeros((3, 16, 16), np.uint8)
        mask[:2, 3:9, 3:9] = 1
        sitk.WriteImage(sitk.GetImageFromArray(image), str(root / f"volume-{n}.nii"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(root / f"segmentation-{n}.nii"))
    return root


def _start(root: Path, *args: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(SAMATLAS_DATA_ROOT=str(root), SAMATLAS_CACHE_DIR=str(seed_cache(root)), COLUMNS="200",
               PREFECT_HOME=str(root / "prefect-home"))
    script = Path(sys.executable).with_name("samatlas")
    return subprocess.Popen([str(script), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def _listening(procs: list[psutil.Process]) -> list[int]:
    ports = []
    for proc in procs:
        try:
            ports += [c.laddr.port for c in proc.net_connections() if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    return ports


def _wait_running(command: subprocess.Popen, workers: int = 0, limit: float = 400) -> tuple[list[psutil.Process], list[int]]:
    """The command's descendants and their ports, once its server listens and ``workers`` more run."""
    parent = psutil.Process(command.pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert command.poll() is None, command.communicate()[0][-3000:]
        children = parent.children(recursive=True)
        ports = _listening(children)
        if ports and len(children) > workers:
            return children, ports
        time.sleep(0.2)
    pytest.fail("the command's server never started")


def _gone(children: list[psutil.Process], ports: list[int]) -> None:
    """No descendant of the killed command is alive, and nothing listens on their ports any more."""
    _, alive = psutil.wait_procs(children, timeout=10)
    running = []
    for proc in alive:  # a zombie is dead (it waits for a container's init to reap it) and holds no port
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc.cmdline()[:4])
        except psutil.NoSuchProcess:
            pass
    assert not running
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert not listening & set(ports)


def _interrupt(command: subprocess.Popen) -> tuple[int, str, float]:
    command.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = command.communicate(timeout=60)
    return command.returncode, output, time.monotonic() - started


def test_ctrl_c_stops_ingest_at_once_with_one_line(tmp_path: Path, release: Path):
    command = _start(tmp_path, "ingest", "lits", "--source", release.parent)
    children, ports = _wait_running(command)
    time.sleep(2)
    code, output, seconds = _interrupt(command)
    assert code == 130, output
    assert seconds < 5
    assert "interrupted: cases ingested so far are kept; run the same command again" in output
    # what the user reads besides the run's INFO log lines: a progress line or two, then the one line
    told = [line for line in output.splitlines() if not re.match(r"\d\d:\d\d:\d\d\.\d+ \| INFO ", line)]
    assert "Traceback" not in output and told[-1].startswith("interrupted: ") and len(told) <= 3, output
    _gone(children, ports)


def test_kill_9_of_ingest_takes_its_server_along(tmp_path: Path, release: Path):
    command = _start(tmp_path, "ingest", "lits", "--source", release.parent)
    children, ports = _wait_running(command)
    command.kill()
    command.wait(timeout=10)
    _gone(children, ports)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, release: Path) -> Path:
    """A data root with the synthetic release ingested (by the real CLI, with its own server)."""
    root = tmp_path_factory.mktemp("ingested")
    command = _start(root, "ingest", "lits", "--source", release.parent)
    output, _ = command.communicate(timeout=900)
    assert command.returncode == 0, output[-3000:]
    return root


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_evaluate_leaves_no_server_or_dask_worker(ingested: Path, how: str):
    command = _start(ingested, "evaluate", "--model", "filled-box", "--workers", "2")
    children, ports = _wait_running(command, workers=3)  # the server and at least two Dask workers
    if how == "SIGKILL":
        command.kill()
        command.wait(timeout=10)
    else:
        code, output, seconds = _interrupt(command)
        assert code == 130, output
        assert seconds < 5
        assert "interrupted: results of finished work units are kept" in output
        # short: the flow's 5 start lines (run, link, work estimate, plan, cluster), Dask's 4-line notice
        # where a parallel test holds the dashboard port, the message; no traceback
        assert "Traceback" not in output and len(output.splitlines()) < 12, output
    _gone(children, ports)
