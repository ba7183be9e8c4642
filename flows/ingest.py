"""The ingest flow: fetch a dataset's release, ingest its cases in Prefect tasks, commit their rows.

3D datasets run one task per case; 2D datasets one task per bucket of cases (``tasks/ingest_batch.py``),
so tens of thousands of images make at most ``BUCKETS`` task runs. Tasks receive case file references
and return typed rows; only this flow writes the catalog, in batches: a batch's ``objects`` and then
its ``cases`` rows replace whatever the catalog held for those cases (a crash between the two leaves
old or missing ``cases`` rows, which make the next run re-ingest those cases; rows never duplicate).
For 3D datasets the batch's ``volume_objects`` rows are replaced between the two, so they follow the
same rule. Unchanged 3D cases that lack ``volume_objects`` rows (a catalog older than that table)
get them from their stored masks, found with one catalog query per dataset.
At most ``WORKERS`` tasks run at once (Prefect's thread pool is otherwise unbounded: 64 threads each
holding a 2048x2048 radiograph, or hundreds each holding a CT volume, would only contend for the GIL
and memory).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from catalog import tables
from catalog.query import connect
from catalog.registry import get_card
from catalog.user_cards import resolve_dataset
from flows.artifacts import artifact_key, ingest_markdown, ingest_table, publish
from flows.progress import RunProgress
from flows.runinfo import current_run_id, start_run
from records.cards import CaseFiles
from records.rows import CaseRow, DatasetRow, ObjectRow, VolumeObjectRow
from tasks.fetch import FetchError, materialise, resolve_subsets
from tasks.ingest_batch import CaseStatus, backfill_volume_objects, group_by_bucket, ingest_batch
from tasks.ingest_case import CaseOutcome
from tasks.locations import Location, as_location
from tasks.settings import get_settings
from tasks.storage_errors import StorageError, writing
from tasks.store import sweep_staging

WORKERS = min(32, (os.cpu_count() or 1) + 4)  # the thread pool default of the standard library
COMMIT_CASES = 256  # cases per catalog commit (and at most COMMIT_S seconds between commits)
COMMIT_S = 30.0


@dataclass
class DatasetReport:
    """What ingest did to one dataset."""

    dataset: str
    planned: int = 0  # cases found in the release (those it could not pair included)
    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    tasks: int = 0  # Prefect task runs submitted for it
    error: str | None = None  # why the release could not be fetched or discovered
    storage_error: str | None = None  # a failed write of the store or catalog (the cases it hit stay for a re-run)
    volumes_backfilled: int = 0  # unchanged cases whose missing volume_objects rows came from the store


def dataset_rows(card_id: str) -> list[DatasetRow]:
    """The ``datasets`` rows of a card: one per (modality, region) of its subsets."""
    card = get_card(card_id)
    seen = dict.fromkeys((s.modality, s.region) for s in card.subsets)
    return [DatasetRow(
        dataset=card.id, name=card.name, dimensionality=card.dimensionality, targets=card.targets,
        license=card.license, citation=card.citation, access=card.source.kind, modality=m, anatomy=r,
    ) for m, r in seen]


@task(name="ingest-cases", cache_policy=NO_CACHE, task_run_name="ingest {dataset_id} ({label})")
def ingest_cases_task(
    dataset_id: str, label: str, cases: list[CaseFiles], previous: dict[str, CaseRow],
    object_counts: dict[str, int], store: str, run_id: str, quick: bool, missing_volumes: list[str],
) -> tuple[list[CaseStatus], list[CaseOutcome], dict[str, tuple[VolumeObjectRow, ...]]]:
    """Ingest cases (one 3D case, or a bucket of 2D ones), skipping those whose sources are unchanged;
    a skipped case named in ``missing_volumes`` gets its ``volume_objects`` rows from the store."""
    card = get_card(dataset_id)
    try:  # the store's writes raise StorageError themselves
        statuses, outcomes = ingest_batch(card, cases, as_location(store), previous, object_counts, run_id, quick)
        backfilled = backfill_volume_objects(card, statuses, previous, set(missing_volumes), as_location(store))
    except StorageError as exc:  # returned, not raised: a full disk is a report line, not a task traceback
        return [CaseStatus(label, "storage_error", str(exc))], [], {}
    for status in statuses:
        if status.status == "quarantined":
            get_run_logger().warning("quarantined %s/%s: %s", dataset_id, status.case_id, status.reason)
    return statuses, outcomes, backfilled


def previous_state(catalog: Location, dataset_id: str) -> tuple[dict[str, CaseRow], dict[str, int]]:
    """The dataset's current ``cases`` rows by case id, and its ``objects`` row count per case."""
    rows = tables.read(catalog, "cases", f"dataset = '{dataset_id}'").to_pylist()
    counts = connect(catalog).execute(
        "SELECT case_id, count(*) FROM objects WHERE dataset = ? GROUP BY case_id", [dataset_id]
    ).fetchall()
    return {r["case_id"]: CaseRow(**r) for r in rows}, dict(counts)


def missing_volume_objects(catalog: Location, dataset_id: str) -> set[str]:
    """The dataset's ``ok`` cases that have objects but no ``volume_objects`` rows (written before
    that table existed); one query for the whole dataset."""
    found = connect(catalog, ("cases", "volume_objects")).execute(
        "SELECT case_id FROM cases WHERE dataset = ? AND status = 'ok' AND n_objects > 0"
        " AND case_id NOT IN (SELECT case_id FROM volume_objects WHERE dataset = ?)", [dataset_id, dataset_id],
    ).fetchall()
    return {case_id for (case_id,) in found}


def submit_cases(card_id: str, cases: list[CaseFiles], store: Location, catalog: Location, run_id: str) -> list:
    """Submit the dataset's tasks: one per bucket of cases for 2D datasets, one per case for 3D ones."""
    previous, counts = previous_state(catalog, card_id)
    volumetric = get_card(card_id).dimensionality == 3
    missing = missing_volume_objects(catalog, card_id) if volumetric else set()

    def submit(label: str, group: list[CaseFiles], quick: bool):
        ids = {c.case_id for c in group}
        return ingest_cases_task.submit(
            card_id, label, group, {k: v for k, v in previous.items() if k in ids},
            {k: v for k, v in counts.items() if k in ids}, str(store), run_id, quick, sorted(missing & ids),
        )

    if not volumetric:
        return [submit(f"bucket {b}", group, True) for b, group in group_by_bucket(cases).items()]
    return [submit(case.case_id, [case], False) for case in cases]


def commit_outcomes(
    catalog: Location, dataset_id: str, outcomes: list[CaseOutcome],
    backfilled: dict[str, tuple[VolumeObjectRow, ...]] | None = None,
) -> None:
    """Make ``outcomes`` the catalog's rows of their cases: objects first, then (3D datasets) the
    volume_objects rows, then the cases rows; ``backfilled`` volume_objects rows of unchanged cases
    join the volume_objects commit.

    A failed write (a full disk) raises StorageError naming the catalog and its free space.
    """
    backfilled = backfilled or {}
    if not outcomes and not backfilled:
        return
    scope = {"dataset": [dataset_id], "case_id": [o.case.case_id for o in outcomes]}
    volume_scope = {"dataset": [dataset_id], "case_id": scope["case_id"] + list(backfilled)}
    volumes = [v for o in outcomes for v in o.volume_objects] + [v for rows in backfilled.values() for v in rows]
    with writing(catalog):
        if outcomes:
            tables.replace(catalog, [obj for o in outcomes for obj in o.objects], ObjectRow, scope)
        if get_card(dataset_id).dimensionality == 3:
            tables.replace(catalog, volumes, VolumeObjectRow, volume_scope)
        if outcomes:
            tables.replace(catalog, [o.case for o in outcomes], CaseRow, scope)


def _ingest_dataset(
    dataset_id: str, source: str | None, subsets: list[str] | None, store: Location, catalog: Location, run_id: str,
    progress: RunProgress,
) -> DatasetReport:
    settings = get_settings()
    card = get_card(resolve_dataset(dataset_id))
    try:
        chosen = resolve_subsets(card, subsets)
        release = materialise(card, settings.cache_root, Path(source) if source else None, chosen)
        cases = [c for c in card.discover(release.root) if chosen is None or c.subset in chosen]
    except (FetchError, OSError, ValueError) as exc:  # UnsafeArchive and layout errors included
        get_run_logger().error("%s: %s", card.id, exc)
        return DatasetReport(card.id, error=str(exc))
    sweep_staging(store, card.id)
    futures = submit_cases(card.id, cases, store, catalog, run_id)
    tables.replace(catalog, dataset_rows(card.id), DatasetRow, {"dataset": [card.id]})
    report = DatasetReport(card.id, planned=len(cases) + len(release.problems), tasks=len(futures),
                           quarantined=dict(release.problems))
    pending: list[CaseOutcome] = []
    backfilled: dict[str, tuple[VolumeObjectRow, ...]] = {}
    since = time.monotonic()
    progress.begin(card.id, len(cases), len(cases))
    try:
        for future in futures:
            statuses, outcomes, volumes = future.result()
            pending += outcomes
            backfilled |= volumes
            progress.advance(len(statuses), len(statuses), sum(len(o.objects) for o in outcomes))
            for status in statuses:
                if status.status == "ok":
                    report.ingested.append(status.case_id)
                elif status.status == "skipped":
                    report.skipped.append(status.case_id)
                elif status.status == "storage_error":
                    report.storage_error = report.storage_error or status.reason
                else:
                    report.quarantined[status.case_id] = status.reason
            if len(pending) + len(backfilled) >= COMMIT_CASES or time.monotonic() - since >= COMMIT_S:
                commit_outcomes(catalog, card.id, pending, backfilled)
                report.volumes_backfilled += len(backfilled)
                pending, backfilled, since = [], {}, time.monotonic()
    except StorageError as exc:  # those cases wait for a re-run; the run still records itself
        report.storage_error, pending, backfilled = str(exc), [], {}
    finally:
        try:
            commit_outcomes(catalog, card.id, pending, backfilled)
            report.volumes_backfilled += len(backfilled)
        except StorageError as exc:
            report.storage_error = str(exc)
    if report.volumes_backfilled:
        get_run_logger().info("%s: volume_objects rows of %d unchanged cases computed from their stored masks",
                              card.id, report.volumes_backfilled)
    return report


@flow(name="ingest", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def ingest(datasets: list[str], source: str | None = None, subsets: list[str] | None = None) -> list[DatasetReport]:
    """Ingest ``datasets`` (ids or YAML card paths); ``source`` is the user's copy of one release;
    ``subsets`` (``--subset`` values) limits the ingest to those subsets (and fetches only them).

    A dataset whose release cannot be fetched or whose layout does not match its card is reported
    with the reason, and the other datasets go on.
    """
    settings = get_settings()
    store, catalog = settings.store_root, settings.catalog_root
    if source is not None and len(datasets) != 1:
        raise ValueError("--source names one release: give exactly one dataset with it")
    record = start_run(catalog, "ingest", current_run_id(), {"datasets": datasets, "source": source, "subsets": subsets})
    reports: list[DatasetReport] = []
    status = "failed"
    progress = RunProgress(artifact_key("samatlas-ingest-progress"), "ingest: share of datasets done",
                           stages=len(datasets), unit_name="cases", work_name="cases", rows_name="objects")
    try:
        with progress:
            for dataset_id in datasets:
                reports.append(_ingest_dataset(dataset_id, source, subsets, store, catalog, record.row.run_id, progress))
                progress.end()
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record.finish(status, {
            r.dataset: {"ingested": len(r.ingested), "skipped": len(r.skipped), "quarantined": len(r.quarantined),
                        "tasks": r.tasks, "error": r.error or r.storage_error}
            for r in reports
        })
        if status != "interrupted":  # a failed run shows what it did too
            publish(artifact_key("samatlas-ingest"), ingest_markdown(reports, status), ingest_table(reports),
                    f"ingest {', '.join(datasets)} ({status})")
    return reports
