"""Planning: objects x model x protocols minus what ``results`` already holds, grouped into work units.

Planning reads only the catalog (``objects``, ``cases``, ``results``), never the volumes, so a new
model or protocol computes exactly what is missing: that is re-evaluation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.query import connect
from tasks.evaluate_unit import PlannedObject
from tasks.protocols import PromptProtocol


SLICES_PER_UNIT = 32  # about a minute of LiteMedSAM encoding on a CPU core, seconds on a GPU


@dataclass(frozen=True)
class WorkUnit:
    """Planned objects of one case (a run of at most SLICES_PER_UNIT slices); plain values, no arrays."""

    dataset: str
    case_id: str
    zarr_path: str
    objects: tuple[PlannedObject, ...]

    @property
    def slices(self) -> int:
        """Distinct slices, i.e. encoder calls this unit will make."""
        return len({o.slice_index for o in self.objects})

    def key(self, model: str, sha256: str, recorded: Iterable[str]) -> str:
        """Deterministic fragment key: the same unit always writes the same file.

        ``recorded`` are the protocol names the unit's rows carry (they include options such as the
        click count), so a run with other options writes beside the earlier results, never over them.
        """
        content = repr((sorted((o.slice_index, o.label) for o in self.objects), sorted(recorded))).encode()
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
        units += [WorkUnit(dataset, case_id, path, part) for part in _slice_ranges(planned, SLICES_PER_UNIT)]
    return units


def _slice_ranges(objects: tuple[PlannedObject, ...], size: int) -> list[tuple[PlannedObject, ...]]:
    """Split a case's objects (sorted by slice) into runs of at most ``size`` distinct slices.

    A large volume then spreads over several workers, while each slice stays in one unit, so it is
    still encoded exactly once.
    """
    parts: list[list[PlannedObject]] = []
    slices_in_part = 0
    for i, obj in enumerate(objects):
        new_slice = i == 0 or obj.slice_index != objects[i - 1].slice_index
        if new_slice and (not parts or slices_in_part == size):
            parts.append([])
            slices_in_part = 0
        slices_in_part += new_slice
        parts[-1].append(obj)
    return [tuple(p) for p in parts]
