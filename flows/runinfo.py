"""Run identity and the ``runs`` table: what each flow run did."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect.runtime import flow_run

from catalog.writer import write_rows


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


def record_run(catalog: Path, flow: str, run_id: str, started: dt.datetime, parameters: dict[str, Any], counts: dict[str, Any]) -> None:
    """Write this run's row into ``runs``."""
    now = dt.datetime.now(dt.UTC)
    write_rows(catalog, "runs", [{
        "run_id": run_id, "flow": flow, "started_at": started.replace(microsecond=0),
        "duration_s": (now - started).total_seconds(), "parameters": json.dumps(parameters, default=str),
        "counts": json.dumps(counts), "code_version": code_version(),
    }], key=f"{flow}/{run_id}")
