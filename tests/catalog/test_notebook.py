"""``from samatlas import Catalog``: the read-only views as DuckDB relations, Arrow and pandas.

Rows are synthetic (tests/synthetic_rows.py): these tests check the plumbing and the sandbox.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from catalog import tables
from catalog.query import QueryLimits, QueryRefused
from records.rows import ResultRow
from records.specs import ProtocolSpec
from samatlas import Catalog
from tests.synthetic_rows import result_row

SPEC = ProtocolSpec("p", {})
DICE = [0.2, 0.5, 0.6, 0.9]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    tables.insert_missing(tmp_path, [result_row("a", z, SPEC, dice=d) for z, d in enumerate(DICE)], ResultRow)
    return tmp_path


def test_sql_table_summary_and_df_read_the_same_rows(root: Path):
    cat = Catalog(root)
    rel = cat.sql("SELECT slice_index, dice FROM results ORDER BY slice_index")
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert [d for _, d in rel.fetchall()] == DICE
    results = cat.table("results")
    assert isinstance(results, pa.Table) and results.schema == ResultRow.SCHEMA and results.num_rows == len(DICE)
    (row,) = cat.summary(by="model,protocol").fetchall()
    summary = dict(zip(cat.summary(by=("model", "protocol")).columns, row))
    assert summary["n"] == len(DICE) and summary["dice_mean"] == pytest.approx(statistics.mean(DICE), abs=1e-4)
    assert summary["dice_median"] == pytest.approx(statistics.median(DICE), abs=1e-4)
    frame = cat.df("SELECT dice FROM results")
    assert sorted(frame["dice"]) == DICE


def test_each_call_sees_the_latest_commit(root: Path):
    cat = Catalog(root)
    before = cat.arrow("SELECT count(*) AS n FROM results")["n"][0].as_py()
    tables.insert_missing(root, [result_row("b", 0, SPEC)], ResultRow)
    assert cat.arrow("SELECT count(*) AS n FROM results")["n"][0].as_py() == before + 1


def test_default_root_is_the_data_roots_catalog(data_root: Path):
    catalog = data_root / "catalog"
    tables.insert_missing(catalog, [result_row("a", 0, SPEC)], ResultRow)
    assert Catalog().root == catalog
    assert Catalog().table("results").num_rows == 1


@pytest.mark.parametrize("sql", [
    "DELETE FROM results",
    "COPY results TO 'out.csv'",
    "SELECT 1; SELECT 2",
    "ATTACH 'other.db'",
])
def test_only_one_select_is_accepted(root: Path, sql: str):
    with pytest.raises(QueryRefused):
        Catalog(root).sql(sql)
    with pytest.raises(QueryRefused):
        Catalog(root).arrow(sql)


def test_relations_cannot_write_or_read_outside_the_catalog(root: Path, tmp_path_factory: pytest.TempPathFactory):
    cat = Catalog(root)
    out = tmp_path_factory.mktemp("out") / "results.csv"
    with pytest.raises(duckdb.PermissionException):
        cat.sql("SELECT * FROM results").write_csv(str(out))
    assert not out.exists()
    data_file = tables.data_files(root, "results")[0]
    before = Path(data_file).read_bytes()
    with pytest.raises(duckdb.PermissionException):
        cat.sql("SELECT * FROM results").write_parquet(data_file)
    assert Path(data_file).read_bytes() == before
    with pytest.raises(QueryRefused, match="disabled|Permission"):
        cat.arrow(f"SELECT * FROM read_csv('{Path(__file__)}')")
    with pytest.raises(ValueError, match="unknown table"):
        cat.table("results; DROP TABLE results")


def test_fetching_at_once_keeps_the_time_limit(root: Path):
    cat = Catalog(root, QueryLimits(timeout_s=1))
    with pytest.raises(QueryRefused, match="longer than 1 s"):
        cat.arrow("SELECT count(*) FROM range(1000000000) a, range(1000000000) b")
