"""``samatlas export``: stored predictions found through the catalog, written as NIfTI per case and step.

The ``volume_steps`` rows here are synthetic, written with ``tables.insert_missing``: the evaluate
side that stores predictions and commits these rows is being built separately, and the export only
needs rows that name label images. The cases are synthetic too (a RAS NIfTI pair ingested by
to_volume and write_case into the test's store), so every exported voxel is known.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from catalog import tables
from records.rows import CaseRow, DatasetRow, VolumeStepRow
from tasks.predictions import PredictionInfo, store_prediction
from tasks.store import write_case, write_small_case
from tasks.volume import check_label_values, to_volume
from tests.conftest import run_samatlas
from tests.synthetic_rows import case_row

SHA = "5e" * 32
SPEC = "a1" * 32


def source_pair(tmp_path: Path, case_id: str) -> tuple[sitk.Image, sitk.Image]:
    """A RAS image and label (labels 1 and 2 on known voxels), written as NIfTI and read back."""
    values = np.zeros((5, 6, 7), np.uint8)
    values[1:3, 2:4, 1:5] = 1
    values[3, :, :] = 2
    for name, array in (("image", values.astype(np.int16) * 10), ("label", values)):
        item = sitk.GetImageFromArray(array)
        item.SetSpacing((0.7, 0.9, 3.0))
        item.SetOrigin((-20.0, 35.0, 7.5))
        item.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
        sitk.WriteImage(item, str(tmp_path / f"{case_id}_{name}.nii.gz"))
    return tuple(sitk.ReadImage(str(tmp_path / f"{case_id}_{n}.nii.gz")) for n in ("image", "label"))


def step_row(case_id: str, label: int, step: int, prediction: str | None, protocol: str = "cvpr-3d") -> VolumeStepRow:
    return VolumeStepRow(
        dataset="synthetic-vol", case_id=case_id, label=label, model="medsam", model_sha256=SHA, protocol=protocol,
        spec_id=SPEC, step=step, visited=[2], encoder_calls=1, decoder_calls=1, gt_mm3=1.0, pred_mm3=1.0,
        seconds=0.1, prediction=prediction, run_id="r", modality="ct", anatomy="chest",
    )


def dataset_row(dataset: str, dimensionality: int) -> DatasetRow:
    return DatasetRow(dataset=dataset, name=dataset, dimensionality=dimensionality, targets=["t"], license="-",
                      citation="-", access="public", modality="ct", anatomy="chest")


@pytest.fixture
def catalog_with_predictions(data_root: Path, tmp_path: Path) -> dict[str, sitk.Image]:
    """Two synthetic cases; steps 0 and 1 of medsam/cvpr-3d stored for both labels (step 1 of a
    case: the GT itself, step 0: label 1 only), and a step row of another protocol that stored none."""
    catalog = data_root / "catalog"
    sources = {}
    steps = []
    for case_id in ("c1", "c2"):
        image, label = source_pair(tmp_path, case_id)
        volume = to_volume([image], label)
        volume.mask = check_label_values(volume.mask, {1: 1, 2: 2}, tmp_path / f"{case_id}_label.nii.gz")
        path = write_case(data_root / "store", "synthetic-vol", case_id, volume, {})
        tables.insert_missing(catalog, [dataclasses.replace(case_row(case_id, dataset="synthetic-vol"), zarr_path=str(path))],
                              CaseRow)
        for step, labels in ((0, (1,)), (1, (1, 2))):
            info = PredictionInfo(model="medsam", model_sha256=SHA, protocol="cvpr-3d", spec_id=SPEC,
                                  spec_label="cvpr-3d", step=step, labels=labels, run_id="r")
            name = store_prediction(path, info, {v: volume.mask == v for v in labels})
            steps += [step_row(case_id, v, step, name) for v in labels]
        steps.append(step_row(case_id, 1, 0, None, protocol="other-3d"))
        sources[case_id] = label
    tables.insert_missing(catalog, steps, VolumeStepRow)
    tables.insert_missing(catalog, [dataset_row("synthetic-vol", 3)], DatasetRow)
    return sources


def export(root: Path, outdir: Path, *options: str, dataset: str = "synthetic-vol", protocol: str = "cvpr-3d"):
    return run_samatlas(root, "export", "--dataset", dataset, "--model", "medsam", "--protocol", protocol, *options, outdir)


def test_final_step_is_exported_per_case_on_the_source_grid(data_root: Path, tmp_path: Path, catalog_with_predictions):
    outdir = tmp_path / "out"
    done = export(data_root, outdir)
    assert done.exit_code == 0, done.output
    name = "medsam.5e5e5e5e-cvpr-3d.a1a1a1a1-s1"
    assert sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*.nii.gz")) == [f"c1/{name}.nii.gz", f"c2/{name}.nii.gz"]
    assert f"wrote 2 label images of 2 cases to {outdir}" in done.output
    assert done.stdout.split() == [str(outdir / "c1" / f"{name}.nii.gz"), str(outdir / "c2" / f"{name}.nii.gz")]
    for case_id, source in catalog_with_predictions.items():
        written = sitk.ReadImage(str(outdir / case_id / f"{name}.nii.gz"))
        assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))
        np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), source.GetDirection())
        np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), rtol=1e-6)


def test_step_choices(data_root: Path, tmp_path: Path, catalog_with_predictions):
    first = export(data_root, tmp_path / "first", "--step", "first")
    assert first.exit_code == 0, first.output
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "first" / "c1" / "medsam.5e5e5e5e-cvpr-3d.a1a1a1a1-s0.nii.gz")))
    assert np.array_equal(written, np.where(sitk.GetArrayFromImage(catalog_with_predictions["c1"]) == 1, 1, 0))
    every = export(data_root, tmp_path / "all", "--step", "all")
    assert every.exit_code == 0, every.output
    assert len(list((tmp_path / "all").rglob("*.nii.gz"))) == 4
    one = export(data_root, tmp_path / "one", "--step", "0")
    assert one.exit_code == 0 and sorted(p.name for p in (tmp_path / "one").rglob("*.nii.gz")) == [
        "medsam.5e5e5e5e-cvpr-3d.a1a1a1a1-s0.nii.gz"] * 2
    missing = export(data_root, tmp_path / "none", "--step", "7")
    assert missing.exit_code == 2 and "no stored step 7" in missing.output and "stored steps: 0, 1" in missing.output
    bad = export(data_root, tmp_path / "bad", "--step", "last")
    assert bad.exit_code == 2 and "--step takes final, first, all or a step number, not 'last'" in bad.output
    assert not (tmp_path / "none").exists() and not (tmp_path / "bad").exists()


def test_nothing_stored_names_what_is_stored(data_root: Path, tmp_path: Path, catalog_with_predictions):
    done = export(data_root, tmp_path / "out", protocol="other-3d")
    assert done.exit_code == 2
    assert "no stored predictions of model 'medsam' under protocol 'other-3d' on 'synthetic-vol'" in done.output
    assert "stored: --model medsam --protocol cvpr-3d" in done.output


def test_unknown_dataset_is_refused(data_root: Path, tmp_path: Path, catalog_with_predictions):
    done = export(data_root, tmp_path / "out", dataset="no-such-dataset")
    assert done.exit_code == 2 and "unknown dataset 'no-such-dataset'" in done.output
    assert "ingested: synthetic-vol" in done.output


def test_a_2d_dataset_is_refused(data_root: Path, tmp_path: Path):
    volume = to_volume([sitk.GetImageFromArray(np.zeros((4, 5), np.uint8))], sitk.GetImageFromArray(np.ones((4, 5), np.uint8)))
    path = write_small_case(data_root / "store", "synthetic-2d", "p1", volume, {})
    catalog = data_root / "catalog"
    tables.insert_missing(catalog, [dataclasses.replace(case_row("p1", dataset="synthetic-2d"), zarr_path=str(path))],
                          type(case_row("x")))
    tables.insert_missing(catalog, [dataset_row("synthetic-2d", 2)], DatasetRow)
    done = export(data_root, tmp_path / "out", dataset="synthetic-2d")
    assert done.exit_code == 2 and "dataset 'synthetic-2d' is 2D" in done.output


def test_a_label_image_missing_from_the_store_is_reported_and_the_rest_exported(data_root: Path, tmp_path: Path,
                                                                                 catalog_with_predictions):
    name = "medsam.5e5e5e5e-cvpr-3d.a1a1a1a1-s1"
    shutil.rmtree(data_root / "store" / "synthetic-vol" / "c1" / "labels" / name)
    done = export(data_root, tmp_path / "out")
    assert done.exit_code == 1
    assert f"not exported c1/{name}" in done.output and f"no complete label image '{name}'" in done.output
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.nii.gz")] == [f"c2/{name}.nii.gz"]
    assert "wrote 1 label images of 1 cases" in done.output
