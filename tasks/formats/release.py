"""Walking an official release folder: skip operating-system junk, list files in natural name order.

Releases unpacked on macOS carry ``._*`` resource forks, ``.DS_Store`` and ``__MACOSX`` folders;
slice files numbered without zero padding (``x_2.png`` before ``x_10.png``) need natural order.
Users pass the release folder itself, its parent, or the folder an archive unpacked into (often one
or two wrapper folders deep), so ``find`` looks a few levels down and takes the shallowest match.
Planar releases hold thousands of files in folders whose names carry spaces, brackets and capitals
(``Viral Pneumonia``, ``benign (1).png``); ``case_slug`` turns such names into case ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_DIGITS = re.compile(r"(\d+)")


JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def is_junk(path: Path) -> bool:
    """True for macOS resource forks (``._*``), Finder/Explorer files and anything under ``__MACOSX``."""
    return path.name.startswith("._") or path.name in JUNK_NAMES or "__MACOSX" in path.parts


def natural_key(path: Path) -> tuple:
    """Sort key comparing runs of digits as numbers, so ``img2`` sorts before ``img10`` (every path part)."""
    return tuple(
        tuple((0, int(run), "") if run.isdigit() else (1, 0, run.lower()) for run in _DIGITS.split(part))
        for part in path.parts
    )


def files_with_suffix(folder: Path, suffixes: Iterable[str], recursive: bool = False) -> list[Path]:
    """The non-junk files in ``folder`` whose names end with one of ``suffixes`` (any case), in natural order."""
    wanted = tuple(s.lower() for s in suffixes)
    pattern = "**/*" if recursive else "*"
    found = [p for p in folder.glob(pattern) if p.is_file() and p.name.lower().endswith(wanted) and not is_junk(p)]
    return sorted(found, key=natural_key)


def find_dirs(root: Path, name: str) -> list[Path]:
    """Every non-junk folder called ``name`` at or below ``root``, shallowest first."""
    found = [root] if root.name == name else []
    found += [p for p in root.rglob(name) if p.is_dir() and not is_junk(p)]
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


MAX_DEPTH = 3


def find(root: Path, pattern: str, hint: str) -> list[Path]:
    """Paths matching ``pattern`` at ``root`` or up to MAX_DEPTH folders below, at the shallowest level
    that has any, sorted.

    Raises ValueError naming ``root``, the pattern and ``hint`` (what the user should pass) when
    nothing matches, so a wrong ``--source`` fails loudly instead of ingesting zero cases.
    """
    root = Path(root)
    for depth in range(MAX_DEPTH + 1):
        found = sorted(p for p in root.glob("*/" * depth + pattern) if not is_junk(p))
        if found:
            return found
    raise ValueError(f"{root}: no {pattern} found (searched {MAX_DEPTH} folder levels deep); pass {hint}")


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
