"""Releases passed as archives through the CLI: unsafe ones refused, a truncated part skipped by name.

The replicas are synthetic LiTS-shaped NIfTI volumes (layout and plumbing, not quality).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from replicas_a import box, ramp, write_volume
from replicas_b import zip_folder

from catalog.query import connect

SHAPE = (3, 16, 16)


def _batch(folder: Path, number: int) -> Path:
    write_volume(folder / f"volume-{number}.nii", ramp(SHAPE), spacing=(0.7, 0.7, 2.0))
    write_volume(folder / f"segmentation-{number}.nii", box(SHAPE, slice(0, 2), slice(3, 9), slice(3, 9)), spacing=(0.7, 0.7, 2.0))
    return folder


def test_release_in_parts_with_a_truncated_part(cli, data_root: Path, tmp_path: Path):
    parts = tmp_path / "downloads"
    parts.mkdir()
    zip_folder(_batch(tmp_path / "Training Batch 1", 0), parts / "Training_Batch1.zip")
    broken = zip_folder(_batch(tmp_path / "Training Batch 2", 28), parts / "Training_Batch2.zip")
    broken.write_bytes(broken.read_bytes()[:200])

    done = cli("ingest", "lits", "--source", parts)
    assert done.exit_code == 0, done.output
    assert "lits: 1 ingested, 0 unchanged, 1 quarantined" in done.output
    assert "Training_Batch2.zip" in done.output and "truncated" in done.output
    cases = connect(data_root / "catalog").execute("SELECT case_id, status FROM cases").fetchall()
    assert cases == [("volume-0", "ok")]


def test_malicious_archive_is_refused_and_nothing_escapes(cli, data_root: Path, tmp_path: Path):
    archive = tmp_path / "release.tar.gz"
    payload = _batch(tmp_path / "batch", 0) / "volume-0.nii"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, "release/volume-0.nii")
        tar.add(payload, "../escape.nii")
    done = cli("ingest", "lits", "--source", archive)
    assert done.exit_code == 1
    assert "lits: not ingested" in done.output and "'../escape.nii' escapes the target folder" in done.output
    assert "Traceback" not in done.output
    assert not list(tmp_path.rglob("escape.nii")) and not list(data_root.rglob("escape.nii"))
    assert not (data_root / "store" / "lits").exists()
