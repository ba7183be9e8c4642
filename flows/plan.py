"""Planning: objects x model x protocols minus what ``results`` already holds, grouped into work units.

Planning reads only the catalog (``objects``, ``cases``, ``results``), never the volumes, so a new
model or protocol computes exactly what is missing: that is re-evaluation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.query import connect
from tasks.evaluate_unit import PlannedObject
from tasks.protocols import PromptProtocol


@dataclass(frozen=True)
class WorkUnit:
    """One case's planned objects; passed to a Prefect task as plain values (no arrays)."""

    dataset: str
    case_id: str
    zarr_path: str
    objects: tuple[PlannedObject, ...]

    @property
    def slices(self) -> int:
        """Distinct slices, i.e. encoder calls this unit will make."""
        return len({o.slice_index for o in self.objects})

    def key(self, model: str, sha256: str) -> str:
        """Deterministic fragment key: the same unit always writes the same file."""
        content = repr(sorted((o.slice_index, o.label, o.protocols) for o in self.objects)).encode()
        return f"{self.dataset}/{self.case_id}/{model}-{sha256[:12]}/{hashlib.sha256(content).hexdigest()[:16]}"


def _candidates(con, protocol: PromptProtocol, model: str, sha256: str, datasets: Sequence[str], cases: Sequence[str]) -> list[tuple]:
    """Every evaluable object of the selected cases, flagged done when ``results`` has all its rows."""
    filters, params = ["c.status = 'ok'", "o.area_px >= ?"], [protocol.min_area_px]
    if datasets:
        filters.append("o.dataset IN (SELECT unnest(?))")
        params.append(list(datasets))
    if cases:
        filters.append("o.case_id IN (SELECT unnest(?))")
        params.append(list(cases))
    return con.execute(f"""
        WITH done AS (
            SELECT dataset, case_id, slice_index, label, count(*) AS n FROM results
            WHERE model = ? AND model_sha256 = ? AND protocol IN (SELECT unnest(?))
            GROUP BY ALL
        )
        SELECT o.dataset, o.case_id, c.zarr_path, o.slice_index, o.label, o.target, o.modality, o.anatomy,
               coalesce(d.n, 0) >= ? AS done
        FROM objects o JOIN cases c USING (dataset, case_id)
        LEFT JOIN done d USING (dataset, case_id, slice_index, label)
        WHERE {' AND '.join(filters)}
        ORDER BY o.dataset, o.case_id, o.slice_index, o.label
    """, [model, sha256, list(protocol.names), protocol.rows_per_object, *params]).fetchall()


def _spread(slices: list[int], k: int) -> set[int]:
    """At most ``k`` slices evenly spread over the sorted list (deterministic)."""
    if k <= 0 or len(slices) <= k:
        return set(slices)
    return {slices[int(i)] for i in np.linspace(0, len(slices) - 1, k).round()}


def plan_units(
    catalog: Path, model: str, sha256: str, protocols: Mapping[str, PromptProtocol],
    datasets: Sequence[str] = (), cases: Sequence[str] = (), max_slices_per_case: int = 0,
) -> list[WorkUnit]:
    """The work units still needed for ``model`` under ``protocols``, one per case."""
    con = connect(catalog)
    wanted: dict[tuple, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, protocol in protocols.items():
        for *case_key, z, label, target, modality, anatomy, done in _candidates(con, protocol, model, sha256, datasets, cases):
            missing = wanted[tuple(case_key)][(z, label, target, modality, anatomy)]
            if not done:
                missing.append(key)
    units = []
    for (dataset, case_id, path), objects in sorted(wanted.items()):
        # The spread is taken over all candidate slices, done or not, so a repeated run with the
        # same limit plans nothing new.
        keep = _spread(sorted({o[0] for o in objects}), max_slices_per_case)
        planned = tuple(
            PlannedObject(z, label, target, modality, anatomy, tuple(keys))
            for (z, label, target, modality, anatomy), keys in sorted(objects.items()) if z in keep and keys
        )
        if planned:
            units.append(WorkUnit(dataset, case_id, path, planned))
    return units
