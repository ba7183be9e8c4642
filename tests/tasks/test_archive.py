"""Safe extraction: escaping members, absolute paths, links and bombs are refused whole."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tasks.archive import UnsafeArchive, extract


def _tar(path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _nothing_written(tmp_path: Path, dest: Path) -> None:
    assert not dest.exists()
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob(".staging-*"))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_member_escaping_the_target_is_refused_by_name(tmp_path: Path, kind: str):
    members = {"release/ok.txt": b"fine", "../escape": b"owned"}
    archive = _tar(tmp_path / "a.tar.gz", members) if kind == "tar" else _zip(tmp_path / "a.zip", members)
    dest = tmp_path / "out" / "release"
    with pytest.raises(UnsafeArchive, match=r"'\.\./escape' escapes the target folder"):
        extract(archive, dest)
    _nothing_written(tmp_path, dest)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_absolute_member_is_refused(tmp_path: Path, kind: str):
    members = {"/tmp/escape": b"owned"}
    archive = _tar(tmp_path / "a.tar.gz", members) if kind == "tar" else _zip(tmp_path / "a.zip", members)
    with pytest.raises(UnsafeArchive, match="absolute path"):
        extract(archive, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_symlink_member_is_refused(tmp_path: Path):
    archive = _tar(tmp_path / "a.tar.gz", {"data/x.nii": b"x"}, link=("data/passwd", "/etc/passwd"))
    with pytest.raises(UnsafeArchive, match="'data/passwd' is a link"):
        extract(archive, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_zip_symlink_member_is_refused(tmp_path: Path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="is a link"):
        extract(archive, tmp_path / "out")


def test_bomb_is_refused(tmp_path: Path):
    archive = _zip(tmp_path / "bomb.zip", {"zeros.raw": bytes(50_000_000)})
    with pytest.raises(UnsafeArchive, match="refusing an archive this size"):
        extract(archive, tmp_path / "out")


def test_truncated_archive_names_the_file(tmp_path: Path):
    archive = _tar(tmp_path / "a.tar.gz", {"release/big.raw": bytes(range(256)) * 4000})
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"a\.tar\.gz: cannot read the archive .*truncated"):
        extract(archive, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_junk_is_skipped_and_patterns_select_members(tmp_path: Path):
    archive = _zip(tmp_path / "a.zip", {"r/img.nii": b"1", "r/._img.nii": b"fork", "__MACOSX/r/x": b"", "r/notes.txt": b"2"})
    out = extract(archive, tmp_path / "out", patterns=["*.nii"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["r/img.nii"]
