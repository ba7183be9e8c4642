"""The catalog's tables: one Delta Lake table per row type, partitioned by modality and anatomy.

Why Delta Lake (through ``deltalake``, delta-rs) rather than hand-named Parquet fragments: a commit
adds many files atomically (readers see all of it or none), concurrent writers are serialised by the
transaction log (a keyed merge that loses a race fails with a conflict, is retried, and then finds
the keys the winner added, so two runs can never both add a key), compaction rewrites small files
without readers seeing a half state, and per-file statistics prune a case's rows. Measured against
the fragment layout in bench/catalog.py (see the issue note). DuckDB reads the tables' current data
files (``data_files``) with ``read_parquet``; the DuckDB Delta extension is not installable here.

The root may be an fsspec-style URL (``s3://bucket/catalog``): delta-rs writes it itself (S3
conditional puts serialise the commits; credentials and endpoint from the standard ``AWS_*``
environment) and DuckDB, which cannot read ``s3://`` without its httpfs extension (not installable
here either), scans the current version through delta-rs's Arrow dataset instead (:func:`scan`).

Three ways to write, one per kind of table:

* :func:`insert_missing` (``results``): add only rows whose key is absent; never touches a row that
  is there. A retried unit, a re-run after a kill, or a second run computing the same keys adds
  nothing.
* :func:`replace` (``cases``, ``objects``, ``datasets``, ``runs``): the given rows become the rows of
  their scope (for example every object of the re-ingested cases): matched rows are updated, new ones
  inserted, and rows of the scope that are not in the batch deleted, in one commit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
from fsspec.core import strip_protocol
from pyarrow.fs import FSSpecHandler, PyFileSystem
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from records.rows import PARTITIONED, PARTITIONS, ROW_TYPES, Row, to_table
from tasks.locations import Location, filesystem, is_remote, join

if TYPE_CHECKING:
    import pyarrow.dataset as ds

COMMIT_RETRIES = 20  # a lost race retries; twenty losses in a row means something else is wrong
TARGET_FILE_BYTES = 128 * 1024 * 1024  # compaction target: a few files per 10^7 result rows


class CatalogLayoutError(RuntimeError):
    """The catalog folder holds something this version cannot read (for example the old fragments)."""


def table_uri(root: Location, name: str) -> str:
    """Where table ``name`` lives under the catalog root."""
    return str(join(root, name))


def _check_layout(root: Location, name: str) -> None:
    if is_remote(root):  # samatlas 0.1 wrote local folders only
        return
    base = Path(root) / name
    if base.is_dir() and not (base / "_delta_log").is_dir() and any(base.rglob("*.parquet")):
        raise CatalogLayoutError(
            f"{base}: this catalog table was written by samatlas 0.1 (Parquet fragments, results keyed "
            f"by protocol name); this version keys results by protocol spec in Delta tables. Move "
            f"{Path(root)} aside and re-run ingest and evaluate (the Zarr store is kept and re-used)."
        )


def open_table(root: Location, name: str) -> DeltaTable | None:
    """The Delta table ``name``, or None if nothing was written to it yet."""
    _check_layout(root, name)
    try:
        return DeltaTable(table_uri(root, name))
    except TableNotFoundError:
        return None


def data_files(root: Location, name: str) -> list[str]:
    """The Parquet files of the table's current version (what a reader must scan)."""
    table = open_table(root, name)
    return [] if table is None else sorted(table.file_uris())


def _create(root: Location, name: str) -> None:
    """Create table ``name`` with its schema unless it exists (a creation race is harmless)."""
    schema = ROW_TYPES[name].SCHEMA
    partition_by = list(PARTITIONS) if name in PARTITIONED else None
    try:
        DeltaTable.create(table_uri(root, name), schema, partition_by=partition_by, mode="ignore")
    except Exception:
        if open_table(root, name) is None:
            raise


def _sql_list(values: Iterable[object]) -> str:
    """A SQL IN-list of string literals (quotes doubled)."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(set(values)))


def _prune(data: pa.Table, columns: Sequence[str]) -> str:
    """``t.col IN (...)`` for each column, so a merge reads only the partitions and files it can touch."""
    return " AND ".join(f"t.{c} IN ({_sql_list(data.column(c).to_pylist())})" for c in columns)


def _unique(data: pa.Table, key: Sequence[str]) -> pa.Table:
    """``data`` with one row per key (the first), so a batch never inserts a key twice."""
    con = duckdb.connect(":memory:")
    con.register("batch", data)
    cols = ", ".join(key)
    out = con.sql(f"SELECT * FROM batch QUALIFY row_number() OVER (PARTITION BY {cols}) = 1").to_arrow_table()
    return out.select(data.schema.names).cast(data.schema)


def _merge(root: Location, name: str, data: pa.Table, build) -> dict:
    """Run a merge built by ``build(DeltaTable)``, retrying when another writer committed first."""
    _create(root, name)
    for attempt in range(COMMIT_RETRIES):
        try:
            return build(DeltaTable(table_uri(root, name))).execute()
        except CommitFailedError:
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise CommitFailedError(f"{table_uri(root, name)}: gave up after {COMMIT_RETRIES} conflicting commits")


def _scope_columns(name: str) -> list[str]:
    return [*PARTITIONS, "dataset"] if name in PARTITIONED else []


def insert_missing(root: Location, rows: Sequence[Row] | pa.Table, cls: type[Row]) -> int:
    """Add the rows whose key ``cls.KEY`` is not in the table yet; return how many were added."""
    data = rows if isinstance(rows, pa.Table) else to_table(rows, cls)
    if data.num_rows == 0:
        return 0
    data = _unique(data.cast(cls.SCHEMA), cls.KEY)
    on = " AND ".join(f"t.{k} = s.{k}" for k in cls.KEY)
    prune = _prune(data, [*_scope_columns(cls.TABLE), *(["case_id"] if "case_id" in cls.KEY else [])])
    predicate = f"{on} AND {prune}" if prune else on
    stats = _merge(root, cls.TABLE, data, lambda t: t.merge(
        data, predicate=predicate, source_alias="s", target_alias="t", streamed_exec=False,
    ).when_not_matched_insert_all())
    return int(stats.get("num_target_rows_inserted", 0))


def replace(root: Location, rows: Sequence[Row] | pa.Table, cls: type[Row], scope: dict[str, Iterable[object]]) -> None:
    """Make ``rows`` the table's rows within ``scope`` (column -> values, e.g. the re-ingested case ids
    of one dataset): update matched keys, insert new ones, delete the scope's other rows. One commit."""
    data = rows if isinstance(rows, pa.Table) else to_table(rows, cls)
    data = _unique(data.cast(cls.SCHEMA), cls.KEY) if data.num_rows else cls.SCHEMA.empty_table()
    in_scope = " AND ".join(f"t.{c} IN ({_sql_list(v)})" for c, v in scope.items())
    if not in_scope:
        raise ValueError("replace needs a scope: the rows it may delete")
    # The scope in the join predicate lets the merge skip files holding none of the scope's rows.
    on = " AND ".join(f"t.{k} = s.{k}" for k in cls.KEY) + f" AND {in_scope}"

    def build(table: DeltaTable):
        merge = table.merge(data, predicate=on, source_alias="s", target_alias="t", streamed_exec=False)
        if data.num_rows:
            merge = merge.when_matched_update_all().when_not_matched_insert_all()
        return merge.when_not_matched_by_source_delete(predicate=in_scope)

    _merge(root, cls.TABLE, data, build)


def remote_dataset(root: Location, name: str, files: list[str]) -> ds.Dataset:
    """The object-store table's current data ``files`` (URIs) as an Arrow dataset read through fsspec.

    delta-rs writes string columns as Arrow ``string_view``; a dataset that declares them ``string``
    (as ``DeltaTable.to_pyarrow_dataset`` does) fails on every filter DuckDB pushes into the scan
    (pyarrow 26 prunes row groups with ``equal(string, string_view)``, which has no kernel), so the
    dataset declares the string columns as the views they are; DuckDB reads both as VARCHAR.
    """
    import pyarrow.dataset as ds  # here: with the pandas it imports, 0.5 s that no local catalog needs

    fs, base = filesystem(table_uri(root, name))
    schema = pa.schema([  # partition values come from the paths, parsed as plain strings
        f.with_type(pa.string_view()) if f.type == pa.string() and f.name not in PARTITIONS else f
        for f in ROW_TYPES[name].SCHEMA
    ])
    partitioning = None
    if name in PARTITIONED:
        partitioning = ds.partitioning(pa.schema([schema.field(c) for c in PARTITIONS]), flavor="hive")
    return ds.dataset([strip_protocol(uri) for uri in files], schema=schema, format="parquet",
                      filesystem=PyFileSystem(FSSpecHandler(fs)), partitioning=partitioning, partition_base_dir=base)


def scan(con: duckdb.DuckDBPyConnection, root: Location, name: str) -> list[str]:
    """Create view ``name`` on ``con`` over the table's current version, with the table's columns;
    return the local data files it reads (none for an object store, read through Arrow)."""
    files = data_files(root, name)
    if not files:
        con.register(f"_{name}_empty", ROW_TYPES[name].SCHEMA.empty_table())
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
        return []
    columns = ", ".join(ROW_TYPES[name].SCHEMA.names)
    if is_remote(root):
        con.register(f"_{name}_delta", remote_dataset(root, name, files))
        con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM _{name}_delta")
        return []
    hive = "true" if name in PARTITIONED else "false"
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM read_parquet({listed}, hive_partitioning={hive})")
    return files


def read(root: Location, name: str, filter: str | None = None) -> pa.Table:
    """Table ``name`` (optionally rows matching a DuckDB ``filter`` expression) with its schema."""
    schema = ROW_TYPES[name].SCHEMA
    con = duckdb.connect(":memory:")
    scan(con, root, name)
    where = f" WHERE {filter}" if filter else ""
    return con.sql(f"SELECT * FROM {name}{where}").to_arrow_table().select(schema.names).cast(schema)


@dataclass(frozen=True)
class Compaction:
    """What compaction did to one table."""

    table: str
    files_before: int
    files_after: int
    removed_files: int


def compact(root: Location, names: Iterable[str] = tuple(ROW_TYPES), vacuum: bool = True) -> list[Compaction]:
    """Rewrite small files into large ones (readers see the old or the new version, never a mix) and,
    with ``vacuum``, delete the files no current version needs. Idempotent. Vacuum removes the
    superseded files at once, so run it while no other samatlas command runs on this catalog."""
    done = []
    for name in names:
        table = open_table(root, name)
        if table is None:
            continue
        before = len(table.file_uris())
        table.optimize.compact(target_size=TARGET_FILE_BYTES)
        removed = 0
        table.create_checkpoint()  # readers replay one checkpoint instead of every commit
        if vacuum:
            removed = len(table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False))
            table.cleanup_metadata()
        done.append(Compaction(name, before, len(DeltaTable(table_uri(root, name)).file_uris()), removed))
    return done
