"""Finding the files of a planar (2D) release: skipping junk, locating its top folder, naming cases.

Planar releases hold thousands of files in folders whose names carry spaces, brackets and capitals
(``Viral Pneumonia``, ``benign (1).png``); cards use these helpers so that every one skips the same
junk and derives case ids the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def is_junk(path: Path) -> bool:
    """True for macOS resource forks (``._*``), Finder/Explorer files and anything under ``__MACOSX``."""
    return path.name.startswith("._") or path.name in JUNK_NAMES or "__MACOSX" in path.parts


def files_in(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """The files directly in ``folder`` whose suffix (any case) is one of ``suffixes``, sorted, junk skipped."""
    wanted = {s.lower() for s in suffixes}
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted and not is_junk(p))


def walk_files(root: Path, suffixes: Iterable[str]) -> Iterator[Path]:
    """Every file under ``root`` with one of ``suffixes`` (any case), sorted, junk skipped."""
    wanted = {s.lower() for s in suffixes}
    found = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__MACOSX"]
        found.extend(Path(folder) / n for n in names if Path(n).suffix.lower() in wanted)
    yield from sorted(p for p in found if not is_junk(p))


def top_folders(root: Path, name: str) -> list[Path]:
    """The release's folders called ``name``: ``root`` itself if so named, else every one below it."""
    if root.name == name:
        return [root]
    found = []
    for folder, dirs, _ in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__MACOSX"]
        if name in dirs:
            found.append(Path(folder) / name)
            dirs.remove(name)  # a release does not nest its own top folder
    return sorted(found)


def case_slug(*parts: str) -> str:
    """A case id from name parts: lowercase, runs of other characters as ``-``, parts joined by ``-``.

    ``("Viral Pneumonia", "Viral Pneumonia-12")`` gives ``viral-pneumonia-viral-pneumonia-12``;
    ``benign (1)`` gives ``benign-1``.
    """
    slugs = [_UNSAFE.sub("-", p.lower()).strip("-.") for p in parts]
    return "-".join(s for s in slugs if s)


def inner_folder(root: Path, name: str) -> Path | None:
    """The first folder called ``name``, or ``name/name`` where the archive repeats it (Kaggle often does)."""
    for top in top_folders(root, name):
        return top / name if (top / name).is_dir() else top
    return None
