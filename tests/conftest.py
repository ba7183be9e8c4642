"""Shared fixtures: one Prefect test server per session, an isolated data root per test, the CLI."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The downloads `make data` fetched (package files, sha256-checked); tests reuse them, but unpack
# releases into their own cache so that no test sees another's (or leaves one for the user).
SHARED_DOWNLOADS = Path(os.environ.get("SAMATLAS_TEST_DOWNLOADS", REPO / "samatlas-data" / "cache" / "downloads"))
# Networks exported for ONNX Runtime (tasks/models/onnx_runtime.py), shared as the downloads are: each
# test's own cache would export LiteMedSAM's networks again (seconds) in every test that loads it.
os.environ.setdefault("SAMATLAS_MODEL_CACHE", str(REPO / "samatlas-data" / "cache" / "models"))


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


@pytest.fixture(scope="session")
def ingested_samples(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with ``sample-radiomics`` ingested once for the session. Read it through
    :func:`copy_catalog`: its store is shared and no test may write it."""
    root = tmp_path_factory.mktemp("samples") / "samatlas-data"
    done = run_samatlas(root, "ingest", "sample-radiomics")
    assert done.exit_code == 0, done.output
    return root


def copy_catalog(ingested: Path, root: Path) -> Path:
    """A data root at ``root`` with a private copy of ``ingested``'s catalog; its cases rows still
    point at the shared store, which evaluate only reads."""
    shutil.copytree(ingested / "catalog", root / "catalog")
    return root


def copy_data_root(ingested: Path, root: Path) -> Path:
    """A data root at ``root`` with private copies of ``ingested``'s catalog and store (the cases rows
    re-pointed at the copy), for tests whose evaluate writes into the cases (stored predictions)."""
    import pyarrow as pa

    from catalog import tables
    from records.rows import CaseRow

    copy_catalog(ingested, root)
    shutil.copytree(ingested / "store", root / "store")
    cases = tables.read(root / "catalog", "cases")
    old, new = str(ingested / "store"), str(root / "store")
    paths = [p.replace(old, new, 1) if p else p for p in cases.column("zarr_path").to_pylist()]
    cases = cases.set_column(cases.schema.get_field_index("zarr_path"), "zarr_path", pa.array(paths, pa.string()))
    tables.replace(root / "catalog", cases, CaseRow, {"dataset": set(cases.column("dataset").to_pylist())})
    return root


@pytest.fixture
def cli(prefect_server: None, data_root: Path):
    """``cli(ARGS...)`` runs the samatlas command on this test's data root (see run_samatlas)."""
    return functools.partial(run_samatlas, data_root)


class RangeServer(http.server.ThreadingHTTPServer):
    """A static file server that honours ``Range: bytes=N-`` (when ``ranges``), logs each GET's path
    and Range header in ``requests``, and drops the connection after ``cut[path]`` bytes once."""

    ranges = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of ``server.root``: 200, 206 for a range, 404, 416 for a range past the end."""

    server: RangeServer

    def log_message(self, *args: object) -> None:
        """Quiet: the tests read ``server.requests`` instead."""

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        wanted = self.headers.get("Range")
        self.server.requests.append((self.path, wanted))
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted and self.server.ranges else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if self.server.ranges else "none")
        self.end_headers()
        cut = self.server.cut.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = cut is not None


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[RangeServer]:
    """A RangeServer on 127.0.0.1 over ``tmp_path / 'www'``, in a thread, stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = RangeServer(root)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
