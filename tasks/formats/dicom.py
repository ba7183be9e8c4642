"""DICOM series: slices grouped by series and stacked by position along the slice normal.

Neither file names nor instance numbers reliably say where a slice lies (TCIA names run head to
feet in one collection and feet to head in the next); ImagePositionPatient projected on the
normal of the slice plane (the cross product of the two ImageOrientationPatient cosines) does.
Pixels are decoded by SimpleITK (GDCM, so compressed transfer syntaxes work, rescale applied);
the geometry is set from the sorted headers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from tasks.volume import CaseError

_TAGS = [
    "SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "InstanceNumber", "SliceThickness",
]
SAME_POSITION_MM = 1e-3
SPACING_TOLERANCE = 0.1  # relative deviation of one gap from the median gap before slices count as missing


@dataclass(frozen=True)
class Slice:
    """The header facts of one DICOM file needed to place it in a volume."""

    path: Path
    series_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]  # (between rows, between columns) as DICOM gives it
    shape: tuple[int, int]  # (rows, columns)
    instance: int | None
    thickness: float | None


def read_slice(path: Path) -> Slice:
    """The placement header of one DICOM file, or a CaseError naming it."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise CaseError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    missing = [t for t in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows") if t not in ds]
    if missing:
        raise CaseError(f"{path}: DICOM slice lacks {', '.join(missing)}, so it cannot be placed in a volume")
    instance = ds.get("InstanceNumber")
    thickness = ds.get("SliceThickness")
    return Slice(
        path=path, series_uid=str(ds.get("SeriesInstanceUID", "")),
        position=tuple(float(v) for v in ds.ImagePositionPatient),
        orientation=tuple(float(v) for v in ds.ImageOrientationPatient),
        pixel_spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
        shape=(int(ds.Rows), int(ds.Columns)),
        instance=int(instance) if instance not in (None, "") else None,
        thickness=float(thickness) if thickness not in (None, "") else None,
    )


def group_by_series(files: Sequence[Path]) -> dict[str, list[Slice]]:
    """The slices of ``files`` grouped by SeriesInstanceUID (groups in UID order)."""
    groups: dict[str, list[Slice]] = defaultdict(list)
    for path in files:
        one = read_slice(path)
        groups[one.series_uid].append(one)
    return {uid: groups[uid] for uid in sorted(groups)}


@dataclass(frozen=True)
class Series:
    """One series' slices in order of position along the normal, with the volume geometry they imply."""

    slices: tuple[Slice, ...]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]  # ITK order (x, y, z)
    direction: tuple[float, ...]  # 3x3 row-major, columns = row cosine, column cosine, normal

    @property
    def size(self) -> tuple[int, int, int]:
        """Voxels along (x, y, z)."""
        rows, columns = self.slices[0].shape
        return columns, rows, len(self.slices)

    @property
    def folder(self) -> Path:
        """The folder of the first slice, for messages."""
        return self.slices[0].path.parent


def stack(slices: Sequence[Slice]) -> Series:
    """Order ``slices`` of one series by position along their normal and derive the volume geometry.

    Raises CaseError when the slices do not form one regular volume: mixed orientations or sizes,
    two slices at one position, or gaps (missing slices) that would misplace every label after them.
    """
    first = slices[0]
    where = first.path.parent
    for s in slices[1:]:
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise CaseError(f"{s.path}: slice orientation {s.orientation} differs from {first.path.name} {first.orientation}")
        if s.shape != first.shape or not np.allclose(s.pixel_spacing, first.pixel_spacing, atol=1e-4):
            raise CaseError(f"{s.path}: slice size or pixel spacing differs from {first.path.name} in the same series")
    row, column = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    normal = np.cross(row, column)
    ordered = sorted(slices, key=lambda s: float(np.dot(s.position, normal)))
    offsets = np.array([np.dot(s.position, normal) for s in ordered])
    gaps = np.diff(offsets)
    if gaps.size and gaps.min() < SAME_POSITION_MM:
        i = int(np.argmin(gaps))
        raise CaseError(f"{where}: {ordered[i].path.name} and {ordered[i + 1].path.name} lie at the same position; "
                        "the folder holds more than one volume")
    if gaps.size:
        median = float(np.median(gaps))
        if np.abs(gaps - median).max() > SPACING_TOLERANCE * median:
            raise CaseError(f"{where}: slice gaps range {gaps.min():.3f}-{gaps.max():.3f} mm around {median:.3f} mm; "
                            "slices are missing or the series is irregular")
        z_spacing = float((offsets[-1] - offsets[0]) / (len(ordered) - 1))
    else:
        z_spacing = first.thickness or 1.0
    direction = np.column_stack([row, column, normal])
    return Series(
        slices=tuple(ordered), origin=ordered[0].position,
        spacing=(first.pixel_spacing[1], first.pixel_spacing[0], z_spacing),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def choose_series(groups: dict[str, list[Slice]], where: Path, series_uid: str | None = None) -> list[Slice]:
    """The slices of the series to read: ``series_uid`` if given, the only one, or the one with most positions."""
    if not groups:
        raise CaseError(f"{where}: no DICOM files")
    if series_uid is not None:
        if series_uid not in groups:
            raise CaseError(f"{where}: no series {series_uid}; found {sorted(groups)}")
        return groups[series_uid]
    if len(groups) == 1:
        return next(iter(groups.values()))
    counts = {uid: len({tuple(np.round(s.position, 3)) for s in slices}) for uid, slices in groups.items()}
    best = max(counts.values())
    winners = [uid for uid, n in counts.items() if n == best]
    if len(winners) > 1:
        raise CaseError(f"{where}: {len(winners)} series with {best} slices each ({', '.join(winners)}); "
                        "cannot tell which is the image")
    return groups[winners[0]]


def load(series: Series) -> sitk.Image:
    """Decode the pixels of ``series`` in its sorted order and give the volume the headers' geometry."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(s.path) for s in series.slices])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise CaseError(f"{series.folder}: DICOM pixels cannot be decoded ({last})") from exc
    if image.GetDimension() != 3 or image.GetSize() != series.size:
        raise CaseError(f"{series.folder}: decoded size {image.GetSize()} differs from the headers' {series.size}")
    image.SetOrigin(series.origin)
    image.SetSpacing(series.spacing)
    image.SetDirection(series.direction)
    return image


def read_series(files: Sequence[Path], where: Path, series_uid: str | None = None) -> tuple[sitk.Image, Series]:
    """Read the chosen series among ``files`` as one volume, with its sorted slices."""
    series = stack(choose_series(group_by_series(files), where, series_uid))
    return load(series), series


def position_index(series: Series, files_in_order: Sequence[Path]) -> list[int]:
    """For each of ``files_in_order``, the index along the normal of its slice in ``series``.

    Labels stored one slice per DICOM file (CHAOS PNGs, FUMPE mask planes) follow the files' own
    order; this maps that order onto the volume's.
    """
    index = {s.path: i for i, s in enumerate(series.slices)}
    return [index[Path(p)] for p in files_in_order]
