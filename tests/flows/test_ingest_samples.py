"""Ingest of the real sample data through the CLI: store layout, catalog rows, quarantine and re-runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from catalog.query import connect


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


@pytest.fixture
def radiomics_copy(cli, tmp_path: Path) -> Path:
    """A writable copy of the pyradiomics release (fetched once into the shared cache)."""
    assert cli("fetch", "sample-radiomics").exit_code == 0
    from tasks.settings import get_settings

    release = get_settings().cache_root / "sample-radiomics" / "release"
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    return copy


def test_truncated_file_is_quarantined_and_a_fixed_rerun_ingests_only_it(cli, data_root: Path, radiomics_copy: Path):
    image = radiomics_copy / "pyradiomics-3.0.1" / "data" / "brain2_image.nrrd"
    original = image.read_bytes()
    image.write_bytes(original[: len(original) // 2])

    first = cli("ingest", "sample-radiomics", "--source", radiomics_copy)
    assert first.exit_code == 0, first.output
    assert "4 ingested" in first.output and "1 quarantined" in first.output
    assert "brain2_image.nrrd" in first.output
    status = dict(query(data_root, "SELECT case_id, status FROM cases"))
    assert status == {"brain1": "ok", "brain2": "quarantined", "breast1": "ok", "lung1": "ok", "lung2": "ok"}
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'brain2'")[0][0]
    assert "brain2_image.nrrd" in reason
    assert not (data_root / "store" / "sample-radiomics" / "brain2").exists()
    assert not list((data_root / "store" / "sample-radiomics").glob(".staging-*"))
    objects_before = query(data_root, "SELECT count(*) FROM objects")[0][0]

    image.write_bytes(original)
    second = cli("ingest", "sample-radiomics", "--source", radiomics_copy)
    assert "1 ingested, 4 unchanged, 0 quarantined" in second.output, second.output
    assert query(data_root, "SELECT count(*) FROM cases WHERE status = 'ok'")[0][0] == 5
    assert query(data_root, "SELECT count(*) FROM cases")[0][0] == 5
    brain2_objects = query(data_root, "SELECT count(*) FROM objects WHERE case_id = 'brain2'")[0][0]
    assert brain2_objects == 3  # lesion on slices 8-10
    assert query(data_root, "SELECT count(*) FROM objects")[0][0] == objects_before + brain2_objects


def test_store_layout_geometry_and_objects(cli, data_root: Path, radiomics_copy: Path):
    assert cli("ingest", "sample-radiomics", "--source", radiomics_copy).exit_code == 0
    case = zarr.open_group(str(data_root / "store" / "sample-radiomics" / "lung2"), mode="r")
    image, mask = case["image"], case["labels/mask/0"]
    assert image.shape == (1, 61, 512, 512) and image.chunks == (1, 1, 512, 512)
    assert mask.shape == (61, 512, 512) and mask.dtype == np.uint8
    meta = case.attrs["samatlas"]
    assert meta["complete"] is True and meta["orientation"] == "LPS"
    assert meta["spacing"][0] == pytest.approx(5.0) and meta["spacing"][1] == pytest.approx(meta["spacing"][2])
    assert meta["label_map"] == {"1": "lung-tumour"}
    assert len(meta["source_sha256"]) == 2 and meta["window"] == [[-1350.0, 150.0]]
    # OME-Zarr readers see the image with physical scale and its label image.
    nodes = list(Reader(parse_url(str(data_root / "store" / "sample-radiomics" / "lung2")))())
    assert nodes[0].metadata["axes"][1]["name"] == "z"
    assert nodes[0].metadata["coordinateTransformations"][0][0]["scale"][1] == pytest.approx(5.0)
    assert any("mask" in str(n.zarr) for n in nodes[1:])

    rows = query(data_root, "SELECT slice_index, target, modality, anatomy, area_px FROM objects WHERE case_id = 'lung2' ORDER BY 1")
    assert [r[0] for r in rows] == list(range(15, 26))
    assert {r[1:4] for r in rows} == {("lung-tumour", "ct", "lung")}
    assert sum(r[4] for r in rows) == int((mask[:] == 1).sum()) == 24644
    assert (data_root / "catalog" / "objects" / "modality=ct" / "anatomy=lung").is_dir()
