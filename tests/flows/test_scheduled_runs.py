"""Scheduled runs seen to fire: a real ``samatlas server``, ``samatlas serve`` with a short interval, one
scheduled evaluate run completed on the sample (filled-box), then everything stopped: no process, no port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from catalog.query import connect
from tests.conftest import copy_catalog

pytestmark = pytest.mark.slow
DEPLOYMENT = "evaluate/nightly-evaluate-filled-box"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """True if a new server could listen on ``port`` (as servers do, past the old connections' TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start(log: Path, *args: object) -> subprocess.Popen:
    """``samatlas ARGS`` in its own session (as from its own shell), output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen([str(Path(sys.executable).with_name("samatlas")), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> list[str]:
    """Ctrl-C the process's session (as its terminal would); return what went wrong: a process of its
    tree that outlived it, or a command that needed SIGKILL."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
        problems = []
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        problems = [f"samatlas {process.args[1]}: still running 60 s after Ctrl-C"]
    return problems + [f"left running: {p}" for p in psutil.wait_procs(tree, timeout=20)[1]]


def wait_for(what: str, check, timeout: float, logs: list[Path]):
    """Poll ``check()`` until it returns a value; fail with the logs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(1)
    pytest.fail(f"no {what} after {timeout} s\n" + "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs))


def test_a_scheduled_evaluate_run_completes_and_everything_stops(data_root: Path, ingested_samples: Path,
                                                                 tmp_path: Path, monkeypatch):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    for name, value in {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-home"),
                        "PREFECT_RUNNER_POLL_FREQUENCY": "1", "SAMATLAS_N_WORKERS": "1",
                        "SAMATLAS_DASHBOARD": "false"}.items():
        monkeypatch.setenv(name, value)
    logs = [tmp_path / "server.log", tmp_path / "serve.log"]
    server = start(logs[0], "server", "--port", port)
    leftover: list[str] = []
    try:
        def healthy():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200 or None
            except httpx.HTTPError:
                return None

        wait_for("server", healthy, 120, logs)
        assert (data_root / "prefect" / "prefect.db").is_file()  # the server's database is under the data root
        assert httpx.get(f"http://127.0.0.1:{port}/ui-settings").json()["api_url"] == api  # its UI calls it
        copy_catalog(ingested_samples, data_root)  # the sample, ingested once for the session
        serve = start(logs[1], "serve", "--dataset", "sample-radiomics", "--model", "filled-box", "--evaluate-every", 5)
        try:
            deployment = wait_for("deployment", lambda: httpx.get(f"{api}/deployments/name/{DEPLOYMENT}").json().get("id"),
                                  60, logs)

            def finished_run():
                """A finished run that computed (later runs of the schedule can find nothing left to do
                and leave no ``runs`` row); a failed or crashed run ends the wait at once."""
                runs = httpx.post(f"{api}/flow_runs/filter", json={
                    "deployments": {"id": {"any_": [deployment]}},
                    "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
                }).json()
                recorded = {r for (r,) in connect(data_root / "catalog").execute("SELECT run_id FROM runs").fetchall()}
                return next((r for r in runs if r["state_type"] != "COMPLETED" or r["id"] in recorded), None)

            run = wait_for("finished scheduled run", finished_run, 240, logs)
        finally:
            leftover += stop(serve)
    finally:
        leftover += stop(server)
    assert run["state_type"] == "COMPLETED", logs[1].read_text()[-4000:]
    assert run["auto_scheduled"] and run["parameters"]["model"] == "filled-box"
    assert not leftover, (leftover, logs[1].read_text()[-4000:])
    assert port_free(port)
    con = connect(data_root / "catalog")
    assert con.execute("SELECT status FROM runs WHERE run_id = ?", [run["id"]]).fetchall() == [("completed",)]
    assert con.execute("SELECT count(*) FROM results WHERE run_id = ?", [run["id"]]).fetchone()[0] > 0
