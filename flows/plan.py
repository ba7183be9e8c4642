"""Planning: objects x model x protocol specs minus the result keys already in ``results``.

Set-based in DuckDB over the catalog (no Python loop over objects): an (object, spec) pair is done
when ``results`` holds every one of its steps under exactly that model sha256 and spec id. The
missing pairs are grouped into work units of consecutive slices of one case, each of about
``UNIT_TARGET_S`` seconds of work as estimated from the model's speed on the device and the prompts
each slice has to decode (flows/unit_cost.py); a unit carries references (case, slices, spec ids),
and the worker reads its objects itself (:func:`unit_objects`), so a plan of ten million objects is
a few thousand small records.

Volumetric specs plan over ``volume_objects`` (one per label of a 3D case) against volume-scope
results, one unit per case with all its missing labels and specs (:func:`plan_volume_units`), since
a volumetric protocol carries an object through its slices and the unit's embeddings are shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from catalog.query import connect
from flows.unit_cost import UNIT_TARGET_S, ModelSpeed, model_speed
from records.rows import SLICE, VOLUME
from records.specs import ProtocolSpec
from records.units import PlannedObject, PlannedVolume
from tasks.locations import Location


@dataclass(frozen=True)
class WorkUnit:
    """Slices of one case that still lack results for some of the planned specs; references only."""

    dataset: str
    case_id: str
    zarr_path: str
    slices: tuple[int, ...]
    spec_ids: tuple[str, ...]
    objects: int  # missing (object, spec) pairs' objects, for progress and load balance
    scope: str = SLICE  # volume: the case's volume objects, ``slices`` the ones their ranges span
    cost_s: float = 0.0  # estimated seconds of work (slice units; flows/unit_cost.py)

    @property
    def name(self) -> str:
        """A readable name for logs and task runs."""
        where = "volume" if self.scope == VOLUME else f"{self.slices[0]}..{self.slices[-1]}"
        return f"{self.dataset}/{self.case_id}[{where}]"


@dataclass(frozen=True)
class DatasetPlan:
    """What planning found for one dataset: work still missing and work already done."""

    dataset: str
    units: int
    objects: int
    slices: int
    pairs_missing: int
    pairs_done: int

    @property
    def encoder_calls(self) -> int:
        """One encoder pass per planned slice."""
        return self.slices


@dataclass(frozen=True)
class Plan:
    """The units to run and the per-dataset counts behind them."""

    units: list[WorkUnit]
    datasets: list[DatasetPlan]

    def __add__(self, other: Plan) -> Plan:
        """Both plans' units, and their counts added up per dataset."""
        counts: dict[str, DatasetPlan] = {}
        for d in [*self.datasets, *other.datasets]:
            seen = counts.get(d.dataset)
            counts[d.dataset] = d if seen is None else DatasetPlan(
                d.dataset, seen.units + d.units, seen.objects + d.objects, seen.slices + d.slices,
                seen.pairs_missing + d.pairs_missing, seen.pairs_done + d.pairs_done)
        return Plan([*self.units, *other.units], [counts[k] for k in sorted(counts)])


def _specs_table(specs: Sequence[ProtocolSpec]) -> pa.Table:
    return pa.table({
        "spec_id": [s.id for s in specs], "steps": [s.steps for s in specs],
        "min_area": [s.min_area_px for s in specs],
    })


def _missing_sql(filters: str, spread: bool) -> str:
    """The CTEs ``cand`` (object x spec candidates), ``missing`` and ``done_pairs``."""
    keep = """
        , slice_rank AS (
            SELECT dataset, case_id, slice_index,
                   dense_rank() OVER (PARTITION BY dataset, case_id ORDER BY slice_index) - 1 AS r,
                   count(*) OVER (PARTITION BY dataset, case_id) AS n
            FROM (SELECT DISTINCT dataset, case_id, slice_index FROM cand0)
        ), kept AS (
            SELECT DISTINCT s.dataset, s.case_id, s.slice_index FROM slice_rank s, range($k) g(i)
            WHERE s.n <= $k OR s.r = CAST(round(CASE WHEN $k = 1 THEN 0 ELSE g.i * (s.n - 1) / ($k - 1) END) AS BIGINT)
        ), cand AS (SELECT c.* FROM cand0 c SEMI JOIN kept USING (dataset, case_id, slice_index))
    """ if spread else ", cand AS (SELECT * FROM cand0)"
    return f"""
        WITH cand0 AS (
            SELECT o.dataset, o.case_id, c.zarr_path, o.slice_index, o.label, s.spec_id, s.steps
            FROM objects o JOIN cases c USING (dataset, case_id) JOIN specs s ON o.area_px >= s.min_area
            WHERE c.status = 'ok' {filters}
        ) {keep}
        , done AS (
            SELECT dataset, case_id, slice_index, label, spec_id, count(*) AS n FROM results
            WHERE scope = '{SLICE}' AND model = $model AND model_sha256 = $sha AND spec_id IN (SELECT spec_id FROM specs)
            GROUP BY ALL
        ), marked AS (
            SELECT cand.*, coalesce(done.n, 0) >= cand.steps AS is_done
            FROM cand LEFT JOIN done USING (dataset, case_id, slice_index, label, spec_id)
        )
    """


def plan_units(
    catalog: Location, model: str, sha256: str, specs: Sequence[ProtocolSpec],
    datasets: Sequence[str] = (), cases: Sequence[str] = (), max_slices_per_case: int = 0,
    speed: ModelSpeed | None = None, target_s: float = UNIT_TARGET_S,
) -> Plan:
    """The work units still needed for ``model`` under ``specs``, and per-dataset counts.

    A case's missing slices are cut, in slice order, into units of about ``target_s`` estimated
    seconds: a slice costs one encoder pass plus, per prompt its missing pairs decode (a spec's
    steps), a decoder call and the pipeline's share, at ``speed`` (the model's figures on a CPU by
    default). A unit starts where the cost before it reaches a multiple of ``target_s``, so it holds at
    most ``target_s`` plus one slice's cost.
    """
    if target_s <= 0:
        raise ValueError(f"a unit's target seconds must be positive, got {target_s}")
    speed = speed or model_speed(model, "cpu")
    con = connect(catalog)
    con.register("specs", _specs_table(specs))
    filters, params = _selection("o", model, sha256, datasets, cases)
    spread = max_slices_per_case > 0
    if spread:  # at most k slices per case, evenly spread over all its candidate slices, done or not,
        params["k"] = int(max_slices_per_case)  # so a repeated run with the same limit plans nothing new
    con.execute("CREATE TEMP TABLE marked AS " + _missing_sql(filters, spread) + " SELECT * FROM marked",
                _used(_missing_sql(filters, spread), params))
    units_sql = """
        WITH slices AS (
            SELECT dataset, case_id, any_value(zarr_path) AS zarr_path, slice_index,
                   count(DISTINCT label) AS objects, list(DISTINCT spec_id) AS spec_ids,
                   $encode_s + sum(steps) * $prompt_s AS cost
            FROM marked WHERE NOT is_done GROUP BY dataset, case_id, slice_index
        ), numbered AS (
            SELECT *, floor((sum(cost) OVER (PARTITION BY dataset, case_id ORDER BY slice_index
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - cost) / $target_s) AS unit
            FROM slices
        )
        SELECT dataset, case_id, any_value(zarr_path), list(slice_index ORDER BY slice_index),
               list_sort(list_distinct(flatten(list(spec_ids)))), sum(objects)::BIGINT, sum(cost)
        FROM numbered GROUP BY dataset, case_id, unit ORDER BY dataset, case_id, unit
    """
    costs = {"encode_s": speed.encode_s, "prompt_s": speed.prompt_s, "target_s": target_s}
    units = [WorkUnit(d, c, p, tuple(z), tuple(s), int(n), cost_s=float(cost))
             for d, c, p, z, s, n, cost in con.execute(units_sql, costs).fetchall()]
    counts_sql = """
        WITH per_object AS (
            SELECT dataset, case_id, slice_index, label, count(*) FILTER (WHERE NOT is_done) AS missing,
                   count(*) FILTER (WHERE is_done) AS done
            FROM marked GROUP BY ALL
        ), per_slice AS (
            SELECT dataset, case_id, slice_index, count(*) FILTER (WHERE missing > 0) AS objects,
                   sum(missing) AS missing, sum(done) AS done
            FROM per_object GROUP BY ALL
        )
        SELECT dataset, sum(objects), count(*) FILTER (WHERE objects > 0), sum(missing), sum(done)
        FROM per_slice GROUP BY dataset ORDER BY dataset
    """
    per_unit: dict[str, int] = {}
    for unit in units:
        per_unit[unit.dataset] = per_unit.get(unit.dataset, 0) + 1
    summary = [
        DatasetPlan(d, per_unit.get(d, 0), int(o), int(s), int(m), int(done))
        for d, o, s, m, done in con.execute(counts_sql).fetchall()
    ]
    return Plan(units, summary)


def _selection(alias: str, model: str, sha256: str, datasets: Sequence[str], cases: Sequence[str]) -> tuple[str, dict]:
    """The SQL filter on table ``alias`` for the chosen datasets and cases, and the query's parameters."""
    filters, params = "", {"model": model, "sha": sha256}
    if datasets:
        filters += f" AND {alias}.dataset IN (SELECT unnest($datasets))"
        params["datasets"] = list(datasets)
    if cases:
        filters += f" AND {alias}.case_id IN (SELECT unnest($cases))"
        params["cases"] = list(cases)
    return filters, params


def _used(sql: str, params: dict) -> dict:
    """The parameters ``sql`` names (DuckDB refuses unused named parameters)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def unit_objects(catalog: Location, unit: WorkUnit, model: str, sha256: str, specs: Sequence[ProtocolSpec]) -> list[PlannedObject]:
    """The unit's objects with the specs each still lacks, read from the catalog by the worker.

    Read when the unit starts, so work another run committed since planning is not repeated.
    """
    wanted = [s for s in specs if s.id in set(unit.spec_ids)]
    con = connect(catalog, ("objects", "cases", "results"))  # per unit: only what the plan reads
    con.register("specs", _specs_table(wanted))
    sql = _missing_sql(" AND o.dataset = $dataset AND o.case_id = $case AND o.slice_index IN (SELECT unnest($slices))", False)
    sql = sql.replace("SELECT o.dataset, o.case_id, c.zarr_path,", "SELECT o.dataset, o.case_id, c.zarr_path, o.target, o.modality, o.anatomy,")
    sql += """
        SELECT slice_index, label, any_value(target), any_value(modality), any_value(anatomy), list(spec_id ORDER BY spec_id)
        FROM marked WHERE NOT is_done GROUP BY slice_index, label ORDER BY slice_index, label
    """
    params = {"model": model, "sha": sha256, "dataset": unit.dataset, "case": unit.case_id, "slices": list(unit.slices)}
    return [PlannedObject(z, l, t, m, a, tuple(s)) for z, l, t, m, a, s in con.execute(sql, _used(sql, params)).fetchall()]


def _volume_missing_sql(filters: str) -> str:
    """The CTE ``marked``: volume object x volumetric spec candidates, each marked done when
    ``results`` holds all of its steps under the model's sha256 and the spec id."""
    return f"""
        WITH cand AS (
            SELECT v.dataset, v.case_id, c.zarr_path, v.label, v.target, v.modality, v.anatomy, v.bbox,
                   v.key_slice, v.first_slice, v.last_slice, s.spec_id, s.steps
            FROM volume_objects v JOIN cases c USING (dataset, case_id) CROSS JOIN specs s
            WHERE c.status = 'ok' {filters}
        ), done AS (
            SELECT dataset, case_id, label, spec_id, count(*) AS n FROM results
            WHERE scope = '{VOLUME}' AND model = $model AND model_sha256 = $sha AND spec_id IN (SELECT spec_id FROM specs)
            GROUP BY ALL
        ), marked AS (
            SELECT cand.*, coalesce(done.n, 0) >= cand.steps AS is_done
            FROM cand LEFT JOIN done USING (dataset, case_id, label, spec_id)
        )
    """


def plan_volume_units(
    catalog: Location, model: str, sha256: str, specs: Sequence[ProtocolSpec],
    datasets: Sequence[str] = (), cases: Sequence[str] = (),
) -> Plan:
    """One unit per 3D case whose volume objects still lack results of some volumetric ``specs``."""
    if not specs:
        return Plan([], [])
    con = connect(catalog, ("volume_objects", "cases", "results"))
    con.register("specs", _specs_table(specs))
    filters, params = _selection("v", model, sha256, datasets, cases)
    sql = _volume_missing_sql(filters) + """
        SELECT dataset, case_id, any_value(zarr_path), list(DISTINCT [first_slice, last_slice]),
               list_sort(list_distinct(list(spec_id))), count(DISTINCT label)
        FROM marked WHERE NOT is_done GROUP BY dataset, case_id ORDER BY dataset, case_id
    """
    units = []
    for d, c, path, ranges, spec_ids, n in con.execute(sql, _used(sql, params)).fetchall():
        slices = sorted({z for first, last in ranges for z in range(first, last + 1)})
        units.append(WorkUnit(d, c, path, tuple(slices), tuple(spec_ids), int(n), VOLUME))
    counts_sql = _volume_missing_sql(filters) + """
        SELECT dataset, count(DISTINCT (case_id, label)) FILTER (WHERE NOT is_done),
               count(*) FILTER (WHERE NOT is_done), count(*) FILTER (WHERE is_done)
        FROM marked GROUP BY dataset ORDER BY dataset
    """
    per_dataset: dict[str, list[WorkUnit]] = {}
    for unit in units:
        per_dataset.setdefault(unit.dataset, []).append(unit)
    summary = [
        DatasetPlan(d, len(per_dataset.get(d, [])), int(o), sum(len(u.slices) for u in per_dataset.get(d, [])), int(m), int(done))
        for d, o, m, done in con.execute(counts_sql, _used(counts_sql, params)).fetchall()
    ]
    return Plan(units, summary)


def unit_volumes(catalog: Location, unit: WorkUnit, model: str, sha256: str, specs: Sequence[ProtocolSpec]) -> list[PlannedVolume]:
    """The volume unit's objects with the specs each still lacks, read from the catalog by the worker
    when the unit starts (work committed since planning is not repeated)."""
    wanted = [s for s in specs if s.id in set(unit.spec_ids)]
    con = connect(catalog, ("volume_objects", "cases", "results"))
    con.register("specs", _specs_table(wanted))
    sql = _volume_missing_sql(" AND v.dataset = $dataset AND v.case_id = $case") + """
        SELECT label, any_value(target), any_value(modality), any_value(anatomy), any_value(bbox),
               any_value(key_slice), list(spec_id ORDER BY spec_id)
        FROM marked WHERE NOT is_done GROUP BY label ORDER BY label
    """
    params = {"model": model, "sha": sha256, "dataset": unit.dataset, "case": unit.case_id}
    return [PlannedVolume(lab, t, m, a, tuple(int(v) for v in box), int(key), tuple(s))
            for lab, t, m, a, box, key, s in con.execute(sql, _used(sql, params)).fetchall()]
