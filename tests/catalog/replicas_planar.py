"""Writers of tiny synthetic replicas of the planar (2D) releases: their names, folders and encodings.

The pixels are synthetic (shapes and ramps, not anatomy): the replicas test layouts and plumbing,
not segmentation quality. Sizes are small and not square, so a transposed axis would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

SHAPE = (20, 28)  # (y, x)


def ramp(shape: tuple[int, int] = SHAPE, rgb: bool = False) -> np.ndarray:
    """A uint8 picture whose value grows along x and y (RGB: three different ramps)."""
    y, x = np.indices(shape)
    grey = (4 * y + 3 * x + 10).astype(np.uint8)
    return np.stack([grey, 255 - grey, (grey // 2) + 60], axis=-1) if rgb else grey


def rect(shape: tuple[int, int], ys: slice, xs: slice, value: int = 255, into: np.ndarray | None = None) -> np.ndarray:
    """A uint8 mask with ``value`` in one rectangle (painted into ``into`` when given)."""
    mask = np.zeros(shape, np.uint8) if into is None else into
    mask[ys, xs] = value
    return mask


def save(path: Path, pixels: np.ndarray, **options: object) -> Path:
    """Write ``pixels`` with Pillow in the format the suffix names (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return path


def save_palette_gif(path: Path, mask: np.ndarray) -> Path:
    """A 0/255 mask as a palette GIF, as DRIVE and SCR ship them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).convert("P").save(path)
    return path


def junk(folder: Path, beside: str) -> None:
    """The files archives bring along: the macOS resource fork of ``beside`` and a Finder file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"._{beside}").write_bytes(b"\x00\x05\x16\x07junk")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def write_itk(path: Path, array: np.ndarray, spacing: tuple[float, ...], origin: tuple[float, ...] | None = None) -> Path:
    """Write an array as an ITK file (MetaImage, NIfTI: by suffix) with the given spacing (x, y[, z])."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if origin is not None:
        image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def write_dicom_radiograph(path: Path, pixels: np.ndarray, sop_uid: str, spacing: tuple[float, float]) -> Path:
    """One 8-bit MONOCHROME2 radiograph DICOM with PixelSpacing (row, column) and the given SOP UID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "CR", "synthetic"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [f"{spacing[0]:.3f}", f"{spacing[1]:.3f}"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def encode_rle(mask: np.ndarray) -> str:
    """SIIM's run-length encoding of a 0/1 mask: column-major, each start relative to the last run's end."""
    flat = np.concatenate([[0], mask.flatten(order="F").astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return "-1"
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {n}" for g, n in zip(gaps, ends - starts))


def write_jsrt_img(path: Path, raw: np.ndarray) -> Path:
    """A headerless JSRT ``.IMG``: 2048 x 2048 big-endian uint16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.astype(">u2").tofile(path)
    return path
