"""Run identity and the ``runs`` table: every flow run is recorded when it starts and when it ends.

The row is written (status ``running``) before the run commits any other row, so every catalog row's
``run_id`` has its ``runs`` row even when the process is killed; the end of the run rewrites it with
its status and counts. A ``running`` row whose process is gone (same host, pid not alive) is marked
``killed`` by the next run that starts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import uuid
from dataclasses import dataclass, field, replace as replaced
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect.runtime import flow_run

from catalog import tables
from records.rows import RunRow
from tasks.locations import Location


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit when run from a checkout."""
    base = version("samatlas")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{base}+{commit}" if commit else base


def current_run_id() -> str:
    """The Prefect flow run id, or a fresh id outside a flow run."""
    return str(flow_run.get_id() or uuid.uuid4())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunRecord:
    """A run in progress: its ``runs`` row, rewritten when the run ends."""

    catalog: Location
    row: RunRow
    counts: dict[str, Any] = field(default_factory=dict)

    def finish(self, status: str, counts: dict[str, Any]) -> None:
        """Record how the run ended (completed, failed or interrupted) and what it did."""
        started = self.row.started_at
        duration = (dt.datetime.now(dt.UTC) - started).total_seconds()
        self.row = replaced(self.row, status=status, duration_s=duration, counts=json.dumps(counts, default=str))
        tables.replace(self.catalog, [self.row], RunRow, {"run_id": [self.row.run_id]})


def start_run(catalog: Location, flow: str, run_id: str, parameters: dict[str, Any]) -> RunRecord:
    """Write this run's ``running`` row (and mark dead runs of this host ``killed``)."""
    host = socket.gethostname()
    stale = tables.read(catalog, "runs", "status = 'running'") if tables.open_table(catalog, "runs") else None
    dead = [
        replaced(RunRow(**r), status="killed")
        for r in (stale.to_pylist() if stale is not None else [])
        if r["host"] == host and not _pid_alive(r["pid"])
    ]
    row = RunRow(
        run_id=run_id, flow=flow, status="running", started_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        duration_s=0.0, host=host, pid=os.getpid(), parameters=json.dumps(parameters, default=str),
        counts="{}", code_version=code_version(),
    )
    rows = [*dead, row]
    tables.replace(catalog, rows, RunRow, {"run_id": [r.run_id for r in rows]})
    return RunRecord(catalog, row)
