"""Read-only DuckDB over the Parquet catalog: one view per table, no access to anything else."""

from __future__ import annotations

from pathlib import Path

import duckdb

from catalog.schema import PARTITIONED, TABLES
from catalog.writer import read_table

SUMMARY_KEYS = ("modality", "anatomy", "target", "model", "protocol", "step")


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose views read the catalog at ``root`` and which can read or write nothing else.

    External access is switched off and the configuration locked after the views are made, so COPY,
    ATTACH, INSTALL and reads of other files are refused (the catalog is safe to query with
    user-supplied SQL).
    """
    root = Path(root).resolve()
    con = duckdb.connect(":memory:")
    con.execute("SET allowed_directories=[?]", [str(root) + "/"])
    for table in TABLES:
        base = root / table
        if base.exists() and any(base.rglob("*.parquet")):
            hive = "hive_partitioning=true, hive_types={'modality': VARCHAR, 'anatomy': VARCHAR}," if table in PARTITIONED else "hive_partitioning=false,"
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{base}/**/*.parquet', {hive} union_by_name=true)"
            )
        else:
            con.register(f"_{table}_empty", read_table(root, table))
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _{table}_empty")
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")
    return con


def summary_sql(by: tuple[str, ...] = SUMMARY_KEYS) -> str:
    """SQL for n, mean and median Dice and IoU (and NSD, HD95) grouped by ``by``."""
    unknown = set(by) - set(SUMMARY_KEYS) - {"dataset", "case_id"}
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; choose from {', '.join(SUMMARY_KEYS)}")
    keys = ", ".join(by)
    return f"""
        SELECT {keys}, count(*) AS n,
               round(avg(dice), 4) AS dice_mean, round(median(dice), 4) AS dice_median,
               round(avg(iou), 4) AS iou_mean, round(median(iou), 4) AS iou_median,
               round(avg(nsd), 4) AS nsd_mean, round(median(hd95), 3) AS hd95_median
        FROM results GROUP BY {keys} ORDER BY {keys}
    """
