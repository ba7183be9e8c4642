"""The catalog's Delta tables, the DuckDB views over them and the read-only user query sandbox.

Rows are synthetic (tests/synthetic_rows.py): these tests check storage and SQL plumbing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from catalog import tables
from catalog.query import QueryLimits, QueryRefused, connect, summary_sql, user_query
from records.rows import ResultRow, to_table
from records.specs import ProtocolSpec
from tests.synthetic_rows import result_row

SPEC = ProtocolSpec("p", {})


def checksums(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (what must not change after a refused query)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_empty_catalog_has_every_view(tmp_path: Path):
    con = connect(tmp_path)
    for table in ("datasets", "cases", "objects", "results", "runs"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_typed_rows_refuse_misspelt_missing_or_mistyped_columns():
    row = result_row("a", 0, SPEC)
    with pytest.raises(TypeError):
        ResultRow(**{**{f: getattr(row, f) for f in ResultRow.SCHEMA.names}, "dcie": 0.5})
    fields = {f: getattr(row, f) for f in ResultRow.SCHEMA.names}
    del fields["dice"]
    with pytest.raises(TypeError):
        ResultRow(**fields)
    import dataclasses

    with pytest.raises(Exception):  # a text Dice cannot become a float64 column
        to_table([dataclasses.replace(row, dice="high")], ResultRow)


def test_insert_missing_adds_each_key_once(tmp_path: Path):
    """A retried batch, a batch repeating a key within itself and an overlapping batch add nothing twice;
    an existing row is never overwritten."""
    first = [result_row("a", z, SPEC, dice=0.5) for z in range(3)]
    assert tables.insert_missing(tmp_path, first, ResultRow) == 3
    assert tables.insert_missing(tmp_path, first, ResultRow) == 0
    again = [result_row("a", 2, SPEC, dice=0.9), result_row("a", 3, SPEC, dice=0.9), result_row("a", 3, SPEC, dice=0.8)]
    assert tables.insert_missing(tmp_path, again, ResultRow) == 1
    rows = sorted((r["slice_index"], r["dice"]) for r in tables.read(tmp_path, "results").to_pylist())
    assert rows == [(0, 0.5), (1, 0.5), (2, 0.5), (3, 0.9)]


def test_replace_makes_the_batch_the_rows_of_its_scope(tmp_path: Path):
    from records.rows import ObjectRow
    from tests.synthetic_rows import object_row

    scope = {"dataset": ["d"], "case_id": ["a"]}
    tables.replace(tmp_path, [object_row("a", z) for z in range(4)] + [object_row("b", 0)], ObjectRow,
                   {"dataset": ["d"], "case_id": ["a", "b"]})
    tables.replace(tmp_path, [object_row("a", 1), object_row("a", 7)], ObjectRow, scope)
    rows = sorted((r["case_id"], r["slice_index"]) for r in tables.read(tmp_path, "objects").to_pylist())
    assert rows == [("a", 1), ("a", 7), ("b", 0)]


def test_compaction_keeps_the_rows_and_leaves_few_files(tmp_path: Path):
    for z in range(12):
        tables.insert_missing(tmp_path, [result_row("a", z, SPEC, label=i, anatomy=a) for i, a in enumerate(("lung", "liver"))], ResultRow)
    before = connect(tmp_path).execute("SELECT * FROM results ORDER BY ALL").fetchall()
    (done,) = tables.compact(tmp_path, ["results"])
    assert done.files_before == 24 and done.files_after == 2 and done.removed_files >= 24
    assert connect(tmp_path).execute("SELECT * FROM results ORDER BY ALL").fetchall() == before
    (again,) = tables.compact(tmp_path, ["results"])
    assert again.files_before == again.files_after == 2  # idempotent


def test_summary_groups_and_rejects_unknown_keys(tmp_path: Path):
    tables.insert_missing(tmp_path, [result_row("a", 0, SPEC, dice=0.5), result_row("b", 0, SPEC, dice=0.9)], ResultRow)
    rows = connect(tmp_path).execute(summary_sql(("modality", "anatomy", "model", "spec_id"))).fetchall()
    assert rows == [("ct", "lung", "m", SPEC.id, 2, 0.7, 0.7, 0.7, 0.7, 0.7, 1.0)]
    with pytest.raises(ValueError, match="cannot group by"):
        summary_sql(("modality", "dice; DROP"))


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    tables.insert_missing(root, [result_row("a", z, SPEC) for z in range(3)], ResultRow)
    return root


def test_user_query_reads(catalog: Path):
    columns, rows = user_query(catalog, "SELECT count(*) AS n, avg(dice) AS d FROM results")
    assert columns == ["n", "d"] and rows == [(3, 0.5)]


@pytest.mark.parametrize("sql", [
    "COPY (SELECT * REPLACE (1.0 AS dice) FROM results) TO '{part}/forged.parquet' (FORMAT parquet)",
    "COPY (SELECT * FROM results WHERE false) TO '{first}' (FORMAT parquet)",
    "ATTACH '{root}/x.db' AS x",
    "EXPORT DATABASE '{root}/exp'",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "INSERT INTO results SELECT * FROM results",
    "SELECT 1; COPY (SELECT 1) TO '{root}/two.csv'",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "PRAGMA memory_limit='100GB'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('{root}/results/_delta_log/00000000000000000000.json')",
])
def test_user_query_cannot_write_or_read_outside_the_data_files(catalog: Path, sql: str, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DuckDB's default spill folder would be ./.tmp
    first = tables.data_files(catalog, "results")[0]
    before = checksums(catalog)
    with pytest.raises(QueryRefused) as refused:
        user_query(catalog, sql.format(root=catalog, part=Path(first).parent, first=first))
    assert "\n" not in str(refused.value)
    assert checksums(catalog) == before
    assert not (tmp_path / ".tmp").exists()


def test_user_queries_leave_no_spill_folder(catalog: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where sandbox's spill folders go
    for _ in range(3):
        user_query(catalog, "SELECT count(*) FROM results")
    assert not list(tmp_path.glob("samatlas-query-*"))


def test_user_query_time_and_memory_limits(catalog: Path):
    with pytest.raises(QueryRefused, match="longer than 1 s"):
        user_query(catalog, "SELECT count(*) FROM range(1000000000) a, range(1000000000) b", QueryLimits(timeout_s=1))
    with pytest.raises(QueryRefused, match="memory"):
        user_query(catalog, "SELECT list(range) FROM range(200000000)", QueryLimits(memory="64MB", timeout_s=30))


def test_a_stray_file_in_the_catalog_folder_is_not_read(catalog: Path):
    """Only files the Delta log lists are data: a forged Parquet file beside them changes nothing."""
    import pyarrow.parquet as pq

    first = Path(tables.data_files(catalog, "results")[0])
    forged = to_table([result_row("z", 0, SPEC, dice=1.0)], ResultRow).drop_columns(["modality", "anatomy"])
    pq.write_table(forged, first.parent / "forged.parquet")
    assert user_query(catalog, "SELECT count(*), max(dice) FROM results")[1] == [(3, 0.5)]
