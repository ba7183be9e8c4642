"""A full disk under the store: a storage error (path, free space), no quarantine, no staging left, the
run recorded with its summary printed, and a re-run after space is freed completes the rest.

The store is a real 1 MiB tmpfs (mounting needs root; elsewhere the test skips and
tests/tasks/test_storage_errors.py covers the same with a patched writer). Synthetic LiTS-shaped
cases of incompressible noise, so that only a few fit (plumbing, not quality).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from catalog.query import connect

CASES = 12
SHAPE = (8, 64, 64)  # 64 KiB of int16 noise per case: about a dozen fill 1 MiB


@pytest.fixture
def small_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mount = tmp_path / "store"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    monkeypatch.setenv("SAMATLAS_STORE", str(mount))
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _release(root: Path) -> Path:
    folder = root / "Training Batch 1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(CASES):
        mask = np.zeros(SHAPE, np.uint8)
        mask[2:4, 10:30, 10:30] = 1
        sitk.WriteImage(sitk.GetImageFromArray(rng.integers(-1000, 1000, SHAPE, dtype=np.int16)), str(folder / f"volume-{n}.nii"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / f"segmentation-{n}.nii"))
    return root


def test_full_store_is_a_storage_error_and_a_rerun_completes(cli, data_root: Path, tmp_path: Path, small_store: Path):
    release = _release(tmp_path / "lits")
    done = cli("ingest", "lits", "--source", release)
    assert done.exit_code == 1, done.output
    assert "storage error:" in done.output and "No space left on device" in done.output
    assert str(small_store) in done.output and "bytes" in done.output and "free on" in done.output
    assert "quarantined " not in done.output.replace("0 quarantined", "")
    assert "lits:" in done.output and "ingested" in done.output  # the summary is printed
    assert "Traceback" not in done.output
    assert not list(small_store.rglob(".staging-*"))
    catalog = connect(data_root / "catalog")
    assert catalog.execute("SELECT count(*) FROM runs WHERE flow = 'ingest' AND counts LIKE '%No space left%'").fetchone()[0] == 1
    assert catalog.execute("SELECT count(*) FROM cases WHERE status <> 'ok'").fetchone()[0] == 0
    first = catalog.execute("SELECT count(*) FROM cases").fetchone()[0]
    assert first < CASES

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_store)], check=True)
    again = cli("ingest", "lits", "--source", release)
    assert again.exit_code == 0, again.output
    assert f"lits: {CASES - first} ingested, {first} unchanged, 0 quarantined" in again.output
