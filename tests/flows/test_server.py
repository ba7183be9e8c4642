"""A command's temporary Prefect server (flows/server.py): launched at once, waited for where the API is
first needed, stopped however the block ends, without Prefect's server modules in the command's process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from flows.server import PORT_TAKEN, TemporaryServer

COMMAND = textwrap.dedent("""
    import json, os, sys
    import httpx
    from prefect import flow
    from flows.server import launched_prefect_api

    @flow
    def one() -> int:
        return 1

    @flow
    def beating() -> bool:  # whether this run's engine started its heartbeat thread (Prefect 3.8's heartbeat_loop)
        import threading
        return any(getattr(a, "__name__", "") == "heartbeat_loop" for t in threading.enumerate() for a in t._args)

    with launched_prefect_api() as api:
        launched = api.server.process.poll() is None  # running before anything waited for it
        url = api.ready()
        health = httpx.get(url + "/health").status_code
        exported = os.environ.get("PREFECT_API_URL") == url
        value = one()
        from prefect.settings import temporary_settings
        heartbeats = beating()
        with temporary_settings(updates={"flows.heartbeat_frequency": 30}):  # as on a user's server
            heartbeats_on = beating()
        from prefect.client.orchestration import get_client
        with get_client(sync_client=True) as client:
            runs = len(client.read_flow_runs())
            block_types = len(client.read_block_types())
        pid, port = api.server.process.pid, api.server.port
    print(json.dumps({"launched": launched, "health": health, "exported": exported, "value": value, "runs": runs,
                      "block_types": block_types, "heartbeats": heartbeats, "heartbeats_on": heartbeats_on,
                      "pid": pid, "port": port, "after": os.environ.get("PREFECT_API_URL"),
                      "server_modules": sorted(m for m in sys.modules if m.startswith("prefect.server.api"))}))
""")


def test_a_temporary_server_serves_the_block_and_is_gone_after_it(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    done = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True, env=env, timeout=180,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["launched"] and seen["health"] == 200 and seen["exported"]
    assert seen["value"] == 1 and seen["runs"] == 3  # the flows ran against this server, recorded there
    assert seen["block_types"] == 0  # a new database: the server registered no block types (SERVER_ENV)
    assert not seen["heartbeats"] and seen["heartbeats_on"]  # none to a server that ends with the command
    assert seen["after"] is None
    assert seen["server_modules"] == []  # the API application was imported by the server process only
    assert not psutil.pid_exists(seen["pid"]) or psutil.Process(seen["pid"]).status() == psutil.STATUS_ZOMBIE
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert seen["port"] not in listening
    assert "temporary server" not in done.stderr.lower()  # Prefect's notice is not printed


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


ANSWERS = """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


def _launching(monkeypatch: pytest.MonkeyPatch, *scripts: str) -> list[subprocess.Popen]:
    """Make TemporaryServer launch ``scripts`` in turn (each gets the port as its argument) instead of
    uvicorn: stand-ins for a server that fails, stays silent, or answers (plumbing, not Prefect)."""
    launched: list[subprocess.Popen] = []
    queue = list(scripts)

    def launch(self: TemporaryServer) -> subprocess.Popen:
        launched.append(subprocess.Popen([*_script(queue.pop(0)), str(self.port)]))
        return launched[-1]

    monkeypatch.setattr(TemporaryServer, "_launch", launch)
    return launched


def test_a_server_whose_port_was_taken_is_relaunched_on_another(monkeypatch: pytest.MonkeyPatch):
    launched = _launching(monkeypatch, f"import sys; sys.exit({PORT_TAKEN})", ANSWERS)
    server = TemporaryServer()
    launched[0].wait()  # it exits as uvicorn does when its port was taken
    try:
        server.wait_ready(30)
        assert len(launched) == 2 and server.process is launched[1]
    finally:
        server.stop()
    assert launched[1].poll() is not None


def test_a_server_that_exits_is_reported_with_what_to_do(monkeypatch: pytest.MonkeyPatch):
    _launching(monkeypatch, "import sys; sys.exit(5)")
    server = TemporaryServer()
    with pytest.raises(RuntimeError, match=r"exited with status 5 .*PREFECT_API_URL"):
        server.wait_ready(30)


def test_a_silent_server_is_stopped_after_the_timeout(monkeypatch: pytest.MonkeyPatch):
    launched = _launching(monkeypatch, "import time; time.sleep(60)")
    server = TemporaryServer()
    with pytest.raises(RuntimeError, match="did not answer within 0.5 s.*PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        server.wait_ready(0.5)
    assert launched[0].poll() is not None  # stopped, not left running
