"""Settings that reach the catalog: local store and catalog roots are absolute, URLs stay as given."""

from __future__ import annotations

from pathlib import Path

from tasks.settings import Settings


def test_local_roots_are_absolute_so_recorded_case_paths_do_not_depend_on_the_folder(tmp_path, monkeypatch):
    """Ingest records each case's path under the store root; with a relative ``SAMATLAS_DATA_ROOT`` a
    relative path would resolve against whatever folder a later evaluate runs in."""
    monkeypatch.chdir(tmp_path)
    relative = Settings(data_root=Path("data"))
    assert relative.store_root == tmp_path / "data" / "store"
    assert relative.catalog_root == tmp_path / "data" / "catalog"
    given = Settings(store="elsewhere/store", catalog="file://elsewhere/catalog")
    assert given.store_root == tmp_path / "elsewhere" / "store"
    assert given.catalog_root == tmp_path / "elsewhere" / "catalog"
    remote = Settings(store="s3://bucket/store/", catalog="s3://bucket/catalog")
    assert (remote.store_root, remote.catalog_root) == ("s3://bucket/store", "s3://bucket/catalog")
