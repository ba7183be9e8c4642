"""``volume_objects`` rows at ingest: written for the 3D sample, none for a 2D dataset, and filled in
from the stored masks for a catalog that lacks them (no source file read)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog import tables
from catalog.query import connect
from catalog.registry import get_card
from records.rows import VolumeObjectRow
from tasks.ingest_case import ingest_case

VOLUME_COLUMNS = ", ".join(VolumeObjectRow.SCHEMA.names)


def volume_rows(root: Path) -> list[tuple]:
    return connect(root / "catalog").execute(f"SELECT {VOLUME_COLUMNS} FROM volume_objects ORDER BY case_id, label").fetchall()


def test_the_3d_sample_has_one_volume_object_per_case_and_label_matching_its_objects(ingested_samples: Path):
    con = connect(ingested_samples / "catalog")
    per_label = con.execute(
        "SELECT case_id, label, sum(area_px), min(slice_index), max(slice_index), count(*),"
        " min(bbox[1]), min(bbox[2]), max(bbox[3]), max(bbox[4]) FROM objects GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    volumes = con.execute(
        "SELECT case_id, label, voxels, first_slice, last_slice, slices, bbox, key_slice, components, volume_mm3,"
        " target, subset, modality, anatomy FROM volume_objects ORDER BY 1, 2"
    ).fetchall()
    assert [v[:2] for v in volumes] == [o[:2] for o in per_label]
    assert {v[0] for v in volumes} == {"brain1", "brain2", "breast1", "lung1", "lung2"}
    for (case, label, area, first, last, n_slices, y0, x0, y1, x1), v in zip(per_label, volumes):
        assert v[2:6] == (area, first, last, n_slices)
        assert v[6] == [first, y0, x0, last, y1, x1]
        areas = dict(con.execute(
            "SELECT slice_index, area_px FROM objects WHERE case_id = ? AND label = ? ORDER BY 1", [case, label]).fetchall())
        z_indices = np.repeat(list(areas), list(areas.values()))  # the z of every voxel, in z order
        assert v[7] == z_indices[len(z_indices) // 2]
        assert v[8] >= 1
    lung2 = next(v for v in volumes if v[0] == "lung2")
    assert lung2[2] == 24644 and (lung2[3], lung2[4]) == (15, 25)
    assert lung2[10:] == ("lung-tumour", "chest-ct", "ct", "lung")
    spacing = con.execute("SELECT spacing FROM cases WHERE case_id = 'lung2'").fetchone()[0]
    assert lung2[9] == pytest.approx(24644 * np.prod(spacing))


def test_a_2d_case_gets_no_volume_objects(tmp_path: Path):
    """Plumbing on a synthetic two-file QaTa-COV19 v2 release (no 2D sample data exists)."""
    top = tmp_path / "release" / "QaTa-COV19-v2" / "Train Set"
    (top / "Images").mkdir(parents=True)
    (top / "Ground-truths").mkdir()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(top / "Images" / "covid_1.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[3:7, 4:10] = 255
    Image.fromarray(mask).save(top / "Ground-truths" / "mask_covid_1.png")
    card = get_card("qata_cov19")
    [case] = card.discover(tmp_path / "release")
    outcome = ingest_case(card, case, tmp_path / "store", "run-1")
    assert outcome.ok and [o.area_px for o in outcome.objects] == [24]
    assert outcome.volume_objects == ()


@pytest.fixture
def old_catalog(ingested_samples: Path, data_root: Path) -> Path:
    """A private copy of the ingested sample (catalog, store and unpacked release) whose catalog has
    no ``volume_objects`` table, as one written before it existed."""
    for part in ("catalog", "store", "cache/sample-radiomics"):
        shutil.copytree(ingested_samples / part, data_root / part, symlinks=True)
    shutil.rmtree(data_root / "catalog" / "volume_objects")
    return data_root


def test_unchanged_cases_get_missing_volume_objects_from_the_store_and_quarantined_ones_lose_theirs(
    ingested_samples: Path, old_catalog: Path, monkeypatch: pytest.MonkeyPatch,
):
    from flows.ingest import ingest
    from tasks import ingest_batch

    card = get_card("sample-radiomics")
    read = []
    monkeypatch.setattr(card, "reader", lambda case: read.append(case.case_id) or 1 / 0)
    backfilled = []
    stored = ingest_batch.stored_volume_objects
    monkeypatch.setattr(ingest_batch, "stored_volume_objects",
                        lambda card, row, store: backfilled.append(row.case_id) or stored(card, row, store))
    expected = volume_rows(ingested_samples)
    assert len(expected) == 5 and volume_rows(old_catalog) == []

    [report] = ingest(["sample-radiomics"])
    assert sorted(report.skipped) == sorted(backfilled) == ["brain1", "brain2", "breast1", "lung1", "lung2"]
    assert read == [] and report.ingested == [] and report.volumes_backfilled == 5
    assert volume_rows(old_catalog) == expected

    backfilled.clear()  # a case that lost its rows gets them back; the others' masks are not read
    tables.replace(old_catalog / "catalog", [], VolumeObjectRow, {"dataset": ["sample-radiomics"], "case_id": ["lung1"]})
    [report] = ingest(["sample-radiomics"])
    assert backfilled == ["lung1"] and read == [] and report.volumes_backfilled == 1
    assert volume_rows(old_catalog) == expected

    # A changed source is re-read (the reader fails, so the case is quarantined) and loses its rows.
    image = old_catalog / "cache" / "sample-radiomics" / "release" / "pyradiomics-3.0.1" / "data" / "brain2_image.nrrd"
    image.write_bytes(image.read_bytes()[:1000])
    [report] = ingest(["sample-radiomics"])
    assert read == ["brain2"] and list(report.quarantined) == ["brain2"] and report.volumes_backfilled == 0
    assert volume_rows(old_catalog) == [row for row in expected if row[1] != "brain2"]
