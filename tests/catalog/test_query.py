"""The read-only DuckDB connection over the catalog."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from catalog.query import connect, summary_sql
from catalog.writer import read_table, write_rows


def _result(case_id: str, dice: float, anatomy: str = "lung") -> dict:
    return {
        "dataset": "d", "case_id": case_id, "slice_index": 0, "label": 1, "target": "t", "model": "m",
        "model_sha256": "x", "protocol": "p", "step": 1, "prompt": "{}", "dice": dice, "iou": dice / (2 - dice),
        "nsd": 1.0, "hd95": 0.0, "gt_area_px": 1, "pred_area_px": 1, "model_score": 1.0, "encode_s": 0.0,
        "decode_s": 0.0, "run_id": "r", "code_version": "v", "modality": "ct", "anatomy": anatomy,
    }


def test_empty_catalog_has_every_view(tmp_path: Path):
    con = connect(tmp_path)
    for table in ("datasets", "cases", "objects", "results", "runs"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_refuses_writes_and_other_files(tmp_path: Path):
    write_rows(tmp_path, "results", [_result("a", 0.5)], "d/a")
    outside = tmp_path.parent / "outside.csv"
    outside.write_text("x\n1\n")
    con = connect(tmp_path)
    for sql in (f"COPY results TO '{tmp_path.parent / 'leak.csv'}'", f"SELECT * FROM read_csv('{outside}')",
                f"ATTACH '{tmp_path.parent / 'x.db'}'", "INSTALL httpfs", "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert not (tmp_path.parent / "leak.csv").exists()


def test_rewriting_a_key_replaces_its_rows_across_partitions(tmp_path: Path):
    write_rows(tmp_path, "results", [_result("a", 0.5), _result("a", 0.7, anatomy="liver")], "d/a")
    write_rows(tmp_path, "results", [_result("b", 0.9)], "d/b")
    write_rows(tmp_path, "results", [_result("a", 0.6)], "d/a")
    table = read_table(tmp_path, "results").to_pylist()
    assert sorted((r["case_id"], r["dice"], r["anatomy"]) for r in table) == [("a", 0.6, "lung"), ("b", 0.9, "lung")]


def test_summary_groups_and_rejects_unknown_keys(tmp_path: Path):
    write_rows(tmp_path, "results", [_result("a", 0.5), _result("b", 0.9)], "d/ab")
    rows = connect(tmp_path).execute(summary_sql(("modality", "anatomy", "model"))).fetchall()
    assert rows == [("ct", "lung", "m", 2, 0.7, 0.7, pytest.approx(0.5758, abs=1e-4), pytest.approx(0.5758, abs=1e-4), 1.0, 0.0)]
    with pytest.raises(ValueError, match="cannot group by"):
        summary_sql(("modality", "dice; DROP"))
