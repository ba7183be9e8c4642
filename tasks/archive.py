"""Safe extraction of release archives (zip, tar, tar.gz): nothing lands outside the target folder.

The standard library's tarfile ``data`` filter guards tar members but not zip members and still
extracts in-tree links; releases never need links, so every archive is checked member by member
first and refused whole, naming the offending member, before anything is written.

Sizes are checked from the member headers before extraction (tar sizes are exact; zipfile stops a
member at its declared size and fails its CRC if it lies): the total against
``Settings.max_archive_bytes`` and the free space at the target, each member against
``Settings.max_member_bytes``, and the expanded/packed ratio against ``MAX_RATIO``. Real releases hold
already-compressed images (ratio near 1) or raw volumes (ratio under 10); a bomb padded with random
bytes to dilute its ratio (5 MB padding, ratio 453, 4.3 GB expanded) is refused by the ratio.
"""

from __future__ import annotations

import fnmatch
import shutil
import tarfile
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from tasks.settings import get_settings
from tasks.storage_errors import StorageError, writing

MAX_RATIO = 100  # expanded / packed: beyond this an archive is a bomb, not a dataset
RATIO_FROM = 10 * 1024**2  # below this many expanded bytes the ratio is noise (one all-zero raw mask), not a bomb


class UnsafeArchive(ValueError):
    """An archive with a member that would escape the target, a link, or an absurd size."""


def is_archive(path: Path) -> bool:
    """True for the archive kinds samatlas extracts."""
    name = path.name.lower()
    return path.is_file() and name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def _check_name(archive: Path, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path; refusing the archive")
    if ".." in posix.parts:
        raise UnsafeArchive(f"{archive}: member {name!r} escapes the target folder; refusing the archive")


def _check_sizes(archive: Path, dest: Path, sizes: dict[str, int]) -> None:
    """Refuse the archive if a member, the total, the ratio or the free space at ``dest`` is too large."""
    settings = get_settings()
    for name, size in sizes.items():
        if size > settings.max_member_bytes:
            raise UnsafeArchive(
                f"{archive}: member {name!r} expands to {size:,} bytes, over the cap of "
                f"{settings.max_member_bytes:,} (SAMATLAS_MAX_MEMBER_BYTES); refusing the archive"
            )
    expanded, packed = sum(sizes.values()), max(archive.stat().st_size, 1)
    if expanded > settings.max_archive_bytes or (expanded > RATIO_FROM and expanded > packed * MAX_RATIO):
        raise UnsafeArchive(
            f"{archive}: expands to {expanded:,} bytes from {packed:,} (ratio {expanded / packed:,.0f}, "
            f"at most {MAX_RATIO}; cap {settings.max_archive_bytes:,} bytes, SAMATLAS_MAX_ARCHIVE_BYTES); "
            "refusing an archive this size"
        )
    free = shutil.disk_usage(dest).free
    if expanded > free:
        raise UnsafeArchive(f"{archive}: expands to {expanded:,} bytes but {dest} has {free:,} bytes free")


def _wanted(name: str, patterns: Iterable[str] | None) -> bool:
    if PurePosixPath(name).name.startswith("._") or "__MACOSX" in name:
        return False  # macOS resource forks, never data
    return patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)


def _extract_tar(archive: Path, dest: Path, patterns: Iterable[str] | None) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                _check_name(archive, m.name)
                if m.issym() or m.islnk():
                    raise UnsafeArchive(f"{archive}: member {m.name!r} is a link; refusing the archive")
                if not (m.isfile() or m.isdir()):
                    raise UnsafeArchive(f"{archive}: member {m.name!r} is not a file or folder")
            _check_sizes(archive, dest, {m.name: m.size for m in members})
            chosen = [m for m in members if m.isfile() and _wanted(m.name, patterns)]
            with writing(dest):  # reading errors are the archive's; writing errors are the disk's
                tar.extractall(dest, members=chosen, filter="data")
    except StorageError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"{archive}: cannot read the archive ({exc}); is it truncated?") from exc


def _extract_zip(archive: Path, dest: Path, patterns: Iterable[str] | None) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_name(archive, info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeArchive(f"{archive}: member {info.filename!r} is a link; refusing the archive")
            _check_sizes(archive, dest, {i.filename: i.file_size for i in infos})
            for info in infos:
                if not info.is_dir() and _wanted(info.filename, patterns):
                    with writing(dest):
                        zf.extract(info, dest)
    except StorageError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{archive}: cannot read the archive ({exc}); is it truncated?") from exc


def extract(archive: Path, dest: Path, patterns: Iterable[str] | None = None) -> Path:
    """Extract ``archive`` (optionally only members matching ``patterns``) into ``dest``.

    Extraction goes to a staging folder renamed to ``dest`` when complete, so an interrupted or
    refused extraction leaves nothing behind; an existing ``dest`` is replaced.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".staging-{dest.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, patterns)
        else:
            _extract_tar(archive, staging, patterns)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest
