"""The Dask dashboard of a local cluster: served on 127.0.0.1 during a run, its link printed beside
Prefect's; ``--no-dashboard`` prints none. The filled-box baseline keeps the runs cheap."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import copy_catalog, seed_cache

pytestmark = pytest.mark.slow


def evaluate_watching_for_the_dashboard(root: Path, *args: str) -> tuple[int, str, int | None]:
    """Run ``samatlas evaluate ARGS`` and GET the dashboard the moment its link is printed.

    Returns the exit code, the output, and the HTTP status the dashboard answered with (None if
    no link was printed).
    """
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(seed_cache(root)), "COLUMNS": "200"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("samatlas")), "evaluate", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, status = [], None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Dask dashboard: "):
            link = line.removeprefix("Dask dashboard: ").strip()
            assert link.startswith("http://127.0.0.1:") and link.endswith("/status"), link
            with urllib.request.urlopen(link, timeout=30) as response:  # the units are still running
                status = response.status
    return proc.wait(timeout=600), "".join(lines), status


def test_the_dashboard_is_served_and_linked_and_no_dashboard_prints_none(ingested_samples: Path, tmp_path: Path):
    data_root = copy_catalog(ingested_samples, tmp_path / "samatlas-data")
    code, output, status = evaluate_watching_for_the_dashboard(
        data_root, "--model", "filled-box", "--workers", "1", "--case", "lung1")
    assert code == 0, output
    assert status == 200, output
    assert output.count("Dask dashboard: ") == 1 and "View at http://" in output  # beside Prefect's own link
    code, output, status = evaluate_watching_for_the_dashboard(
        data_root, "--model", "filled-box", "--workers", "1", "--case", "brain1", "--no-dashboard")
    assert code == 0, output
    assert "wrote 7 result rows" in output  # it ran units, so a cluster was started
    assert status is None and "Dask dashboard" not in output and "/status" not in output  # prefect-dask's line neither
