"""Stored predictions: merge, atomic writes, leftovers of killed writers, the NGFF labels list.

The case is synthetic (a 4x5x6 volume written by the store's own writer): these tests are about
where labels go, so every expected voxel is known by construction.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

import tasks.predictions as predictions
from tasks.predictions import (
    PredictionInfo, list_predictions, prediction_info, prediction_name, read_prediction, store_prediction,
)
from tasks.storage_errors import StorageError
from tasks.store import write_case
from tasks.volume import Volume

GRID = (4, 5, 6)
SPACING = (2.0, 1.0, 0.5)


def make_case(store: Path | str) -> Path | str:
    mask = np.zeros(GRID, np.uint8)
    mask[1, 1:3, 1:3] = 1
    volume = Volume(np.zeros((1, *GRID), np.int16), mask, SPACING, (0.0, 0.0, 0.0), np.eye(4).tolist())
    return write_case(store, "synthetic", "c1", volume, {})


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return make_case(tmp_path / "store")


INFO = PredictionInfo(model="medsam", model_sha256="ab" * 32, protocol="cvpr-3d", spec_id="cd" * 32,
                      spec_label="cvpr-3d", step=0, labels=(), run_id="run-1")
NAME = "medsam.abababab-cvpr-3d.cdcdcdcd-s0"


def box(z: slice = slice(None), y: slice = slice(None), x: slice = slice(None)) -> np.ndarray:
    mask = np.zeros(GRID, bool)
    mask[z, y, x] = True
    return mask


def test_prediction_name_follows_the_interface():
    assert prediction_name("medsam", "ab" * 32, "cvpr-3d", "cd" * 32, 0) == NAME
    assert INFO.name == NAME


def test_store_and_read_round_trip_paints_labels_in_ascending_order(case: Path):
    one, two = box(z=slice(0, 2)), box(z=slice(1, 3))
    assert store_prediction(case, INFO, {2: two, 1: one}) == NAME
    image = read_prediction(case, NAME)
    assert image.dtype == np.uint8 and image.shape == GRID
    assert (image[0] == 1).all() and (image[1] == 2).all() and (image[2] == 2).all() and (image[3] == 0).all()
    assert prediction_info(case, NAME) == PredictionInfo(**{**INFO.__dict__, "labels": (1, 2)})
    assert list_predictions(case) == [NAME]
    assert zarr.open_group(str(case / "labels" / NAME), mode="r")["0"].chunks == (1, 5, 6)


def test_a_second_store_keeps_the_first_labels_and_a_repredicted_label_replaces_its_voxels(case: Path):
    store_prediction(case, INFO, {1: box(z=slice(0, 1)), 3: box(z=slice(3, 4))})
    store_prediction(case, INFO, {2: box(z=slice(1, 2))})  # another unit: labels 1 and 3 stay
    image = read_prediction(case, NAME)
    assert [np.unique(image[z]).tolist() for z in range(4)] == [[1], [2], [0], [3]]
    store_prediction(case, INFO, {1: box(z=slice(2, 3))})  # label 1 again: its old voxels go
    image = read_prediction(case, NAME)
    assert [np.unique(image[z]).tolist() for z in range(4)] == [[0], [2], [1], [3]]
    assert prediction_info(case, NAME).labels == (1, 2, 3)


def test_a_lower_label_does_not_paint_over_a_kept_higher_one(case: Path):
    store_prediction(case, INFO, {3: box(y=slice(0, 2))})
    store_prediction(case, INFO, {1: box(y=slice(1, 3))})
    image = read_prediction(case, NAME)
    assert (image[:, 0] == 3).all() and (image[:, 1] == 3).all() and (image[:, 2] == 1).all() and (image[:, 3:] == 0).all()


def test_labels_above_255_are_stored_as_uint16(case: Path):
    store_prediction(case, INFO, {1: box(z=slice(0, 1))})
    store_prediction(case, INFO, {300: box(z=slice(1, 2))})
    image = read_prediction(case, NAME)
    assert image.dtype == np.uint16 and (image[0] == 1).all() and (image[1] == 300).all()


def test_masks_off_the_grid_are_refused_with_the_case_named(case: Path):
    with pytest.raises(ValueError, match=r"c1: mask of label 1 has shape \(4, 5\)"):
        store_prediction(case, INFO, {1: np.ones((4, 5), bool)})
    assert list_predictions(case) == []


def staging_leftover(case: Path, name: str, complete: bool) -> Path:
    """What a writer killed before its rename leaves: a staging group under ``labels``."""
    path = case / "labels" / f".staging-{name}-0badc0de"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("0", shape=GRID, dtype=np.uint8)[...] = 7
    group.attrs["samatlas"] = {**INFO.__dict__, "labels": [7], "complete": complete}
    return path


@pytest.mark.parametrize("complete", [False, True], ids=["before-complete", "before-rename"])
def test_a_staging_leftover_is_never_trusted_and_the_next_store_removes_it(case: Path, complete: bool):
    leftover = staging_leftover(case, NAME, complete)
    assert list_predictions(case) == []
    assert read_prediction(case, leftover.name) is None and prediction_info(case, leftover.name) is None
    assert read_prediction(case, NAME) is None
    store_prediction(case, INFO, {1: box(z=slice(0, 1))})
    assert not leftover.exists()
    assert list_predictions(case) == [NAME]
    assert np.unique(read_prediction(case, NAME)).tolist() == [0, 1]  # nothing of the leftover's 7s


def test_an_incomplete_group_under_the_name_is_ignored_and_replaced(case: Path):
    group = zarr.open_group(str(case / "labels" / NAME), mode="w", zarr_format=3)
    group.create_array("0", shape=GRID, dtype=np.uint8)[...] = 5
    assert list_predictions(case) == [] and read_prediction(case, NAME) is None
    store_prediction(case, INFO, {1: box(z=slice(0, 1))})
    assert np.unique(read_prediction(case, NAME)).tolist() == [0, 1]  # not merged with the 5s


def test_the_labels_list_holds_mask_and_predictions_for_ome_zarr(case: Path):
    other = PredictionInfo(**{**INFO.__dict__, "step": 1})
    store_prediction(case, INFO, {1: box(z=slice(0, 1))})
    store_prediction(case, other, {1: box(z=slice(0, 2))})
    store_prediction(case, INFO, {2: box(z=slice(3, 4))})  # a re-store does not list the name twice
    labels_attrs = json.loads((case / "labels" / "zarr.json").read_text())["attributes"]["ome"]
    assert labels_attrs["labels"] == ["mask", NAME, other.name]
    mask_ome = json.loads((case / "labels" / "mask" / "zarr.json").read_text())["attributes"]["ome"]
    ome = json.loads((case / "labels" / NAME / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["image-label"] == mask_ome["image-label"]
    assert ome["multiscales"][0]["datasets"] == mask_ome["multiscales"][0]["datasets"]
    assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == list(SPACING)
    assert ome["multiscales"][0]["axes"] == mask_ome["multiscales"][0]["axes"]
    found = {}
    for node in Reader(parse_url(str(case)))():
        if any(isinstance(spec, Label) for spec in node.specs):
            found[Path(node.zarr.path).name] = np.asarray(node.data[0])
    assert sorted(found) == sorted(["mask", NAME, other.name])
    assert np.array_equal(found[NAME], read_prediction(case, NAME))
    assert (found[other.name][:2] == 1).all() and (found[other.name][2:] == 0).all()


def test_a_failed_local_write_is_a_storage_error_and_keeps_the_old_image(case: Path, monkeypatch):
    store_prediction(case, INFO, {1: box(z=slice(0, 1))})

    def full_disk(group, labels):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predictions, "write_label_array", full_disk)
    with pytest.raises(StorageError, match="No space left on device"):
        store_prediction(case, INFO, {2: box(z=slice(1, 2))})
    assert list_predictions(case) == [NAME]
    assert [np.unique(read_prediction(case, NAME)[z]).tolist() for z in range(2)] == [[1], [0]]
    assert not list((case / "labels").glob(".staging-*"))


def test_object_store_writes_in_place_and_a_failure_leaves_no_trusted_image(monkeypatch):
    """memory:// stands in for an object store: no rename, the group's zarr.json is the commit."""
    import fsspec

    case = make_case("memory://prediction-test")
    try:
        store_prediction(case, INFO, {1: box(z=slice(0, 1))})
        store_prediction(case, INFO, {2: box(z=slice(1, 2))})
        assert [np.unique(read_prediction(case, NAME)[z]).tolist() for z in range(3)] == [[1], [2], [0]]
        assert list_predictions(case) == [NAME]

        original = predictions.write_label_array

        def dropped_connection(group, labels):
            original(group, labels)
            raise OSError("connection reset")  # s3fs raises such errors without an errno

        monkeypatch.setattr(predictions, "write_label_array", dropped_connection)
        with pytest.raises(StorageError, match="connection reset"):
            store_prediction(case, INFO, {3: box(z=slice(2, 3))})
        monkeypatch.undo()
        assert list_predictions(case) == [] and read_prediction(case, NAME) is None
        store_prediction(case, INFO, {3: box(z=slice(2, 3))})
        assert prediction_info(case, NAME).labels == (3,)
    finally:
        fsspec.filesystem("memory").rm("/prediction-test", recursive=True)
