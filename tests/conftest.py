"""Shared fixtures: one Prefect test server per session, an isolated data root per test, the CLI."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The downloads `make data` fetched (package files, sha256-checked); tests reuse them, but unpack
# releases into their own cache so that no test sees another's (or leaves one for the user).
SHARED_DOWNLOADS = Path(os.environ.get("SAMATLAS_TEST_DOWNLOADS", REPO / "samatlas-data" / "cache" / "downloads"))


def seed_cache(root: Path) -> Path:
    """``root``'s own download cache, whose ``downloads`` links to the shared downloads."""
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    SHARED_DOWNLOADS.mkdir(parents=True, exist_ok=True)
    if not (cache / "downloads").exists():
        (cache / "downloads").symlink_to(SHARED_DOWNLOADS, target_is_directory=True)
    return cache


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect API for the whole session (flows and Dask workers report to it)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        from prefect.settings import PREFECT_API_URL

        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root for one test, sharing the session's download cache."""
    from tasks.settings import get_settings

    root = tmp_path / "samatlas-data"
    monkeypatch.setenv("SAMATLAS_DATA_ROOT", str(root))
    monkeypatch.setenv("SAMATLAS_CACHE_DIR", str(seed_cache(root)))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


@dataclass
class CliResult:
    """What a ``samatlas`` command did: exit code, and stdout and stderr together."""

    exit_code: int
    output: str
    stdout: str


def run_samatlas(root: Path, *args: object, timeout: float = 600) -> CliResult:
    """Run ``samatlas ARGS...`` as a user would: the console script, in a subprocess, on ``root``."""
    env = {**os.environ, "SAMATLAS_DATA_ROOT": str(root), "SAMATLAS_CACHE_DIR": str(seed_cache(root)), "COLUMNS": "200"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("samatlas")), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    return CliResult(done.returncode, done.stdout + done.stderr, done.stdout)


@pytest.fixture
def cli(prefect_server: None, data_root: Path):
    """``cli(ARGS...)`` runs the samatlas command on this test's data root (see run_samatlas)."""
    return functools.partial(run_samatlas, data_root)
