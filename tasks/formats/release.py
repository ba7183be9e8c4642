"""Walking an official release folder: skip operating-system junk, list files in natural name order.

Releases unpacked on macOS carry ``._*`` resource forks, ``.DS_Store`` and ``__MACOSX`` folders;
slice files numbered without zero padding (``x_2.png`` before ``x_10.png``) need natural order.
Users pass the release folder itself, its parent, or the folder an archive unpacked into (often one
or two wrapper folders deep), so ``find`` looks a few levels down and takes the shallowest match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_DIGITS = re.compile(r"(\d+)")


def is_junk(path: Path) -> bool:
    """True for macOS metadata files and folders, which are never data."""
    return path.name.startswith("._") or path.name == ".DS_Store" or "__MACOSX" in path.parts


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
