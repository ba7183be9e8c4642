"""Checks of an image file from its header, before its pixels cost memory.

A header can claim any size: an 83-byte NRRD that says 800x800x800 made ITK allocate 512 MB before
failing, a NIfTI cut short was zero-filled, and a half-truncated or corrupt ``.nii.gz`` read as "ok"
with its missing half zero-filled (ITK's gzip reader does not report a short stream or a failed CRC).
So before a case's pixels are read, every file's header is read alone
(``sitk.ImageFileReader.ReadImageInformation``) and checked:

* the voxels it declares, summed over the case, against ``Settings.max_case_voxels``;
* for formats whose pixels lie uncompressed after the header (NIfTI ``.nii``, raw NRRD, raw
  MetaImage), the file holds at least the bytes its header declares;
* for gzip/zlib-compressed pixels (``.nii.gz``, gzip NRRD, compressed MetaImage), one bounded
  streaming decompression: the stream must end properly with a good CRC, and decompress to at least
  the declared bytes and not far beyond them (a bomb is stopped at the bound, never held in memory).

ITK's NIfTI reader also turns NaN into 0 (an all-NaN image read as zeros and scored Dice 0.80), so
for float NIfTI the same pass over the file's own bytes counts NaN and infinite values.

Other formats (PNG, JPEG, DICOM, ...) compress inside their own container and get the voxel cap only.
The NRRD and MetaImage header fields read here are the few that say where the pixels are and how
they are encoded (ITK does not expose them); everything else comes from ITK.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# zlib-ng's drop-in zlib: the same streams, checks and errors, decompressed in half the time of the
# standard library's zlib (0.19 against 0.38 s for two 512x512x100 gzip CTs with their labels), and
# this check decompresses every gzip file once more than ITK's read does.
from zlib_ng import zlib_ng as zlib

from tasks.volume import CaseError

CHUNK = 1 << 20
SLACK = 64 << 20  # headers, NIfTI extensions: bytes a stream may hold beyond its pixels


@dataclass(frozen=True)
class Header:
    """What an image file's header declares: its voxels (components included) and their bytes."""

    path: Path
    size: tuple[int, ...]
    voxels: int
    payload: int


def _component_bytes(pixel_id: int) -> int:
    text = sitk.GetPixelIDValueAsString(pixel_id)
    bits = int(re.search(r"(\d+)-bit", text).group(1))
    return bits // 8 * (2 if "complex" in text else 1)


def read_header(path: Path) -> Header:
    """The header of ``path`` (no pixels read); a CaseError names the file if it cannot be parsed."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if Path(path).name.lower().endswith(".gz"):  # say why: a small stream's CRC fails already here
            _check_stream(Header(Path(path), (), 0, 0), Path(path), 0, 16 + zlib.MAX_WBITS, limit=None)
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise CaseError(f"{path}: cannot be read ({first})") from exc
    size = tuple(int(s) for s in reader.GetSize())
    voxels = math.prod(size) * reader.GetNumberOfComponents()
    return Header(Path(path), size, voxels, voxels * _component_bytes(reader.GetPixelID()))


def _text_header(path: Path, end: bytes) -> tuple[dict[str, str], int]:
    """Key/value lines of a text header (NRRD ``key: value``, MetaImage ``Key = Value``) and its length."""
    with open(path, "rb") as f:
        head = f.read(CHUNK)
    fields: dict[str, str] = {}
    offset = 0
    for line in head.split(b"\n"):
        offset += len(line) + 1
        text = line.decode("latin-1").strip()
        if end == b"" and text == "":  # NRRD: a blank line ends the header
            break
        key, sep, value = text.partition(":" if end == b"" else "=")
        if sep:
            fields[key.strip().lower()] = value.strip()
        if end and text.lower().startswith(end.decode().lower()):  # MetaImage: ElementDataFile is last
            break
    return fields, offset


class _NiftiFinite:
    """Counts NaN and infinite pixels of a float NIfTI from its bytes as they stream past."""

    def __init__(self, path: Path, payload: int):
        self.path, self.payload = path, payload
        self.seen = 0  # bytes of the file seen so far
        self.head = b""
        self.dtype: np.dtype | None = None
        self.offset = -1
        self.carry = b""
        self.nan = self.inf = 0

    def _layout(self) -> None:
        little = struct.unpack("<i", self.head[:4])[0] in (348, 540)
        e = "<" if little else ">"
        if struct.unpack(e + "i", self.head[:4])[0] == 348:
            datatype, offset = struct.unpack(e + "h", self.head[70:72])[0], int(struct.unpack(e + "f", self.head[108:112])[0])
        else:
            datatype, offset = struct.unpack(e + "h", self.head[12:14])[0], struct.unpack(e + "q", self.head[168:176])[0]
        kind = {16: "f4", 64: "f8"}.get(datatype)
        self.dtype, self.offset = (np.dtype(e + kind) if kind else None), offset

    def feed(self, data: bytes) -> None:
        start = self.seen
        self.seen += len(data)
        if self.offset < 0:
            self.head += data[: max(0, 544 - len(self.head))]
            if len(self.head) < 544 and self.seen < 544:
                return
            self._layout()
        if self.dtype is None:
            return
        lo, hi = max(self.offset - start, 0), min(self.offset + self.payload - start, len(data))
        if hi <= lo:
            return
        block = self.carry + data[lo:hi]
        whole = len(block) - len(block) % self.dtype.itemsize
        values = np.frombuffer(block[:whole], self.dtype)
        self.carry = block[whole:]
        nan = np.isnan(values)
        self.nan += int(nan.sum())
        self.inf += int((~nan & ~np.isfinite(values)).sum())

    def check(self) -> None:
        if self.nan or self.inf:
            raise CaseError(
                f"{self.path}: holds {self.nan:,} NaN and {self.inf:,} infinite values "
                f"(of {self.payload // self.dtype.itemsize:,}); refusing an image with no finite value there"
            )


def _check_raw(header: Header, data: Path, available: int) -> None:
    if available < header.payload:
        raise CaseError(
            f"{header.path}: truncated: {data.name} holds {available:,} bytes of pixels, its header "
            f"declares {header.size} = {header.payload:,} bytes"
        )


def _check_stream(header: Header, data: Path, offset: int, wbits: int, limit: int | None = -1) -> None:
    """Decompress ``data`` from ``offset`` in chunks, never beyond the declared bytes plus slack.

    ``limit=None`` checks only that the stream is whole and intact (for a file whose header ITK
    could not read), keeping no more than a chunk in memory.
    """
    unbounded = limit is None
    limit = (1 << 62) if unbounded else header.payload + SLACK
    total = 0
    finite = _NiftiFinite(header.path, header.payload) if ".nii" in data.name.lower() and not unbounded else None
    decompressor = zlib.decompressobj(wbits)
    try:
        with open(data, "rb") as f:
            f.seek(offset)
            while not decompressor.eof:
                packed = f.read(CHUNK)
                if not packed:
                    raise CaseError(f"{header.path}: truncated: the compressed stream ends early (after {total:,} bytes)")
                out = decompressor.decompress(packed, limit - total + 1)
                while True:
                    total += len(out)
                    if finite:
                        finite.feed(out)
                    if not decompressor.unconsumed_tail or total > limit:
                        break
                    out = decompressor.decompress(decompressor.unconsumed_tail, limit - total + 1)
                if total > limit:
                    raise CaseError(f"{header.path}: decompresses to more than the {header.payload:,} bytes its header declares")
    except zlib.error as exc:
        raise CaseError(f"{header.path}: corrupt compressed data ({exc})") from exc
    if not unbounded and total < header.payload:
        raise CaseError(
            f"{header.path}: truncated: decompresses to {total:,} bytes, its header declares "
            f"{header.size} = {header.payload:,} bytes of pixels"
        )
    if finite:
        finite.check()


def check_payload(header: Header) -> None:
    """Raise CaseError if the file cannot hold the pixels its header declares (see the module doc)."""
    path, name = header.path, header.path.name.lower()
    if name.endswith(".nii"):
        _check_raw(header, path, path.stat().st_size)
        finite = _NiftiFinite(path, header.payload)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                finite.feed(chunk)
        finite.check()
    elif name.endswith(".gz") and not name.endswith((".nrrd.gz", ".mha.gz")):
        _check_stream(header, path, 0, 16 + zlib.MAX_WBITS)  # gzip: zlib checks the CRC and length
    elif name.endswith((".nrrd", ".nhdr")):
        fields, offset = _text_header(path, b"")
        data = path.parent / fields["data file"] if "data file" in fields else path
        offset = 0 if data != path else offset
        encoding = fields.get("encoding", "raw").lower()
        if encoding == "raw":
            _check_raw(header, data, data.stat().st_size - offset if data.exists() else 0)
        elif encoding in ("gz", "gzip"):
            _check_stream(header, data, offset, 32 + zlib.MAX_WBITS)
    elif name.endswith((".mha", ".mhd")):
        fields, offset = _text_header(path, b"ElementDataFile")
        where = fields.get("elementdatafile", "LOCAL")
        if where.upper() != "LOCAL" and ("%" in where or " " in where or where.upper() == "LIST"):
            return  # a file list or pattern of slices: ITK checks each slice's length itself
        data = path if where.upper() == "LOCAL" else path.parent / where
        offset = offset if data == path else 0
        if fields.get("compresseddata", "false").lower() == "true":
            _check_stream(header, data, offset, 32 + zlib.MAX_WBITS)
        else:
            _check_raw(header, data, data.stat().st_size - offset if data.exists() else 0)


def check_voxels(headers: list[Header], max_voxels: int) -> None:
    """Raise CaseError if the files of a case together declare more than ``max_voxels`` voxels.

    The cap applies to the case (all channels and the label together) because that is what is held
    in memory at once.
    """
    total = sum(h.voxels for h in headers)
    if total > max_voxels:
        sizes = ", ".join(f"{h.path.name} {h.size}" for h in headers)
        raise CaseError(
            f"{headers[0].path}: declares {total:,} voxels ({sizes}), over the cap of "
            f"{max_voxels:,} per case (SAMATLAS_MAX_CASE_VOXELS)"
        )
