"""SIIM-ACR pneumothorax: DICOM radiographs whose masks are run-length rows in a shared CSV.

The competition's run lengths are *relative* and *column-major*: each pair is (gap since the end of
the previous run, run length) over the image flattened in Fortran order; ``-1`` means no
pneumothorax. An image may have several rows (one per region); they are OR-ed. The discover function
hands a case its rows in ``extra["rle"]`` (one row per line), so the CSV is read once per ingest.
The PNG mirror of the release has decoded masks and is read as plain pictures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from records.cards import CaseFiles
from tasks.formats.planar import label_like, read_binary
from tasks.readers import Read, read_sitk
from tasks.volume import CaseError

EMPTY = "-1"


def decode_rle(rows: list[str], shape: tuple[int, int], source: Path) -> np.ndarray:
    """OR the masks of relative, column-major run-length ``rows`` into one ``(y, x)`` 0/1 mask.

    ``source`` is the image the rows belong to, named in errors.
    """
    height, width = shape
    flat = np.zeros(width * height, np.uint8)
    for row in rows:
        row = row.strip()
        if not row or row == EMPTY:
            continue
        try:
            numbers = [int(v) for v in row.split()]
        except ValueError as exc:
            raise CaseError(f"{source}: its run-length row is not integers ({row[:40]}...)") from exc
        if len(numbers) % 2:
            raise CaseError(f"{source}: its run-length row has an odd count of numbers ({len(numbers)})")
        position = 0
        for gap, length in zip(numbers[0::2], numbers[1::2]):
            position += gap
            if gap < 0 or length < 0 or position + length > flat.size:
                raise CaseError(f"{source}: its run-length run at {position}+{length} leaves the {width}x{height} image")
            flat[position:position + length] = 1
            position += length
    return flat.reshape(width, height).T  # column-major: the flat index runs down columns first


def read_dicom_2d(path: Path) -> sitk.Image:
    """A single-frame DICOM radiograph as a 2D ITK image with the file's pixel spacing."""
    image = read_sitk(path)
    if image.GetDimension() == 3:
        if image.GetSize()[2] != 1:
            raise CaseError(f"{path}: {image.GetSize()[2]} frames where one radiograph was expected")
        image = image[:, :, 0]
    return image


def read_siim(case: CaseFiles) -> Read:
    """A DICOM with its run-length rows (subset ``dicom``), or a PNG mirror image and mask."""
    if case.subset != "dicom":
        return read_binary(case)
    image = read_dicom_2d(case.images[0])
    width, height = image.GetSize()
    mask = decode_rle(case.extra.get("rle", "").splitlines(), (height, width), case.images[0])
    return [image], label_like(mask, image)
