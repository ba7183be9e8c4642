"""Hostile or broken images are quarantined with the problem named, before their pixels cost memory.

Synthetic files (plumbing, not quality): small NIfTI/NRRD/MetaImage volumes written by SimpleITK,
then cut, corrupted or given lying headers, ingested as LiTS cases (labels 1 liver, 2 tumour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from catalog.registry import get_card
from records.cards import CaseFiles
from tasks.ingest_case import ingest_case
from tasks.settings import get_settings

SHAPE = (8, 32, 32)


def _write(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _case(tmp_path: Path, image: Path, label: Path | None = None) -> dict:
    if label is None:
        label = _write(tmp_path / "segmentation-0.nii", np.zeros(SHAPE, np.uint8))
    case = CaseFiles("volume-0", (image,), label)
    return ingest_case(get_card("lits"), case, tmp_path / "store", "run-test").case


def _image() -> np.ndarray:
    return (np.arange(np.prod(SHAPE)) % 300 - 100).astype(np.int16).reshape(SHAPE)


def _quarantined(row: dict, *words: str) -> None:
    assert row.status == "quarantined", row
    for word in words:
        assert word in row.reason, row.reason


def test_a_clean_case_still_ingests(tmp_path: Path):
    label = np.zeros(SHAPE, np.float32)
    label[2:4, 5:9, 5:9] = 1.0  # integral floats are fine labels
    row = _case(tmp_path, _write(tmp_path / "volume-0.nii.gz", _image()), _write(tmp_path / "segmentation-0.nii", label))
    assert row.status == "ok", row.reason
    assert row.n_objects == 2


def test_half_truncated_nii_gz_is_quarantined_not_zero_filled(tmp_path: Path):
    path = _write(tmp_path / "volume-0.nii.gz", _image())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _quarantined(_case(tmp_path, path), "volume-0.nii.gz", "truncated")


@pytest.mark.parametrize("shape", [SHAPE, (64, 64, 64)])  # small: ITK's header read meets the CRC; large: only the pixels
def test_nii_gz_with_a_failed_crc_is_quarantined(tmp_path: Path, shape):
    image = (np.arange(np.prod(shape)) % 300).astype(np.int16).reshape(shape)
    label = _write(tmp_path / "segmentation-0.nii", np.zeros(shape, np.uint8))
    path = _write(tmp_path / "volume-0.nii.gz", image)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the gzip trailer's CRC32
    path.write_bytes(bytes(data))
    _quarantined(_case(tmp_path, path, label), "volume-0.nii.gz", "corrupt", "check")


def test_truncated_uncompressed_nifti_is_quarantined(tmp_path: Path):
    path = _write(tmp_path / "volume-0.nii", _image())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    _quarantined(_case(tmp_path, path), "volume-0.nii", "truncated", "declares")


def test_nrrd_whose_header_claims_more_than_the_file_is_refused_from_its_header(tmp_path: Path, monkeypatch):
    path = tmp_path / "volume-0.nrrd"
    path.write_bytes(b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 32 32 8\nendian: little\nencoding: raw\n\nxx")
    reads = []
    monkeypatch.setattr(sitk, "ReadImage", lambda *a, **k: reads.append(a) or pytest.fail("pixels were read"))
    _quarantined(_case(tmp_path, path), "volume-0.nrrd", "truncated", "16,384 bytes")
    assert not reads


def test_truncated_metaimage_is_quarantined(tmp_path: Path):
    path = _write(tmp_path / "volume-0.mha", _image())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    _quarantined(_case(tmp_path, path), "volume-0.mha", "truncated")


def test_case_over_the_voxel_cap_is_refused_before_any_pixel_is_read(tmp_path: Path, monkeypatch):
    image = _write(tmp_path / "volume-0.nii", _image())
    monkeypatch.setenv("SAMATLAS_MAX_CASE_VOXELS", str(np.prod(SHAPE)))  # image fits, image + label does not
    get_settings.cache_clear()
    monkeypatch.setattr(sitk, "ReadImage", lambda *a, **k: pytest.fail("pixels were read"))
    try:
        _quarantined(_case(tmp_path, image), "volume-0.nii", "16,384 voxels", "SAMATLAS_MAX_CASE_VOXELS")
    finally:
        get_settings.cache_clear()


def test_default_cap_refuses_a_tiny_file_claiming_800_cubed(tmp_path: Path):
    path = tmp_path / "volume-0.nrrd"
    path.write_bytes(b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 800 800 800\nencoding: raw\n\nxx")
    _quarantined(_case(tmp_path, path), "volume-0.nrrd", "(800, 800, 800)", "over the cap")


@pytest.mark.parametrize("name", ["volume-0.nii.gz", "volume-0.nii", "volume-0.nrrd", "volume-0.mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_image_is_quarantined(tmp_path: Path, bad: float, name: str):
    image = _image().astype(np.float32)
    image[3, :4, :4] = bad  # ITK reads NIfTI NaN as 0: only a look at the file's bytes sees them
    row = _case(tmp_path, _write(tmp_path / name, image))
    _quarantined(row, name, "16 NaN" if np.isnan(bad) else "16 infinite")


def test_all_nan_image_is_quarantined(tmp_path: Path):
    row = _case(tmp_path, _write(tmp_path / "volume-0.nii.gz", np.full(SHAPE, np.nan, np.float32)))
    _quarantined(row, "volume-0.nii.gz", f"{np.prod(SHAPE):,} NaN")


@pytest.mark.parametrize(("dtype", "value", "words"), [
    (np.uint32, 65537, ("65537", "not in the card's map")),  # a uint16 cast would store 1
    (np.float32, 1.7, ("1.7", "not integers")),  # a cast stores 1
    (np.int16, -1, ("-1", "negative")),  # a uint8 cast reports 255
    (np.int32, 258, ("258", "not in the card's map")),  # a uint8 cast stores 2
])
def test_label_values_are_checked_in_their_original_dtype(tmp_path: Path, dtype, value, words):
    label = np.zeros(SHAPE, dtype)
    label[2:4, 5:9, 5:9] = value
    row = _case(tmp_path, _write(tmp_path / "volume-0.nii", _image()), _write(tmp_path / "segmentation-0.nii", label))
    _quarantined(row, "segmentation-0.nii", *words)
    assert not (tmp_path / "store" / "lits" / "volume-0").exists()
