"""Ingest many small (2D) cases per work unit: one Prefect task per bucket of cases.

Why: a Prefect task run costs about half a second of bookkeeping, so datasets of tens of thousands
of images need work units that hold many cases. A case belongs to bucket ``sha256(case_id) mod
BUCKETS``, a function of its id alone, so a case lands in the same bucket whichever run ingests it.

A batch returns its outcomes; the flow commits them (``flows/ingest.py``). A case is skipped when its
previous ``cases`` row is ``ok`` with the same source checksums, its group in the store is complete
and ``objects`` holds as many rows for it as its ``n_objects`` says; anything less (a crash between
the store write and the commit, a half-finished earlier run) re-ingests it.

A skipped 3D case whose ``volume_objects`` rows are missing (a catalog written before that table
existed) gets them from its stored mask (:func:`backfill_volume_objects`), not from its sources.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from records.cards import CaseFiles, DatasetCard
from records.rows import CaseRow, VolumeObjectRow
from tasks.ingest_case import CaseOutcome, ingest_case, is_current, source_checksums, stored_volume_objects
from tasks.locations import Location

BUCKETS = 64


@dataclass(frozen=True)
class CaseStatus:
    """What ingest did with one case: ok, skipped (unchanged) or quarantined (with the reason)."""

    case_id: str
    status: str
    reason: str | None = None


def bucket_of(case_id: str) -> int:
    """The bucket of a case: a stable function of its id (not Python's per-process ``hash``)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % BUCKETS


def group_by_bucket(cases: Iterable[CaseFiles]) -> dict[int, list[CaseFiles]]:
    """The cases of each non-empty bucket, buckets and cases in a stable order."""
    groups: dict[int, list[CaseFiles]] = defaultdict(list)
    for case in cases:
        groups[bucket_of(case.case_id)].append(case)
    return {b: sorted(groups[b], key=lambda c: c.case_id) for b in sorted(groups)}


def ingest_batch(
    card: DatasetCard, cases: list[CaseFiles], store: Location, previous: Mapping[str, CaseRow],
    object_counts: Mapping[str, int], run_id: str, quick: bool = True,
) -> tuple[list[CaseStatus], list[CaseOutcome]]:
    """Ingest ``cases`` (skipping unchanged ones); return every case's status and the new outcomes.

    ``quick`` checks store completeness from the root ``zarr.json`` alone (for thousands of small
    cases) instead of opening the group.
    """
    statuses: list[CaseStatus] = []
    outcomes: list[CaseOutcome] = []
    for case in cases:
        checksums = source_checksums(case)
        before = previous.get(case.case_id)
        if is_current(before, checksums, store, quick=quick) and object_counts.get(case.case_id, 0) == before.n_objects:
            statuses.append(CaseStatus(case.case_id, "skipped"))
            continue
        outcome = ingest_case(card, case, store, run_id, checksums)
        outcomes.append(outcome)
        statuses.append(CaseStatus(case.case_id, outcome.case.status, outcome.case.reason))
    return statuses, outcomes


def backfill_volume_objects(
    card: DatasetCard, statuses: Iterable[CaseStatus], previous: Mapping[str, CaseRow], missing: Collection[str],
    store: Location,
) -> dict[str, tuple[VolumeObjectRow, ...]]:
    """The ``volume_objects`` rows, by case id, of the skipped (unchanged) cases named in ``missing``,
    computed from each case's stored mask; re-ingested cases bring their own rows in their outcome."""
    return {
        s.case_id: stored_volume_objects(card, previous[s.case_id], store)
        for s in statuses if s.status == "skipped" and s.case_id in missing
    }
