"""FUMPE's MATLAB ground truth: one ``.mat`` per patient whose variable ``Mask`` is (rows, columns, slices).

The mask's third axis follows the DICOM files' own numbering (InstanceNumber), not the order a
volume is stacked in, so each mask plane is placed at the position of the DICOM slice it belongs
to. MATLAB v5/v7 files are read with scipy; v7.3 files are HDF5, which h5py (optional) reads with
the axes reversed because MATLAB stores arrays column-major.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import SimpleITK as sitk
from scipy.io.matlab import MatReadError

from records.cards import CaseFiles
from tasks.formats.dicom import Series, position_index, read_series
from tasks.formats.release import natural_key
from tasks.readers import Read
from tasks.volume import CaseError

MASK_KEY = "Mask"


def _read_hdf5(path: Path) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise CaseError(f"{path}: MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    with h5py.File(path, "r") as handle:
        if MASK_KEY not in handle:
            raise CaseError(f"{path}: no variable {MASK_KEY!r}; it holds {sorted(handle)}")
        return np.asarray(handle[MASK_KEY]).T


def read_mask(path: Path) -> np.ndarray:
    """The ``Mask`` array of a FUMPE ``.mat`` file, axes (rows, columns, slices)."""
    try:
        data = scipy.io.loadmat(path, variable_names=[MASK_KEY])
    except NotImplementedError:  # scipy's answer for v7.3 files
        mask = _read_hdf5(path)
    except (MatReadError, ValueError, TypeError, IndexError, OSError) as exc:  # scipy's errors for damaged files
        raise CaseError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    else:
        if MASK_KEY not in data:
            raise CaseError(f"{path}: no variable {MASK_KEY!r}")
        mask = np.asarray(data[MASK_KEY])
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.ndim != 3:
        raise CaseError(f"{path}: {MASK_KEY} has {mask.ndim} dimensions; expected (rows, columns, slices)")
    return mask


def instance_order(series: Series) -> list[Path]:
    """The series' files in the order the scanner numbered them (InstanceNumber, then natural file name)."""
    unnumbered = float("inf")
    ordered = sorted(series.slices, key=lambda s: (s.instance if s.instance is not None else unnumbered, natural_key(s.path)))
    return [s.path for s in ordered]


def mask_on_series(mask: np.ndarray, series: Series, image: sitk.Image, path: Path) -> sitk.Image:
    """The (rows, columns, slices-in-instance-order) mask as a label on the series' grid."""
    rows, columns = series.slices[0].shape
    expected = (rows, columns, len(series.slices))
    if mask.shape != expected:
        raise CaseError(f"{path}: {MASK_KEY} shape {mask.shape} (rows, columns, slices) differs from the "
                        f"DICOM series' {expected} in {series.folder}")
    if not np.array_equal(mask, np.round(mask)) or mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
        raise CaseError(f"{path}: {MASK_KEY} holds values that are not label values (integers 0-255)")
    stacked = np.zeros((expected[2], rows, columns), dtype=np.uint8)
    for plane, z in enumerate(position_index(series, instance_order(series))):
        stacked[z] = mask[:, :, plane]
    label = sitk.GetImageFromArray(stacked)
    label.CopyInformation(image)
    return label


def read_fumpe(case: CaseFiles) -> Read:
    """A FUMPE patient: the CTPA DICOM series and its ``.mat`` mask placed slice by slice."""
    image, series = read_series(case.images, case.images[0].parent)
    label = mask_on_series(read_mask(case.label), series, image, case.label) if case.label else None
    return [image], label
