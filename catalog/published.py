"""Published reference values and their join with the catalog: the paper's number beside ours.

``catalog/published.csv`` holds one row per published value (transcribed from
shared/reference/protocols.md §1.5, §1.6, §2.5, §2.6, §4.2, §7.2; nothing else). A row names where
its number came from (``citation``, with table or figure), the task as published and, where one
exists, the samatlas dataset and target, model and protocol spec it corresponds to, and how the
number was computed: the metric, the statistic (mean or median), the aggregation (per object, per
case, or an average over tasks) and the unit as printed. ``note`` says when a value is derived,
secondary or otherwise unverified.

:func:`compare` joins the rows with the catalog where dataset, target, model, protocol (with the
row's parameters) and step match, and computes our statistic the same way; every row it cannot
match comes back with what would be needed to reproduce it.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from records.rows import SLICE, VOLUME

METRICS = ("iou", "dice", "nsd", "dice_auc", "nsd_auc")
ROW_METRICS = ("iou", "dice", "nsd")  # metrics the results table holds per row
UNITS = {"fraction": 1.0, "percent": 0.01, "raw": 1.0}
STATISTICS = ("mean", "median")
AGGREGATIONS = ("object", "case", "task-mean", "modality-mean", "weighted-sum")
JOINABLE = ("object", "case")  # aggregations computed here from one dataset's rows
PUBLISHED_CSV = "published.csv"


class PublishedFileError(ValueError):
    """A published-values file with a row that cannot be read; the message names file, line and field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedValue:
    """One published number and how it was computed.

    ``dataset`` and ``target`` are samatlas ids (empty: no samatlas dataset; an empty target with a
    dataset pools every target of it); ``model`` is a samatlas model id (empty: not in samatlas);
    ``protocol`` a spec name and ``params`` the spec parameters the value depends on (``k=v``
    separated by spaces; values read as JSON where they parse, e.g. ``points=3``).
    """

    source: str
    citation: str
    task: str
    dataset: str
    target: str
    published_model: str
    model: str
    protocol: str
    params: dict[str, Any]
    scope: str  # slice | volume | "" (only where no dataset is given)
    step: int | None
    metric: str
    value: float  # as printed, in ``unit``
    unit: str
    statistic: str
    aggregation: str
    split: str
    note: str

    @property
    def fraction(self) -> float:
        """The value on the catalog's scale (fractions for IoU, Dice and NSD)."""
        return self.value * UNITS[self.unit]


def _params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in text.split():
        key, sep, raw = part.partition("=")
        if not sep or not key:
            raise ValueError(f"params {text!r}: expected key=value pairs separated by spaces")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_row(raw: dict[str, str]) -> PublishedValue:
    """One CSV row as a typed record; a bad field raises ValueError naming it."""
    names = [f.name for f in fields(PublishedValue)]
    missing = [n for n in names if n not in raw or raw[n] is None]
    if missing:
        raise ValueError(f"missing columns {missing}")
    row = {n: raw[n].strip() for n in names}
    for name in ("source", "citation", "task", "published_model", "protocol", "split"):
        if not row[name]:
            raise ValueError(f"{name} is empty")
    if row["target"] and not row["dataset"]:
        raise ValueError("a target needs a dataset")
    scopes = (SLICE, VOLUME) if row["dataset"] else (SLICE, VOLUME, "")
    return PublishedValue(
        **{**row,
           "params": _params(row["params"]),
           "scope": _choice("scope", row["scope"], scopes),
           "step": int(row["step"]) if row["step"] else None,
           "metric": _choice("metric", row["metric"], METRICS),
           "value": float(row["value"]),
           "unit": _choice("unit", row["unit"], tuple(UNITS)),
           "statistic": _choice("statistic", row["statistic"], STATISTICS),
           "aggregation": _choice("aggregation", row["aggregation"], AGGREGATIONS)},
    )


def load(path: Path | str | None = None) -> list[PublishedValue]:
    """The published values in ``path`` (default: the file shipped in this package)."""
    if path is None:
        source = resources.files("catalog") / PUBLISHED_CSV
        text, name = source.read_text(encoding="utf-8"), str(source)
    else:
        text, name = Path(path).read_text(encoding="utf-8"), str(path)
    out = []
    for line, raw in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            out.append(parse_row(raw))
        except ValueError as exc:
            raise PublishedFileError(f"{name}:{line}: {exc}") from None
    return out


@dataclass(frozen=True)
class Comparison:
    """A published value beside our number for one spec and model weights (n objects or cases)."""

    published: PublishedValue
    spec_label: str
    model_sha256: str
    n: int
    ours: float | None

    @property
    def difference(self) -> float | None:
        """Ours minus published, on the catalog's scale."""
        return None if self.ours is None else self.ours - self.published.fraction


@dataclass(frozen=True)
class Unmatched:
    """A published value with no matching results, and what reproducing it would need."""

    published: PublishedValue
    needed: str


@cache
def spec_families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Spec name -> (the ``--protocol`` that records it, that protocol's options). Imports the
    protocols (and so torch) on first use."""
    from tasks.protocols import PROTOCOLS

    return {spec.name: (name, tuple(getattr(cls, "OPTIONS", ()))) for name, cls in PROTOCOLS.items() for spec in cls().specs}


def _needed(value: PublishedValue, ingested: set[str]) -> str:
    """What data, model and protocol reproducing ``value`` would take."""
    reasons = []
    if value.aggregation not in JOINABLE:
        reasons.append(f"an average over several tasks ({value.aggregation}), which the report does not compute")
    if not value.dataset:
        reasons.append("these tasks' data (no samatlas dataset)")
    if not value.model:
        reasons.append(f"the model ({value.published_model}; not in samatlas)")
    if value.metric not in ROW_METRICS:
        reasons.append(f"a per-case {value.metric} summary (not in the catalog)")
    family = spec_families().get(value.protocol)
    if family is None:
        reasons.append(f"the protocol spec {value.protocol} (not implemented)")
    if reasons:
        return "; ".join(reasons)
    name, options = family
    extra = "".join(f" --{k} {v}" for k, v in value.params.items() if k in options)
    evaluate = f"`samatlas evaluate --dataset {value.dataset} --model {value.model} --protocol {name}{extra}`"
    return evaluate if value.dataset in ingested else f"`samatlas ingest {value.dataset}`, then {evaluate}"


def _candidates(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str, str], list[tuple]]:
    """(dataset, model, protocol, scope) -> the distinct (target, spec_id, spec, spec_label, sha) there."""
    out: dict[tuple[str, str, str, str], list[tuple]] = defaultdict(list)
    for dataset, model, protocol, scope, *rest in con.execute("""
            SELECT DISTINCT dataset, model, protocol, scope, target, spec_id, spec, spec_label, model_sha256
            FROM results""").fetchall():
        out[(dataset, model, protocol, scope)].append(tuple(rest))
    return out


def _ours(con: duckdb.DuckDBPyConnection, value: PublishedValue, spec_id: str, sha: str) -> tuple[int, float | None]:
    """n and our statistic for ``value``'s rows of one spec and model weights, aggregated as published."""
    where = ["dataset = $dataset", "model = $model", "spec_id = $spec", "model_sha256 = $sha", "scope = $scope", "step = $step",
             f"{value.metric} IS NOT NULL", f"NOT isnan({value.metric})"]
    args: dict[str, Any] = {"dataset": value.dataset, "model": value.model, "spec": spec_id, "sha": sha,
                            "scope": value.scope, "step": value.step}
    if value.target:
        where.append("target = $target")
        args["target"] = value.target
    stat = "avg" if value.statistic == "mean" else "median"
    rows = f"SELECT case_id, {value.metric} AS v FROM results WHERE {' AND '.join(where)}"
    if value.aggregation == "case":  # each case first: the mean over its objects
        rows = f"SELECT case_id, avg(v) AS v FROM ({rows}) GROUP BY case_id"
    n, ours = con.execute(f"SELECT count(*), {stat}(v) FROM ({rows})", args).fetchone()
    return int(n), (None if ours is None else float(ours))


def compare(con: duckdb.DuckDBPyConnection, values: list[PublishedValue]) -> tuple[list[Comparison], list[Unmatched]]:
    """Join ``values`` with the catalog behind ``con``: one Comparison per matching (value, spec,
    model weights), and the values nothing matched with what reproducing them would need."""
    candidates = _candidates(con)
    ingested = {r[0] for r in con.execute("SELECT DISTINCT dataset FROM cases WHERE status = 'ok'").fetchall()}
    matched: list[Comparison] = []
    unmatched: list[Unmatched] = []
    for value in values:
        found: dict[tuple[str, str], str] = {}
        if value.dataset and value.model and value.metric in ROW_METRICS and value.aggregation in JOINABLE and value.step is not None:
            for target, spec_id, spec, label, sha in candidates.get((value.dataset, value.model, value.protocol, value.scope), ()):
                params = json.loads(spec)
                if (not value.target or target == value.target) and all(params.get(k) == v for k, v in value.params.items()):
                    found[(spec_id, sha)] = label
        comparisons = [Comparison(value, label, sha, *_ours(con, value, spec_id, sha)) for (spec_id, sha), label in sorted(found.items())]
        comparisons = [c for c in comparisons if c.n]  # the spec is there, but not at this step
        matched += comparisons
        if not comparisons:
            unmatched.append(Unmatched(value, _needed(value, ingested)))
    return matched, unmatched


def _signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.4f}"


def _shorten(names: list[str], keep: int = 12) -> str:
    """The distinct names in order, ``;``-separated (task names hold commas), the first ``keep`` only."""
    names = list(dict.fromkeys(names))
    return "; ".join(names[:keep]) + (f" (+{len(names) - keep} more)" if len(names) > keep else "")


def section(con: duckdb.DuckDBPyConnection, values: list[PublishedValue] | None = None) -> list[str]:
    """The report's "Published beside ours" section as Markdown lines."""
    from catalog.listing import markdown_table

    values = load() if values is None else values
    matched, unmatched = compare(con, values)
    lines = ["## Published beside ours", "",
             f"{len(values)} published values (catalog/published.csv, from shared/reference/protocols.md). Ours is "
             "computed the way each was published: the same metric, statistic (mean or median) and aggregation "
             "(per object, or per case: each case's mean over its objects first), at the same step; n counts "
             "objects or cases. Values are fractions (published percentages divided by 100); difference = ours "
             "- published. A note says when the published value is derived, secondary or unverified.", ""]
    if matched:
        rows = [(c.published.task, c.published.dataset + (f"/{c.published.target}" if c.published.target else ""),
                 c.published.model, c.spec_label, c.published.step, c.published.metric,
                 f"{c.published.statistic} per {c.published.aggregation}", f"{c.published.fraction:.4f}",
                 "" if c.ours is None else f"{c.ours:.4f}", c.n, _signed(c.difference),
                 c.published.citation, c.published.note) for c in matched]
        lines += [markdown_table(["task", "dataset/target", "model", "spec", "step", "metric", "statistic", "published",
                                  "ours", "n", "difference", "source", "note"], rows), ""]
    else:
        lines += ["No published value matches the catalog's results yet.", ""]
    groups: dict[tuple[str, str, str], list[Unmatched]] = defaultdict(list)
    for u in unmatched:
        groups[(u.published.source, u.published.published_model, u.needed)].append(u)
    rows = [(source, model, _shorten([u.published.protocol for u in group]), _shorten([u.published.task for u in group], keep=8),
             len(group), needed) for (source, model, needed), group in groups.items()]
    lines += ["### Not yet reproduced here", "",
              f"{len(unmatched)} published values have no matching results; what reproducing them would need:", "",
              markdown_table(["source", "published model", "protocols", "tasks", "values", "needed"], rows), ""]
    return lines
