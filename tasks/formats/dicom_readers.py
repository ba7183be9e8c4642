"""Case readers for releases whose images are DICOM series and whose labels are NIfTI or NRRD files.

A case's ``images`` are the DICOM files of one patient folder (any order, possibly several series);
``extra["series_uid"]`` picks a series where the discoverer knows it. ``dicom`` and
``dicom-binary`` expect the label on the series' grid up to axis order (TCIA's Pancreas-CT and
CT Lymph Nodes masks); ``dicom-resampled`` resamples a label stored on a grid of its own
(NCI-ISBI 2013) and, when a folder holds several series, reads the one whose region the label covers.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.formats.binary import binarise
from tasks.formats.dicom import Series, Slice, choose_series, group_by_series, load, read_series, stack
from tasks.formats.resample import bounds_mismatch, image_bounds, match_axes, resample_onto, world_bounds
from tasks.readers import Read, read_sitk
from tasks.volume import CaseError


def _series_folder(case: CaseFiles) -> Path:
    return case.images[0].parent


def read_dicom(case: CaseFiles) -> Read:
    """One DICOM series; the label file put in the series' axis order."""
    image, _ = read_series(case.images, _series_folder(case), case.extra.get("series_uid"))
    label = match_axes(read_sitk(case.label), image) if case.label else None
    return [image], label


def read_dicom_binary(case: CaseFiles) -> Read:
    """One DICOM series; the label (instance numbers or 0/255) binarised to 1 and put in the series' axis order."""
    channels, label = read_dicom(case)
    return channels, binarise(label) if label is not None else None


def _closest_series(groups: dict[str, list[Slice]], label: sitk.Image, where: Path) -> Series:
    """The regular series whose region is nearest the label's (irregular ones, such as dynamic series, are skipped)."""
    candidates: list[Series] = []
    for slices in groups.values():
        try:
            candidates.append(stack(slices))
        except CaseError:
            continue
    if not candidates:
        raise CaseError(f"{where}: none of its {len(groups)} DICOM series forms a regular volume")
    target = image_bounds(label)
    return min(candidates, key=lambda s: bounds_mismatch(world_bounds(s.origin, s.spacing, s.direction, s.size), target))


def read_dicom_resampled(case: CaseFiles) -> Read:
    """One DICOM series; the label resampled onto it by nearest neighbour once both are shown to cover one region."""
    where = _series_folder(case)
    if case.label is None:
        image, _ = read_series(case.images, where, case.extra.get("series_uid"))
        return [image], None
    label = read_sitk(case.label)
    groups = group_by_series(case.images)
    if "series_uid" in case.extra or len(groups) == 1:
        series = stack(choose_series(groups, where, case.extra.get("series_uid")))
    else:
        if label.GetDimension() != 3:
            raise CaseError(f"{case.label}: label has {label.GetDimension()} dimensions, the images 3")
        series = _closest_series(groups, label, where)
    image = load(series)
    return [image], resample_onto(label, image, case.label)
