"""DuckDB over the catalog: one view per table, for samatlas's own queries and, sandboxed, for users.

The views read each Delta table's current data files with ``read_parquet`` (partition columns from
the hive-style paths). :func:`connect` is the connection samatlas's own code uses. :func:`user_query`
runs SQL a user typed, read-only by construction:

* DuckDB's own parser splits the text (``extract_statements``); exactly one statement of type SELECT
  is accepted, so COPY, EXPORT, ATTACH, CREATE, INSERT, SET, PRAGMA, INSTALL, LOAD and a second
  statement never reach the engine;
* the connection may read only the tables' data files (``allowed_paths``, no directories), external
  access is then switched off and the configuration locked;
* spills go to a private temporary folder outside the catalog and the working directory;
* a memory limit and a time limit (settings) end a runaway query with a one-line message.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from catalog.tables import scan
from records.rows import ROW_TYPES
from tasks.locations import Location, as_location, is_remote

SUMMARY_KEYS = ("modality", "anatomy", "target", "model", "protocol", "spec_id", "spec_label", "step")
GROUPABLE = (*SUMMARY_KEYS, "dataset", "case_id", "scope")


class QueryRefused(ValueError):
    """A user query that is not a single read statement, or that hit a limit; the message is one line."""


def _views(con: duckdb.DuckDBPyConnection, root: Location, names: Iterable[str] = tuple(ROW_TYPES)) -> list[str]:
    """Create one view per table of ``names``; return every local data file the views read."""
    root = as_location(root)
    root = root if is_remote(root) else Path(root).resolve()
    return [file for name in names for file in scan(con, root, name)]


def connect(root: Location, tables: Iterable[str] = tuple(ROW_TYPES)) -> duckdb.DuckDBPyConnection:
    """A connection with the views ``datasets cases objects results instances runs`` over the catalog at
    ``root`` (or only ``tables``: each view opens its Delta table's log, a round trip per table on S3)."""
    con = duckdb.connect(":memory:")
    _views(con, root, tables)
    return con


@dataclass(frozen=True)
class QueryLimits:
    """What one user query may use."""

    timeout_s: float = 60.0
    memory: str = "4GB"
    threads: int = 2


def sandbox(root: Location, limits: QueryLimits = QueryLimits()) -> duckdb.DuckDBPyConnection:
    """A connection that can read the catalog's data files and nothing else, and write nothing."""
    con = duckdb.connect(":memory:", config={"threads": limits.threads})
    spill = tempfile.mkdtemp(prefix="samatlas-query-")
    weakref.finalize(con, shutil.rmtree, spill, ignore_errors=True)  # gone with the connection (or at exit)
    con.execute("SET temp_directory = ?", [spill])
    con.execute(f"SET memory_limit = '{limits.memory}'")
    con.execute("SET max_temp_directory_size = '1GB'")
    files = _views(con, root)  # an object store's tables are Arrow scans: no path is allowed at all
    con.execute("SET allowed_paths = ?", [files])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(sql: str) -> str:
    """The single SELECT statement in ``sql``; anything else is refused with the reason."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"cannot parse the query: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(f"give exactly one statement (found {len(statements)})")
    (statement,) = statements
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryRefused(f"only SELECT queries are allowed here (found {statement.type.name})")
    return statement.query


@contextmanager
def limited(con: duckdb.DuckDBPyConnection, limits: QueryLimits) -> Iterator[None]:
    """Run the block under ``limits.timeout_s`` (the connection is interrupted then); DuckDB's errors
    become one-line QueryRefused."""
    timer = threading.Timer(limits.timeout_s, con.interrupt)
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise QueryRefused(f"the query ran longer than {limits.timeout_s:g} s (SAMATLAS_QUERY_TIMEOUT_S) and was stopped") from None
    except duckdb.OutOfMemoryException:
        raise QueryRefused(f"the query needed more than {limits.memory} of memory (SAMATLAS_QUERY_MEMORY) and was stopped") from None
    except duckdb.Error as exc:
        raise QueryRefused(str(exc).strip().splitlines()[0]) from None
    finally:
        timer.cancel()


def user_query(root: Location, sql: str, limits: QueryLimits = QueryLimits()) -> tuple[list[str], list[tuple]]:
    """Run a user's read-only query; return (column names, rows). Errors are one-line QueryRefused."""
    text = check_read_only(sql)
    con = sandbox(root, limits)
    try:
        with limited(con, limits):
            cursor = con.execute(text)
            return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def user_arrow(root: Location, sql: str, limits: QueryLimits = QueryLimits()) -> pa.Table:
    """Run a user's read-only query as :func:`user_query` does; return an Arrow table."""
    text = check_read_only(sql)
    con = sandbox(root, limits)
    try:
        with limited(con, limits):
            return con.sql(text).to_arrow_table()
    finally:
        con.close()


def summary_sql(by: tuple[str, ...] = SUMMARY_KEYS) -> str:
    """SQL for n, mean and median Dice and IoU (and NSD, HD95) grouped by ``by``."""
    unknown = set(by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; choose from {', '.join(GROUPABLE)}")
    keys = ", ".join(by)
    return f"""
        SELECT {keys}, count(*) AS n,
               round(avg(dice), 4) AS dice_mean, round(median(dice), 4) AS dice_median,
               round(avg(iou), 4) AS iou_mean, round(median(iou), 4) AS iou_median,
               round(avg(nsd), 4) AS nsd_mean, round(median(hd95), 3) AS hd95_median
        FROM results GROUP BY {keys} ORDER BY {keys}
    """


INSTANCE_SUMMARY_SQL = """
    SELECT dataset, model, protocol, spec_label, step, count(*) AS images,
           round(avg(msa), 4) AS msa, round(avg(sa50), 4) AS sa50, round(avg(sa75), 4) AS sa75,
           sum(n_gt)::BIGINT AS gt_instances, sum(n_pred)::BIGINT AS pred_instances
    FROM instances GROUP BY ALL ORDER BY ALL
"""
"""micro-sam's dataset scores: mSA, SA50 and SA75 as plain means over the images (slices) of a dataset."""


CVPR_CASES_SQL = """
    WITH per_case AS (
        SELECT dataset, case_id, model, protocol, spec_id, spec_label, step,
               count(*) AS labels, avg(dice) AS dsc, avg(nsd) AS nsd_ungated
        FROM results WHERE scope = 'volume' GROUP BY ALL
    ), gated AS (
        SELECT *, CASE WHEN dsc > 0.2 THEN nsd_ungated ELSE 0.0 END AS nsd FROM per_case
    )
    SELECT dataset, case_id, model, protocol, spec_label, any_value(labels) AS labels, max(step) AS steps,
           round(arg_min(dsc, step), 4) AS dsc_first, round(arg_min(nsd, step), 4) AS nsd_first,
           round(arg_max(dsc, step), 4) AS dsc_final, round(arg_max(nsd, step), 4) AS nsd_final,
           round(CASE WHEN max(step) >= 6 THEN sum(dsc * CASE WHEN step IN (2, 6) THEN 0.5 WHEN step BETWEEN 3 AND 5 THEN 1.0 ELSE 0.0 END) END, 4) AS dsc_auc,
           round(CASE WHEN max(step) >= 6 THEN sum(nsd * CASE WHEN step IN (2, 6) THEN 0.5 WHEN step BETWEEN 3 AND 5 THEN 1.0 ELSE 0.0 END) END, 4) AS nsd_auc
    FROM gated GROUP BY dataset, case_id, model, protocol, spec_id, spec_label ORDER BY ALL
"""
"""The CVPR 2024/2025 challenges' case scores from the per-object volume rows (protocols.md §7.2, §7.5):
per case and step, DSC is the mean over the case's labels and NSD the mean over its labels, set to 0
unless that step's mean DSC > 0.2 (the scorers' gate, applied to the case, not to each label). The
first and the final step's scores; for six-step specs (``cvpr25-interactive``: the box, then five
clicks) DSC_AUC and NSD_AUC, the trapezoid area over the five click steps (steps 2-6) at x = 0..4:
``0.5*s2 + s3 + s4 + s5 + 0.5*s6``, between 0 and 4."""

CVPR_SUMMARY_SQL = f"""
    SELECT dataset, model, protocol, spec_label, count(*) AS cases,
           round(avg(dsc_first), 4) AS dsc_first, round(avg(nsd_first), 4) AS nsd_first,
           round(avg(dsc_final), 4) AS dsc_final, round(avg(nsd_final), 4) AS nsd_final,
           round(avg(dsc_auc), 4) AS dsc_auc, round(avg(nsd_auc), 4) AS nsd_auc
    FROM ({CVPR_CASES_SQL}) GROUP BY ALL ORDER BY ALL
"""
"""The CVPR case scores averaged over the cases of a dataset, per model and spec."""

NAMED_SUMMARIES = {"cvpr": CVPR_SUMMARY_SQL, "cvpr-cases": CVPR_CASES_SQL}
"""Summaries that reproduce a published aggregation, by name (``samatlas catalog summary --named``)."""
