"""NIfTI export of label images on the source file's grid: a real case against its source NRRD, and
synthetic non-LPS cases (RAS NIfTI, permuted oblique) whose geometry and voxels are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import zarr
from scipy.spatial.transform import Rotation

from catalog.query import connect
from tasks.export import ExportError, export_label_image
from tasks.predictions import PredictionInfo, store_prediction
from tasks.store import write_case, write_small_case
from tasks.volume import check_label_values, to_volume


def assert_same_image(written: sitk.Image, source: sitk.Image) -> None:
    assert written.GetSize() == source.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))


@pytest.mark.parametrize("case_id", ["brain1", "lung1"])  # brain1's NRRD is LAS, lung1's LPS
def test_mask_export_of_a_sample_case_matches_its_source_label(ingested_samples: Path, tmp_path: Path, case_id: str):
    zarr_path = connect(ingested_samples / "catalog").execute(
        "SELECT zarr_path FROM cases WHERE dataset = 'sample-radiomics' AND case_id = ?", [case_id]).fetchone()[0]
    source = ingested_samples / "cache" / "sample-radiomics" / "release" / "pyradiomics-3.0.1" / "data" / f"{case_id}_label.nrrd"
    out = export_label_image(zarr_path, "mask", tmp_path / case_id / "mask.nii.gz")
    assert out == tmp_path / case_id / "mask.nii.gz"
    assert [p.name for p in out.parent.iterdir()] == ["mask.nii.gz"]  # no partial file left
    label = sitk.ReadImage(str(source))
    assert sitk.GetArrayFromImage(label).any()
    assert_same_image(sitk.ReadImage(str(out)), label)


def synthetic_source(direction: np.ndarray, size=(7, 6, 5)) -> tuple[sitk.Image, sitk.Image]:
    """An image and a label (distinct values on every voxel, so any flip or swap shows) with
    ``direction``, a non-unit spacing and an origin off zero."""
    values = np.arange(np.prod(size), dtype=np.int16).reshape(size[::-1])
    image = sitk.GetImageFromArray(values)
    label = sitk.GetImageFromArray((values % 5).astype(np.uint8))
    for item in (image, label):
        item.SetSpacing((0.8, 1.3, 2.5))
        item.SetOrigin((12.5, -40.0, 101.25))
        item.SetDirection([float(v) for v in direction.ravel()])
    return image, label


RAS = np.diag([-1.0, -1.0, 1.0])  # a NIfTI's usual RAS+ array axes, in ITK's LPS world
OBLIQUE = Rotation.from_euler("xyz", [8, -5, 12], degrees=True).as_matrix() @ np.array(
    [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # axes permuted (AIL), then tilted by a few degrees


def ingest_synthetic(tmp_path: Path, direction: np.ndarray) -> tuple[Path, sitk.Image, object]:
    """A synthetic NIfTI pair written by SimpleITK, ingested as the ingest does: read back, to_volume
    (reoriented to LPS), write_case into a private store."""
    image, label = synthetic_source(direction)
    sitk.WriteImage(image, str(tmp_path / "image.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "label.nii.gz"))
    source = sitk.ReadImage(str(tmp_path / "label.nii.gz"))
    volume = to_volume([sitk.ReadImage(str(tmp_path / "image.nii.gz"))], source)
    volume.mask = check_label_values(volume.mask, {1: 1, 2: 2, 3: 3, 4: 4}, tmp_path / "label.nii.gz")
    return write_case(tmp_path / "store", "synthetic", "c1", volume, {}), source, volume


@pytest.mark.parametrize("direction", [RAS, OBLIQUE], ids=["ras", "oblique-ail"])
def test_mask_export_of_a_synthetic_non_lps_case_matches_its_source(tmp_path: Path, direction: np.ndarray):
    case, source, volume = ingest_synthetic(tmp_path, direction)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(source.GetDirection()) != "LPS"
    assert not np.allclose(volume.origin, source.GetOrigin())  # the store holds the reoriented grid
    out = export_label_image(case, "mask", tmp_path / "out" / "mask.nii.gz")
    assert_same_image(sitk.ReadImage(str(out)), source)


def test_a_stored_prediction_exports_on_the_source_grid(tmp_path: Path):
    case, source, volume = ingest_synthetic(tmp_path, OBLIQUE)
    info = PredictionInfo(model="m", model_sha256="0" * 64, protocol="p", spec_id="1" * 64, spec_label="p",
                          step=2, labels=(), run_id="r")
    name = store_prediction(case, info, {v: volume.mask == v for v in (1, 2, 3, 4)})
    out = export_label_image(case, name, tmp_path / "out" / f"{name}.nii.gz")
    assert_same_image(sitk.ReadImage(str(out)), source)


def test_a_missing_prediction_is_refused_naming_the_case(tmp_path: Path):
    case, _, _ = ingest_synthetic(tmp_path, RAS)
    with pytest.raises(ExportError, match=r"c1: no complete label image 'm.00000000-p.11111111-s0'"):
        export_label_image(case, "m.00000000-p.11111111-s0", tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_2d_case_is_refused(tmp_path: Path):
    image = sitk.GetImageFromArray(np.arange(20, dtype=np.uint8).reshape(4, 5))
    label = sitk.GetImageFromArray((np.arange(20).reshape(4, 5) > 10).astype(np.uint8))
    volume = to_volume([image], label)
    case = write_small_case(tmp_path / "store", "planar", "p1", volume, {})
    with pytest.raises(ExportError, match=r"p1: a 2D case"):
        export_label_image(case, "mask", tmp_path / "p1.nii.gz")


def test_a_geometry_that_does_not_come_back_is_an_error_naming_the_case(tmp_path: Path):
    case, _, _ = ingest_synthetic(tmp_path, RAS)
    group = zarr.open_group(str(case), mode="r+")
    meta = dict(group.attrs["samatlas"])
    meta["original_affine"] = [[*row[:3], row[3] + 5.0] for row in meta["original_affine"][:3]] + [meta["original_affine"][3]]
    group.attrs["samatlas"] = meta  # an origin 5 mm off what the stored grid gives back
    with pytest.raises(ExportError, match=r"c1: exported 'mask' has affine"):
        export_label_image(case, "mask", tmp_path / "out" / "mask.nii.gz")
    assert not list((tmp_path / "out").iterdir())
