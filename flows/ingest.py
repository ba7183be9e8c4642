"""The ingest flow: fetch a dataset's release, then one Prefect task per case into Zarr and the catalog."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as pads
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from catalog.cards import CaseFiles, all_cards, get_card
from catalog.writer import read_table, write_rows
from flows.runinfo import current_run_id, record_run
from tasks.fetch import materialise
from tasks.ingest_case import ingest_case, is_current, source_checksums
from tasks.settings import get_settings
from tasks.store import sweep_staging


@dataclass
class DatasetReport:
    """What ingest did to one dataset."""

    dataset: str
    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)


def dataset_row(card_id: str) -> list[dict]:
    """The ``datasets`` rows of a card: one per (modality, region) of its subsets."""
    card = get_card(card_id)
    access = card.source.kind
    seen = dict.fromkeys((s.modality, s.region) for s in card.subsets)
    return [{
        "dataset": card.id, "name": card.name, "dimensionality": card.dimensionality, "targets": card.targets,
        "license": card.license, "citation": card.citation, "access": access, "modality": m, "anatomy": r,
    } for m, r in seen]


@task(name="ingest-case", cache_policy=NO_CACHE, task_run_name="ingest {dataset_id}/{case.case_id}")
def ingest_case_task(dataset_id: str, case: CaseFiles, previous: dict | None, store: str, catalog: str, run_id: str) -> dict:
    """Ingest one case unless its source files are unchanged since a complete ingest."""
    checksums = source_checksums(case)
    if is_current(previous, checksums, Path(store)):
        return {"case_id": case.case_id, "status": "skipped"}
    outcome = ingest_case(get_card(dataset_id), case, Path(store), run_id, checksums)
    key = f"{dataset_id}/{case.case_id}"
    write_rows(Path(catalog), "objects", outcome.objects, key)
    write_rows(Path(catalog), "cases", [outcome.case], key)
    if not outcome.ok:
        get_run_logger().warning("quarantined %s: %s", key, outcome.case["reason"])
    return {"case_id": case.case_id, "status": outcome.case["status"], "reason": outcome.case["reason"]}


def previous_cases(catalog: Path, dataset_id: str) -> dict[str, dict]:
    """The current ``cases`` rows of a dataset, by case id."""
    table = read_table(catalog, "cases", filter=pads.field("dataset") == dataset_id)
    return {row["case_id"]: row for row in table.to_pylist()}


@flow(name="ingest", log_prints=True)
def ingest(datasets: list[str], source: str | None = None) -> list[DatasetReport]:
    """Ingest ``datasets`` (ids) from their releases; ``source`` is the user's copy of one release."""
    settings = get_settings()
    store, catalog = settings.store_root, settings.catalog_root
    run_id, started = current_run_id(), dt.datetime.now(dt.UTC)
    if source is not None and len(datasets) != 1:
        raise ValueError("--source names one release: give exactly one dataset with it")
    reports = []
    for dataset_id in datasets:
        card = get_card(dataset_id)
        root = materialise(card, settings.cache_root, Path(source) if source else None)
        sweep_staging(store, card.id)
        previous = previous_cases(catalog, card.id)
        cases = list(card.discover(root))
        futures = [
            ingest_case_task.submit(card.id, case, previous.get(case.case_id), str(store), str(catalog), run_id)
            for case in cases
        ]
        write_rows(catalog, "datasets", dataset_row(card.id), card.id)
        report = DatasetReport(card.id)
        for result in (f.result() for f in futures):
            if result["status"] == "ok":
                report.ingested.append(result["case_id"])
            elif result["status"] == "skipped":
                report.skipped.append(result["case_id"])
            else:
                report.quarantined[result["case_id"]] = result["reason"]
        reports.append(report)
    counts = {r.dataset: {"ingested": len(r.ingested), "skipped": len(r.skipped), "quarantined": len(r.quarantined)} for r in reports}
    record_run(catalog, "ingest", run_id, started, {"datasets": datasets, "source": source}, counts)
    return reports


def known_dataset_ids() -> list[str]:
    """Every registered dataset id."""
    return [c.id for c in all_cards()]
