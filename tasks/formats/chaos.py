"""CHAOS ground truth: one PNG per DICOM slice, stacked onto the series' grid by file-name order.

The challenge pairs the n-th PNG with the n-th DICOM file in name order (its evaluation code says
slice order "is determined by order of image names NOT by position tags"), pixel for pixel; the
volume itself is stacked by position, so each PNG goes to the position of its DICOM file. CT PNGs
are 1-bit liver masks; MR PNGs are grey levels with tolerance bands (CHAOS's own definition):
liver 63 (55-70), right kidney 126 (110-135), left kidney 189 (175-200), spleen 252 (240-255).
A band is stored as its nominal grey level, which is the card's label value; any other non-zero
level is an error naming the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from records.cards import CaseFiles
from tasks.formats.dicom import Series, load, position_index, read_slice, stack
from tasks.formats.release import natural_key
from tasks.readers import Read
from tasks.volume import CaseError

MR_BANDS = {63: (55, 70), 126: (110, 135), 189: (175, 200), 252: (240, 255)}
CT_LIVER = 1


def read_png(path: Path) -> np.ndarray:
    """A greyscale or 1-bit PNG as an integer array (1-bit pixels become 0/1)."""
    try:
        with Image.open(path) as png:
            if png.mode not in ("1", "L", "I", "I;16"):
                raise CaseError(f"{path}: PNG mode {png.mode}; CHAOS ground truth is greyscale")
            return np.asarray(png).astype(np.uint16)
    except OSError as exc:
        raise CaseError(f"{path}: cannot be read as PNG ({exc})") from exc


def mr_labels(plane: np.ndarray, path: Path) -> np.ndarray:
    """MR grey levels snapped to their bands' nominal levels; a level in no band is an error."""
    out = np.zeros(plane.shape, dtype=np.uint8)
    for nominal, (low, high) in MR_BANDS.items():
        out[(plane >= low) & (plane <= high)] = nominal
    stray = (plane > 0) & (out == 0)
    if stray.any():
        raise CaseError(f"{path}: grey levels {sorted(np.unique(plane[stray]).tolist())} are in no CHAOS organ band {MR_BANDS}")
    return out


def ct_labels(plane: np.ndarray, path: Path) -> np.ndarray:
    """A binary CT liver mask (1-bit, or one non-zero level) as 0/1."""
    levels = np.unique(plane[plane > 0])
    if levels.size > 1:
        raise CaseError(f"{path}: {levels.size} foreground levels {levels.tolist()}; CHAOS CT ground truth is binary")
    return (plane > 0).astype(np.uint8) * CT_LIVER


def _series_of(files: Sequence[Path]) -> Series:
    return stack([read_slice(p) for p in files])


def stack_pngs(pngs: Sequence[Path], series: Series, image: sitk.Image, ground: Path, encoding: str) -> sitk.Image:
    """The PNG slices (in name order) placed at the positions of the series' files (in name order)."""
    rows, columns = series.slices[0].shape
    if len(pngs) != len(series.slices):
        raise CaseError(f"{ground}: {len(pngs)} PNG slices for {len(series.slices)} DICOM slices in {series.folder}")
    convert = mr_labels if encoding == "mr" else ct_labels
    names = sorted((s.path for s in series.slices), key=natural_key)
    volume = np.zeros((len(pngs), rows, columns), dtype=np.uint8)
    for png, z in zip(sorted(pngs, key=natural_key), position_index(series, names), strict=True):
        plane = read_png(png)
        if plane.shape != (rows, columns):
            raise CaseError(f"{png}: PNG size {plane.shape} differs from its DICOM slices' {(rows, columns)}")
        volume[z] = convert(plane, png)
    label = sitk.GetImageFromArray(volume)
    label.CopyInformation(image)
    return label


def read_chaos(case: CaseFiles) -> Read:
    """A CHAOS case: one DICOM folder per channel (T1-DUAL: in-phase, opposed-phase) and PNG labels.

    ``images`` are the DICOM files, grouped into channels by folder in the order given; ``label`` is
    the Ground folder; ``more`` lists its PNGs in slice order; ``extra["encoding"]`` is
    ``ct`` or ``mr``.
    """
    folders: dict[Path, list[Path]] = {}
    for path in case.images:
        folders.setdefault(path.parent, []).append(path)
    pngs = list(case.more)
    series = [_series_of(files) for files in folders.values()]
    channels = [load(s) for s in series]
    for other, s in zip(channels[1:], series[1:], strict=True):
        same = other.GetSize() == channels[0].GetSize() and np.allclose(other.GetOrigin(), channels[0].GetOrigin(), atol=1e-2)
        if not same or not np.allclose(other.GetSpacing(), channels[0].GetSpacing(), atol=1e-3):
            raise CaseError(f"{s.folder}: its slices do not lie where those of {series[0].folder} do")
    label = None
    if case.label is not None:
        label = stack_pngs(pngs, series[0], channels[0], case.label, case.extra.get("encoding", "mr"))
    return channels, label
