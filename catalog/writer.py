"""Write catalog rows as Parquet fragments with deterministic names, atomically.

A fragment's name comes from its work unit's key, so a retried or repeated unit overwrites its own
file and never duplicates rows; each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from catalog.schema import PARTITIONED, PARTITIONS, SCHEMA_VERSION, TABLES

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def partition_value(value: str) -> str:
    """A lowercase ASCII slug safe as a hive directory name; never empty."""
    return _UNSAFE.sub("-", str(value).lower()).strip("-") or "unknown"


def fragment_name(key: str) -> str:
    """The file name for a work unit's key."""
    return partition_value(key.replace("/", "__")) + ".parquet"


def _write_file(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table.replace_schema_metadata({"samatlas_schema_version": str(SCHEMA_VERSION)}), tmp)
    os.replace(tmp, path)


def remove_fragments(root: Path, table: str, key: str) -> int:
    """Delete every fragment of ``key`` in ``table`` (all partitions); return how many."""
    name = fragment_name(key)
    pattern = f"*/*/{name}" if table in PARTITIONED else name
    removed = 0
    for path in (Path(root) / table).glob(pattern):
        path.unlink()
        removed += 1
    return removed


def write_rows(root: Path, table: str, rows: Iterable[Mapping[str, Any]], key: str) -> list[Path]:
    """Write ``rows`` of ``table`` as the fragment(s) of ``key``, one per (modality, anatomy).

    Files the same key wrote before in other partitions are removed first, so the key's rows are
    replaced whole.
    """
    schema = TABLES[table]
    remove_fragments(root, table, key)
    base = Path(root) / table
    if table not in PARTITIONED:
        rows = list(rows)
        if not rows:
            return []
        path = base / fragment_name(key)
        _write_file(pa.Table.from_pylist(rows, schema=schema), path)
        return [path]
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(partition_value(row[p]) for p in PARTITIONS)].append(row)
    data_schema = pa.schema([f for f in schema if f.name not in PARTITIONS])
    written = []
    for (modality, anatomy), group in sorted(groups.items()):
        path = base / f"modality={modality}" / f"anatomy={anatomy}" / fragment_name(key)
        _write_file(pa.Table.from_pylist(group, schema=data_schema), path)
        written.append(path)
    return written


def read_table(root: Path, table: str, filter: pads.Expression | None = None) -> pa.Table:
    """Read a whole catalog table with its canonical schema (empty if nothing was written yet)."""
    schema = TABLES[table]
    base = Path(root) / table
    files = [p for p in base.rglob("*.parquet")] if base.exists() else []
    if not files:
        return schema.empty_table()
    partitioning = pads.partitioning(pa.schema([(p, pa.string()) for p in PARTITIONS]), flavor="hive")
    dataset = pads.dataset(
        [str(f) for f in files], schema=schema, format="parquet",
        partitioning=partitioning if table in PARTITIONED else None,
        partition_base_dir=str(base),
    )
    return dataset.to_table(filter=filter)


def read_fragment(root: Path, table: str, key: str) -> list[dict[str, Any]]:
    """The rows that ``key``'s fragments hold in ``table`` (all partitions), as dicts.

    A batch of work units that rewrites its own key uses this to carry over the rows it keeps.
    """
    name = fragment_name(key)
    base = Path(root) / table
    files = sorted(base.glob(f"*/*/{name}" if table in PARTITIONED else name)) if base.exists() else []
    if not files:
        return []
    partitioning = pads.partitioning(pa.schema([(p, pa.string()) for p in PARTITIONS]), flavor="hive")
    dataset = pads.dataset(
        [str(f) for f in files], schema=TABLES[table], format="parquet",
        partitioning=partitioning if table in PARTITIONED else None, partition_base_dir=str(base),
    )
    return dataset.to_table().to_pylist()
