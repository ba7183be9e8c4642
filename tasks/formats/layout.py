"""Finding a release's files under whatever folder the user passed as ``--source``.

Users pass the release folder itself, its parent, or the folder an archive unpacked into (often
one or two wrapper folders deep), so discovery looks a few levels down and takes the shallowest
level that matches; operating-system junk (``._*``, ``.DS_Store``, ``__MACOSX``) never counts.
"""

from __future__ import annotations

from pathlib import Path

from tasks.formats.release import is_junk

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
