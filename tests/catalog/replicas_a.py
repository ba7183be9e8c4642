"""Writers of tiny synthetic replicas of official releases: the files, names and encodings, not the anatomy.

Volumes are a few 16x16 slices whose voxel values encode their own index (``1000 z + 10 y + x``
in file order), so a test can tell from the store whether slices and axes ended up where they belong.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import scipy.io
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # how most NIfTI converters leave a volume


def ramp(shape: tuple[int, int, int]) -> np.ndarray:
    """An int16 (z, y, x) volume whose voxel value is 1000 z + 10 y + x."""
    z, y, x = np.indices(shape)
    return (1000 * z + 10 * y + x).astype(np.int16)


def box(shape: tuple[int, int, int], zs: slice, ys: slice, xs: slice, value: int = 1,
        into: np.ndarray | None = None) -> np.ndarray:
    """A uint8 (z, y, x) label with ``value`` in one box (painted into ``into`` when given)."""
    label = np.zeros(shape, dtype=np.uint8) if into is None else into
    label[zs, ys, xs] = value
    return label


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                 direction=LPS, compress: bool = False) -> sitk.Image:
    """Write a (z, y, x) array as any SimpleITK format (by suffix) with the given x, y, z geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return image


def write_dicom_series(folder: Path, array: np.ndarray, names: Sequence[str], spacing=(0.8, 0.8, 2.5),
                       origin=(-100.0, -120.0, 50.0), modality: str = "CT", instances: Sequence[int] | None = None,
                       series_uid: str | None = None) -> list[Path]:
    """Write a (z, y, x) array as one axial DICOM series, slice k (position origin_z + k dz) as ``names[k]``.

    ``instances`` gives each slice's InstanceNumber (default 1..n in position order).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    paths = []
    for k, name in enumerate(names):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality = modality
        ds.InstanceNumber = instances[k] if instances is not None else k + 1
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(array[k], dtype=np.int16).tobytes()
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_png(path: Path, plane: np.ndarray, mode: str = "L") -> None:
    """Write a 2D array as a greyscale (``L``) or 1-bit (``1``) PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = plane.astype(bool) if mode == "1" else plane.astype(np.uint8)
    Image.fromarray(data).convert(mode).save(path)


def write_mat(path: Path, **variables: np.ndarray) -> None:
    """Write a MATLAB v5 .mat file (what MATLAB's ``save`` writes by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables)


def dicom_pixels(path: Path) -> np.ndarray:
    """The stored pixel plane of one DICOM file (to check which slice went where)."""
    return pydicom.dcmread(path).pixel_array
