"""A failed write of the store (a full disk) is a storage error naming the path and free space, never
a quarantine of the source; nothing half-written stays. Synthetic LiTS-shaped cases (plumbing)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from catalog.registry import get_card
from records.cards import CaseFiles
from tasks import store
from tasks.ingest_case import ingest_case
from tasks.storage_errors import StorageError
from tasks.volume import Volume


def _full_disk_after_one_file(monkeypatch: pytest.MonkeyPatch, target, name: str) -> None:
    """Patch ``target.name`` to write one file into the staging folder, then fail as a full disk does."""
    def write(*args, **kwargs):
        group = args[0]
        staging = Path(str(group.store.root)) if hasattr(group, "store") else Path(args[0]).parent
        (staging / "partial.bin").write_bytes(b"half a chunk")
        raise OSError(errno.ENOSPC, "No space left on device", str(staging / "image" / "c" / "0"))

    monkeypatch.setattr(target, name, write)


def _lits_case(tmp_path: Path) -> CaseFiles:
    image = (np.arange(3 * 16 * 16) % 200).astype(np.int16).reshape(3, 16, 16)
    mask = np.zeros((3, 16, 16), np.uint8)
    mask[:2, 3:9, 3:9] = 1
    sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / "volume-0.nii"))
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / "segmentation-0.nii"))
    return CaseFiles("volume-0", (tmp_path / "volume-0.nii",), tmp_path / "segmentation-0.nii")


def test_full_disk_while_writing_a_case_is_a_storage_error_not_a_quarantine(tmp_path: Path, monkeypatch):
    _full_disk_after_one_file(monkeypatch, store, "_write_arrays")
    root = tmp_path / "store"
    with pytest.raises(StorageError, match=r"cannot write .*image/c/0: No space left on device \([\d,]+ bytes .* free on "):
        ingest_case(get_card("lits"), _lits_case(tmp_path), root, "run-test")
    assert not list((root / "lits").glob(".staging-*")), "the staging folder stays behind"
    assert not (root / "lits" / "volume-0").exists()


def test_full_disk_in_the_small_case_writer_leaves_nothing(tmp_path: Path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    volume = Volume(np.zeros((1, 1, 8, 8), np.uint8), np.zeros((1, 8, 8), np.uint8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), [])
    with pytest.raises(StorageError, match="No space left on device"):
        store.write_small_case(tmp_path, "busi", "case-1", volume, {})
    assert list(tmp_path.joinpath("busi").iterdir()) == []


def test_an_unreadable_source_is_still_a_quarantine(tmp_path: Path):
    case = _lits_case(tmp_path)
    case.images[0].write_bytes(b"not an image")
    row = ingest_case(get_card("lits"), case, tmp_path / "store", "run-test").case
    assert row.status == "quarantined" and "volume-0.nii" in row.reason
