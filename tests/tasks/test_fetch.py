"""Fetching releases from URLs with checksums, against the loopback HTTP server of tests/conftest.py.

The archives are synthetic (a zip of a few bytes); they test transfer, resume, verification and
unpacking, not any dataset's content.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

import tasks.fetch
from catalog.registry import dataset_card
from records.cards import PercentileClip, Subset, Target, UrlSource
from tasks.download import CHUNK
from tasks.fetch import FetchError, materialise, resolve_subsets

SUBSETS = ("a", "b")


def _card(base: str, digests: dict[str, str], algorithm: str = "sha256", split: bool = False):
    subsets = tuple(
        Subset(name=n, modality="mr", region="brain", intensity=PercentileClip(), labels={1: Target(name="x", anatomy="brain")})
        for n in SUBSETS)
    return dataset_card(
        id="url-test", name="URL test", dimensionality=3, license="test", citation="test", layout="release/*.nii",
        subsets=subsets,
        source=UrlSource(files={name: (f"{base}/{name}", d) for name, d in digests.items()}, algorithm=algorithm,
                         subsets={f"{n}.zip": n for n in SUBSETS} if split else {}),
    )(lambda root: iter(()))


def _zip(path: Path, payload: bytes = b"payload") -> str:
    """Write a zip holding release/case1.nii and 3 MiB of filler (a transfer cut midway has whole
    downloader chunks to keep); its sha256."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("release/case1.nii", payload)
        zf.writestr("release/filler.bin", bytes(range(256)) * 4096 * 3)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_checks_sha256_and_extracts(http_server, tmp_path: Path):
    digest = _zip(http_server.root / "release.zip")
    release = materialise(_card(http_server.url, {"release.zip": digest}), tmp_path / "cache")
    assert (release.root / "release" / "release" / "case1.nii").read_bytes() == b"payload"
    assert (tmp_path / "cache" / "downloads" / "release.zip").exists()
    assert http_server.requests == [("/release.zip", None)]


def test_md5_sources_are_verified_by_md5(http_server, tmp_path: Path):
    path = http_server.root / "release.zip"
    _zip(path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    release = materialise(_card(http_server.url, {"release.zip": md5}, "md5"), tmp_path / "cache")
    assert (release.root / "release" / "release" / "case1.nii").exists()
    with pytest.raises(FetchError, match="md5"):  # the same bytes under the sha256 of something else
        materialise(_card(http_server.url, {"release.zip": "1" * 32}, "md5"), tmp_path / "other")


def test_truncated_download_resumes_with_a_range_request(http_server, tmp_path: Path):
    path = http_server.root / "release.zip"
    digest = _zip(path)
    cut = path.stat().st_size * 3 // 4
    http_server.cut["/release.zip"] = cut
    release = materialise(_card(http_server.url, {"release.zip": digest}), tmp_path / "cache")
    assert (release.root / "release" / "release" / "case1.nii").read_bytes() == b"payload"
    kept = cut // CHUNK * CHUNK  # the bytes of whole chunks that arrived before the cut
    assert kept > 0 and http_server.requests == [("/release.zip", None), ("/release.zip", f"bytes={kept}-")]
    assert not list((tmp_path / "cache" / "downloads").glob("*.part"))


def test_truncated_download_restarts_where_the_server_ignores_ranges(http_server, tmp_path: Path):
    path = http_server.root / "release.zip"
    digest = _zip(path)
    http_server.ranges = False
    http_server.cut["/release.zip"] = path.stat().st_size // 3
    release = materialise(_card(http_server.url, {"release.zip": digest}), tmp_path / "cache")
    assert (release.root / "release" / "release" / "case1.nii").read_bytes() == b"payload"
    assert len(http_server.requests) == 2  # the second got the whole file (200) and replaced the part


def test_a_part_left_by_an_earlier_run_is_continued(http_server, tmp_path: Path):
    path = http_server.root / "release.zip"
    digest = _zip(path)
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "release.zip.part").write_bytes(path.read_bytes()[:1000])
    materialise(_card(http_server.url, {"release.zip": digest}), tmp_path / "cache")
    assert http_server.requests == [("/release.zip", "bytes=1000-")]
    assert hashlib.sha256((downloads / "release.zip").read_bytes()).hexdigest() == digest


def test_checksum_mismatch_is_refused_at_once_and_nothing_is_unpacked(http_server, tmp_path: Path):
    _zip(http_server.root / "release.zip")
    with pytest.raises(FetchError, match="download failed"):
        materialise(_card(http_server.url, {"release.zip": "0" * 64}), tmp_path / "cache")
    release = tmp_path / "cache" / "url-test" / "release"
    assert len(http_server.requests) == 1  # a wrong checksum is not downloaded again
    assert not list((tmp_path / "cache" / "downloads").iterdir())  # neither the file nor a part
    assert not (release / "release").exists() and not (release / tasks.fetch.COMPLETE).exists()


def test_unreachable_url_is_a_fetch_error(http_server, tmp_path: Path):
    with pytest.raises(FetchError, match="download failed"):
        materialise(_card(http_server.url, {"missing.zip": "0" * 64}), tmp_path / "cache")


def test_subsets_fetch_one_archive_each_and_are_not_fetched_again(http_server, tmp_path: Path):
    digests = {f"{n}.zip": _zip(http_server.root / f"{n}.zip", n.encode()) for n in SUBSETS}
    card = _card(http_server.url, digests, split=True)
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"ships 2 archives.*--subset NAME.*names: a, b"):
        materialise(card, cache)  # nothing chosen, nothing fetched yet
    with pytest.raises(FetchError, match=r"no subset 'c'; choose from a, b or all"):
        resolve_subsets(card, ["c"])
    root = materialise(card, cache, subsets=resolve_subsets(card, ["b"])).root
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == ["b"]
    assert http_server.requests == [("/b.zip", None)]
    materialise(card, cache)  # without a choice: what was fetched before, without downloading it again
    materialise(card, cache, subsets=resolve_subsets(card, ["all"]))
    assert http_server.requests == [("/b.zip", None), ("/a.zip", None)]
    assert (root / "a" / "release" / "case1.nii").read_bytes() == b"a"


def test_mirror_url_replaces_the_published_host(http_server, tmp_path: Path, monkeypatch):
    from tasks.settings import get_settings

    digest = _zip(http_server.root / "release.zip")
    monkeypatch.setenv("SAMATLAS_MIRROR_URL", http_server.url + "/")
    get_settings.cache_clear()
    try:
        materialise(_card("https://unreachable.invalid/releases", {"release.zip": digest}), tmp_path / "cache")
    finally:
        get_settings.cache_clear()
    assert http_server.requests == [("/release.zip", None)]
