"""Fetching releases from URLs with checksums, against a loopback HTTP server this test starts."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from records.cards import PercentileClip, Subset, Target, UrlSource
from catalog.registry import REGISTRY, dataset_card
from tasks.fetch import FetchError, materialise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1 over ``tmp_path / 'www'``, stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _card(url: str, sha256: str):
    card = dataset_card(
        id="url-test", name="URL test", dimensionality=3, license="test", citation="test", layout="release/*.nii",
        subsets=(Subset(modality="mr", region="brain", intensity=PercentileClip(), labels={1: Target(name="x", anatomy="brain")}),),
        source=UrlSource(files={"release.zip": (url, sha256)}),
    )(lambda root: iter(()))
    return card


@pytest.fixture(autouse=True)
def unregister() -> Iterator[None]:
    yield
    REGISTRY.pop("url-test", None)


def test_download_checks_sha256_and_extracts(server, tmp_path: Path):
    base, www = server
    with zipfile.ZipFile(www / "release.zip", "w") as zf:
        zf.writestr("release/case1.nii", b"payload")
    digest = hashlib.sha256((www / "release.zip").read_bytes()).hexdigest()
    release = materialise(_card(f"{base}/release.zip", digest), tmp_path / "cache")
    assert (release.root / "release" / "release" / "case1.nii").read_bytes() == b"payload"
    assert (tmp_path / "cache" / "downloads" / "release.zip").exists()


def test_checksum_mismatch_is_a_fetch_error_and_keeps_nothing(server, tmp_path: Path):
    base, www = server
    (www / "release.zip").write_bytes(b"not what the card promised")
    with pytest.raises(FetchError, match="download failed"):
        materialise(_card(f"{base}/release.zip", "0" * 64), tmp_path / "cache")
    assert not (tmp_path / "cache" / "downloads" / "release.zip").exists()


def test_unreachable_url_is_a_fetch_error(server, tmp_path: Path):
    base, _ = server
    with pytest.raises(FetchError, match="download failed"):
        materialise(_card(f"{base}/missing.zip", "0" * 64), tmp_path / "cache")
