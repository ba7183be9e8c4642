"""The catalog from Python: the read-only views of ``samatlas catalog query`` as DuckDB relations,
Arrow tables and pandas DataFrames.

Everything goes through the same sandbox as ``catalog query`` (:func:`catalog.query.sandbox`): one
SELECT per call (DuckDB's parser decides), a connection that may read only the tables' current data
files and write nothing, and the memory limit. A relation is evaluated when it is fetched
(``.df()``, ``.arrow()``, ``.fetchall()``, or shown); :meth:`Catalog.arrow` and :meth:`Catalog.df`
fetch at once under the time limit too. Each call opens a fresh sandbox, so it sees the catalog's
latest commit.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from catalog.query import SUMMARY_KEYS, QueryLimits, QueryRefused, check_read_only, sandbox, summary_sql, user_arrow
from records.rows import ROW_TYPES
from tasks.locations import Location, as_location
from tasks.settings import get_settings


class Catalog:
    """Read-only access to the catalog at ``root`` (default: the settings' catalog, i.e.
    ``$SAMATLAS_CATALOG`` or ``$SAMATLAS_DATA_ROOT/catalog``)."""

    def __init__(self, root: Location | None = None, limits: QueryLimits | None = None) -> None:
        settings = get_settings()
        self.root = as_location(root) if root is not None else settings.catalog_root
        self.limits = limits or QueryLimits(timeout_s=settings.query_timeout_s, memory=settings.query_memory)

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r})"

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """One SELECT over the views ``datasets cases objects results runs``, as a lazy relation."""
        text = check_read_only(query)
        con = sandbox(self.root, self.limits)
        try:
            return con.sql(text)
        except duckdb.Error as exc:
            raise QueryRefused(str(exc).strip().splitlines()[0]) from None

    def arrow(self, query: str) -> pa.Table:
        """One SELECT, fetched as an Arrow table under the time and memory limits."""
        return user_arrow(self.root, query, self.limits)

    def df(self, query: str):
        """One SELECT, fetched as a pandas DataFrame (needs pandas: ``pip install samatlas[notebook]``)."""
        return self.arrow(query).to_pandas()

    def table(self, name: str) -> pa.Table:
        """A whole view (``results``, ``objects``, ...) as Arrow, with the table's schema."""
        if name not in ROW_TYPES:
            raise ValueError(f"unknown table {name!r}; choose from {', '.join(ROW_TYPES)}")
        return self.arrow(f"SELECT * FROM {name}").cast(ROW_TYPES[name].SCHEMA)

    def summary(self, by: str | tuple[str, ...] = SUMMARY_KEYS) -> duckdb.DuckDBPyRelation:
        """n, mean and median Dice and IoU (and NSD, HD95) grouped as ``catalog summary --by`` groups."""
        keys = tuple(k.strip() for k in by.split(",") if k.strip()) if isinstance(by, str) else tuple(by)
        return self.sql(summary_sql(keys))
