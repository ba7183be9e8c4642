"""The ingest flow: fetch a dataset's release, then Prefect tasks that write its cases into Zarr and the catalog.

3D datasets run one task per case; 2D datasets run one task per bucket of cases (``tasks/ingest_batch.py``
explains the buckets and their catalog fragments), so tens of thousands of images make at most
``BUCKETS`` task runs. Tasks receive case file references, never arrays. At most ``WORKERS`` tasks run
at once (Prefect's thread pool is otherwise unbounded: 64 threads each holding a 2048x2048 radiograph,
or hundreds each holding a CT volume, would only contend for the GIL and memory).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as pads
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from catalog.cards import CaseFiles, get_card
from catalog.user_cards import resolve_dataset
from catalog.writer import read_table, write_rows
from flows.runinfo import current_run_id, record_run
from tasks.fetch import FetchError, materialise
from tasks.ingest_batch import bucket_key, group_by_bucket, ingest_batch
from tasks.ingest_case import ingest_case, is_current, source_checksums
from tasks.settings import get_settings
from tasks.storage_errors import StorageError, writing
from tasks.store import sweep_staging


WORKERS = min(32, (os.cpu_count() or 1) + 4)  # the thread pool default of the standard library


@dataclass
class DatasetReport:
    """What ingest did to one dataset."""

    dataset: str
    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    tasks: int = 0  # Prefect task runs submitted for it
    error: str | None = None  # why the release could not be fetched or discovered
    storage_error: str | None = None  # a failed write of the store or catalog (the cases it hit stay for a re-run)


def dataset_row(card_id: str) -> list[dict]:
    """The ``datasets`` rows of a card: one per (modality, region) of its subsets."""
    card = get_card(card_id)
    access = card.source.kind
    seen = dict.fromkeys((s.modality, s.region) for s in card.subsets)
    return [{
        "dataset": card.id, "name": card.name, "dimensionality": card.dimensionality, "targets": card.targets,
        "license": card.license, "citation": card.citation, "access": access, "modality": m, "anatomy": r,
    } for m, r in seen]


def storage_status(what: str, exc: StorageError) -> dict:
    """The status of a case (or bucket) whose store or catalog write failed; nothing of it was recorded."""
    return {"case_id": what, "status": "storage_error", "reason": str(exc)}


@task(name="ingest-case", cache_policy=NO_CACHE, task_run_name="ingest {dataset_id}/{case.case_id}")
def ingest_case_task(dataset_id: str, case: CaseFiles, previous: dict | None, store: str, catalog: str, run_id: str) -> dict:
    """Ingest one case unless its source files are unchanged since a complete ingest."""
    checksums = source_checksums(case)
    if is_current(previous, checksums, Path(store)):
        return {"case_id": case.case_id, "status": "skipped"}
    key = f"{dataset_id}/{case.case_id}"
    try:
        outcome = ingest_case(get_card(dataset_id), case, Path(store), run_id, checksums)
        with writing(Path(catalog)):
            write_rows(Path(catalog), "objects", outcome.objects, key)
            write_rows(Path(catalog), "cases", [outcome.case], key)
    except StorageError as exc:  # returned, not raised: a full disk is a report line, not a task traceback
        return storage_status(case.case_id, exc)
    if not outcome.ok:
        get_run_logger().warning("quarantined %s: %s", key, outcome.case["reason"])
    return {"case_id": case.case_id, "status": outcome.case["status"], "reason": outcome.case["reason"]}


@task(name="ingest-batch", cache_policy=NO_CACHE, task_run_name="ingest {key}")
def ingest_batch_task(dataset_id: str, key: str, cases: list[CaseFiles], store: str, catalog: str, run_id: str) -> list[dict]:
    """Ingest one bucket of small cases, skipping those whose source files are unchanged."""
    try:
        with writing(Path(catalog)):  # the store's writes raise StorageError themselves
            statuses = ingest_batch(get_card(dataset_id), key, cases, Path(store), Path(catalog), run_id)
    except StorageError as exc:  # the bucket's fragments were not rewritten: its cases wait for a re-run
        return [storage_status(key, exc)]
    for status in statuses:
        if status["status"] == "quarantined":
            get_run_logger().warning("quarantined %s/%s: %s", dataset_id, status["case_id"], status["reason"])
    return statuses


def submit_cases(card_id: str, cases: list[CaseFiles], store: Path, catalog: Path, run_id: str) -> list:
    """Submit the dataset's tasks: one per bucket of cases for 2D datasets, one per case for 3D ones."""
    if get_card(card_id).dimensionality == 2:
        return [
            ingest_batch_task.submit(card_id, bucket_key(card_id, b), group, str(store), str(catalog), run_id)
            for b, group in group_by_bucket(cases).items()
        ]
    previous = previous_cases(catalog, card_id)
    return [
        ingest_case_task.submit(card_id, case, previous.get(case.case_id), str(store), str(catalog), run_id)
        for case in cases
    ]


def _statuses(result: dict | list[dict]) -> list[dict]:
    """A task's case statuses: a batch task returns a list of them, a case task one."""
    return result if isinstance(result, list) else [result]


def previous_cases(catalog: Path, dataset_id: str) -> dict[str, dict]:
    """The current ``cases`` rows of a dataset, by case id."""
    table = read_table(catalog, "cases", filter=pads.field("dataset") == dataset_id)
    return {row["case_id"]: row for row in table.to_pylist()}


@flow(name="ingest", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def ingest(datasets: list[str], source: str | None = None) -> list[DatasetReport]:
    """Ingest ``datasets`` (ids or YAML card paths); ``source`` is the user's copy of one release.

    A dataset whose release cannot be fetched or whose layout does not match its card is reported
    with the reason, and the other datasets go on.
    """
    settings = get_settings()
    store, catalog = settings.store_root, settings.catalog_root
    run_id, started = current_run_id(), dt.datetime.now(dt.UTC)
    if source is not None and len(datasets) != 1:
        raise ValueError("--source names one release: give exactly one dataset with it")
    reports = []
    for dataset_id in datasets:
        card = get_card(resolve_dataset(dataset_id))
        try:
            release = materialise(card, settings.cache_root, Path(source) if source else None)
            cases = list(card.discover(release.root))
        except (FetchError, OSError, ValueError) as exc:  # UnsafeArchive and layout errors included
            get_run_logger().error("%s: %s", card.id, exc)
            reports.append(DatasetReport(card.id, error=str(exc)))
            continue
        sweep_staging(store, card.id)
        futures = submit_cases(card.id, cases, store, catalog, run_id)
        write_rows(catalog, "datasets", dataset_row(card.id), card.id)
        report = DatasetReport(card.id, tasks=len(futures), quarantined=dict(release.problems))
        for result in (status for f in futures for status in _statuses(f.result())):
            if result["status"] == "ok":
                report.ingested.append(result["case_id"])
            elif result["status"] == "skipped":
                report.skipped.append(result["case_id"])
            elif result["status"] == "storage_error":
                report.storage_error = report.storage_error or result["reason"]
            else:
                report.quarantined[result["case_id"]] = result["reason"]
        reports.append(report)
    counts = {
        r.dataset: {"ingested": len(r.ingested), "skipped": len(r.skipped), "quarantined": len(r.quarantined),
                    "tasks": r.tasks, "error": r.error or r.storage_error}
        for r in reports
    }
    record_run(catalog, "ingest", run_id, started, {"datasets": datasets, "source": source}, counts)
    return reports
