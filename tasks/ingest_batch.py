"""Ingest many small (2D) cases per work unit, with one set of catalog fragments per bucket of cases.

Why: a Prefect task run costs about half a second of bookkeeping and a Parquet fragment per case
means one tiny file per image per table, so datasets of tens of thousands of images need work units
and fragments that hold many cases.

Design:

* **Buckets.** A case belongs to bucket ``sha256(case_id) mod BUCKETS``: a function of its id alone,
  so a case lands in the same bucket whichever run ingests it and whatever else the release holds.
  The flow runs one task per non-empty bucket (at most ``BUCKETS`` per dataset, a few cases each for
  small datasets, hundreds for large ones).
* **Fragments keyed by bucket.** A bucket's ``cases`` and ``objects`` rows live in the fragments of
  key ``<dataset>/bucket-<b>-of-<BUCKETS>`` and nowhere else, and only that bucket's task writes them
  (one task per bucket per run, so no two writers share a key).
* **Re-runs replace only what they ingest.** The task reads its bucket's old rows, skips each case
  whose previous row is ``ok`` with the same source checksums, a complete group in the store and as
  many ``objects`` rows as its ``n_objects`` says, ingests the others, and rewrites the bucket's
  fragments as (old rows of every case it did not ingest) + (new rows of the cases it did). Since a
  case's rows only ever live in its bucket's fragment and that fragment is replaced whole
  (``write_rows`` removes the key's files in every partition first), a case can never have two rows,
  and a re-ingested case never keeps a stale one: re-ingesting only the fixed case rewrites its
  bucket's two fragments and nothing else.
* **Crashes heal on the next run.** ``objects`` is written before ``cases``. A crash between the two,
  or inside ``write_rows`` (after it removed a key's files, before it wrote all partitions), leaves a
  case with no row, an old row with old checksums, or fewer ``objects`` rows than its ``n_objects``:
  each of these makes the next run re-ingest that case rather than skip it. Rows are never duplicated.
* ``BUCKETS`` is a constant: changing it would leave the old bucket fragments behind with their rows.

3D datasets keep one case per task and per-case fragments (``flows/ingest.py``).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from catalog.cards import CaseFiles, DatasetCard
from catalog.writer import read_fragment, write_rows
from tasks.ingest_case import CaseOutcome, ingest_case, is_current, source_checksums

BUCKETS = 64


def bucket_of(case_id: str) -> int:
    """The bucket of a case: a stable function of its id (not Python's per-process ``hash``)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % BUCKETS


def bucket_key(dataset: str, bucket: int) -> str:
    """The catalog fragment key of one bucket of a dataset."""
    return f"{dataset}/bucket-{bucket:03d}-of-{BUCKETS:03d}"


def group_by_bucket(cases: Iterable[CaseFiles]) -> dict[int, list[CaseFiles]]:
    """The cases of each non-empty bucket, buckets and cases in a stable order."""
    groups: dict[int, list[CaseFiles]] = defaultdict(list)
    for case in cases:
        groups[bucket_of(case.case_id)].append(case)
    return {b: sorted(groups[b], key=lambda c: c.case_id) for b in sorted(groups)}


def _previous(catalog: Path, key: str) -> tuple[dict[str, dict], list[dict]]:
    """The bucket's old ``cases`` rows by case id, and its old ``objects`` rows."""
    cases = {row["case_id"]: row for row in read_fragment(catalog, "cases", key)}
    return cases, read_fragment(catalog, "objects", key)


def ingest_batch(card: DatasetCard, key: str, cases: list[CaseFiles], store: Path, catalog: Path, run_id: str) -> list[dict[str, Any]]:
    """Ingest the cases of one bucket (skipping unchanged ones) and rewrite the bucket's fragments.

    Returns one ``{"case_id", "status", "reason"}`` per case; status is ok, skipped or quarantined.
    """
    old_cases, old_objects = _previous(catalog, key)
    object_counts = Counter(row["case_id"] for row in old_objects)
    statuses: list[dict[str, Any]] = []
    fresh: dict[str, CaseOutcome] = {}
    for case in cases:
        checksums = source_checksums(case)
        previous = old_cases.get(case.case_id)
        if is_current(previous, checksums, store, quick=True) and object_counts[case.case_id] == previous["n_objects"]:
            statuses.append({"case_id": case.case_id, "status": "skipped", "reason": None})
            continue
        outcome = ingest_case(card, case, store, run_id, checksums)
        fresh[case.case_id] = outcome
        statuses.append({"case_id": case.case_id, "status": outcome.case["status"], "reason": outcome.case["reason"]})
    if fresh:
        objects = [r for r in old_objects if r["case_id"] not in fresh]
        rows = [r for r in old_cases.values() if r["case_id"] not in fresh]
        write_rows(catalog, "objects", objects + [o for out in fresh.values() for o in out.objects], key)
        write_rows(catalog, "cases", rows + [out.case for out in fresh.values()], key)
    return statuses
