"""Case readers: turn the files of one case into ITK images, one reader per release format.

A card names its reader as the function itself; ``tasks.formats`` holds the format-specific ones.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.preflight import check_payload, check_voxels, read_header
from tasks.settings import get_settings
from tasks.volume import CaseError

Read = tuple[list[sitk.Image], sitk.Image | None]


def read_sitk(path: Path) -> sitk.Image:
    """Read one image file with SimpleITK, turning its errors into a CaseError naming the file.

    Its header is checked first (:mod:`tasks.preflight`): the voxel cap, and that the file holds the
    pixels its header declares, so a lying header costs no memory and a truncated file is not
    zero-filled.
    """
    if not path.exists():
        raise CaseError(f"{path}: file is missing")
    header = read_header(path)
    check_voxels([header], get_settings().max_case_voxels)
    check_payload(header)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise CaseError(f"{path}: cannot be read ({first})") from exc


def read_files(case: CaseFiles) -> Read:
    """One image file per channel and an optional label file, in any format SimpleITK reads.

    The case's total size is checked from the headers before any file's pixels are read.
    """
    files = [*case.images, *([case.label] if case.label else [])]
    for path in files:
        if not path.exists():
            raise CaseError(f"{path}: file is missing")
    check_voxels([read_header(p) for p in files], get_settings().max_case_voxels)
    channels = [read_sitk(p) for p in case.images]
    label = read_sitk(case.label) if case.label else None
    return channels, label
