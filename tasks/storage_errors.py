"""Failed writes of samatlas's own outputs (the Zarr store, the catalog), told apart from bad inputs.

An ``OSError`` while writing a case (ENOSPC, EDQUOT, EROFS, ...) says nothing about the source file,
so it must not quarantine the case: it is raised as a :class:`StorageError` naming the path and the
space left there, which the flows report as a storage problem; the case stays unrecorded, so a re-run
after space is freed ingests it.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.locations import Location, is_remote


class StorageError(OSError):
    """Writing to the store or catalog failed; the message names the path and its free space."""


def free_space(path: Location) -> str:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), for messages;
    for an object store, what to check instead (it has no free space to report)."""
    if is_remote(path):
        return "an object store: check that the bucket exists and that the credentials may write to it"
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
        return f"{free:,} bytes ({free / 2**30:.2f} GiB) free on {probe}"
    except OSError:
        return f"free space on {probe} unknown"


def storage_error(path: Location, exc: OSError) -> StorageError:
    """A StorageError for ``exc`` raised while writing ``path``."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    where = exc.filename or path
    error = StorageError(f"cannot write {where}: {reason} ({free_space(path)})")
    error.errno = exc.errno or errno.EIO
    return error


@contextmanager
def writing(path: Location) -> Iterator[None]:
    """Turn an ``OSError`` from the system inside the block into a :class:`StorageError` about ``path``.

    Only errors with an ``errno`` (the system's: ENOSPC, EDQUOT, EROFS, EIO, ...) are converted;
    ``OSError`` subclasses that libraries raise about their input (``gzip.BadGzipFile``) carry none
    and stay what they are.
    """
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if exc.errno is None:
            raise
        raise storage_error(path, exc) from exc
