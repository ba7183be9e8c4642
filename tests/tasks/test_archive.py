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


def _padded_bomb_tar(path: Path, zeros: int, padding: int) -> Path:
    """A tar.gz of ``zeros`` zero bytes diluted by ``padding`` random bytes (a lower ratio, same bomb)."""
    import os

    with tarfile.open(path, "w:gz") as tar:
        for name, size, data in (("pad.bin", padding, lambda n: os.urandom(n)), ("zeros.raw", zeros, bytes)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BufferedReader(_Stream(size, data)))
    return path


class _Stream(io.RawIOBase):
    """``size`` bytes made by ``data(n)`` in pieces, so a test bomb is never held in memory."""

    def __init__(self, size, data):
        self.left, self.data = size, data

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left, 1 << 20)
        buffer[:n] = self.data(n)
        self.left -= n
        return n


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_bomb_padded_with_random_bytes_is_refused(tmp_path: Path, kind: str):
    import os

    zeros, padding = 200_000_000, 1_000_000  # ratio about 170: under the old limit of 1000
    if kind == "tar":
        archive = _padded_bomb_tar(tmp_path / "bomb.tar.gz", zeros, padding)
    else:
        archive = tmp_path / "bomb.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("pad.bin", os.urandom(padding))
            with zf.open("zeros.raw", "w", force_zip64=True) as member:
                for _ in range(zeros // 1_000_000):
                    member.write(bytes(1_000_000))
    with pytest.raises(UnsafeArchive, match=r"expands to 201,000,000 bytes .*ratio"):
        extract(archive, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_member_over_the_size_cap_is_refused(tmp_path: Path, kind: str, monkeypatch):
    from tasks.settings import get_settings

    members = {"small.txt": b"x" * 100, "big.raw": b"y" * 5000}
    archive = _tar(tmp_path / "a.tar.gz", members) if kind == "tar" else _zip(tmp_path / "a.zip", members)
    monkeypatch.setenv("SAMATLAS_MAX_MEMBER_BYTES", "4096")
    get_settings.cache_clear()
    try:
        with pytest.raises(UnsafeArchive, match=r"member 'big.raw' expands to 5,000 bytes.*SAMATLAS_MAX_MEMBER_BYTES"):
            extract(archive, tmp_path / "out")
        monkeypatch.setenv("SAMATLAS_MAX_MEMBER_BYTES", "8192")
        monkeypatch.setenv("SAMATLAS_MAX_ARCHIVE_BYTES", "5000")
        get_settings.cache_clear()
        with pytest.raises(UnsafeArchive, match=r"expands to 5,100 bytes.*SAMATLAS_MAX_ARCHIVE_BYTES"):
            extract(archive, tmp_path / "out")
    finally:
        get_settings.cache_clear()
    _nothing_written(tmp_path, tmp_path / "out")


def test_archive_larger_than_the_free_space_is_refused(tmp_path: Path, monkeypatch):
    import shutil
    from collections import namedtuple

    archive = _zip(tmp_path / "a.zip", {"data.raw": b"z" * 10_000})
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(UnsafeArchive, match=r"expands to 10,000 bytes but .* has 4,096 bytes free"):
        extract(archive, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")
