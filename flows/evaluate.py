"""The evaluate flow: plan the missing work, fan one task per case out over Dask, write result fragments."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from catalog.writer import write_rows
from flows.cluster import unit_resources
from flows.plan import WorkUnit, plan_units
from flows.runinfo import code_version, current_run_id, record_run
from flows.timeouts import results_within
from tasks.evaluate_unit import run_unit
from tasks.models import load_model
from tasks.protocols import PromptProtocol, get_protocol
from tasks.settings import get_settings


@dataclass
class EvaluateReport:
    """What a run planned and computed."""

    model: str
    model_sha256: str
    units: int
    objects: int
    slices: int
    rows: int = 0
    encoder_calls: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def build_protocols(names: list[str], options: dict[str, int] | None = None) -> dict[str, PromptProtocol]:
    """Protocol instances by the names the user gave, each taking the options it accepts."""
    return {name: get_protocol(name, **(options or {})) for name in dict.fromkeys(names)}


def recorded_names(protocols: dict[str, PromptProtocol]) -> list[str]:
    """Every protocol name the protocols' rows carry (variants and options included)."""
    return sorted(name for protocol in protocols.values() for name in protocol.names)


@task(name="evaluate-unit", cache_policy=NO_CACHE, task_run_name="evaluate {unit.dataset}/{unit.case_id}")
def evaluate_unit_task(
    unit: WorkUnit, model_name: str, checkpoint: str | None, device: str, protocol_names: list[str],
    options: dict[str, int], catalog: str, run_id: str, torch_threads: int,
) -> dict:
    """Evaluate one case's planned objects and write them as one results fragment per partition."""
    import torch

    torch.set_num_threads(torch_threads)
    model = load_model(model_name, checkpoint, device)
    protocols = build_protocols(protocol_names, options)
    result = run_unit(Path(unit.zarr_path), unit.dataset, unit.case_id, unit.objects, model, protocols)
    version = code_version()
    for row in result.rows:
        row.update(run_id=run_id, code_version=version)
    write_rows(Path(catalog), "results", result.rows, unit.key(model.name, model.sha256, recorded_names(protocols)))
    return {"rows": len(result.rows), "encoder_calls": result.encoder_calls}


def model_identity(model: str, checkpoint: str | None) -> str:
    """The sha256 that identifies the model's weights (decides what re-evaluation recomputes)."""
    return load_model(model, checkpoint, "cpu").sha256


@flow(name="evaluate", log_prints=True)
def evaluate(
    model: str = "litemedsam", checkpoint: str | None = None, protocols: list[str] | None = None,
    datasets: list[str] | None = None, cases: list[str] | None = None, options: dict[str, int] | None = None,
    max_slices_per_case: int = 0, device: str = "cpu", n_workers: int = 1, dry_run: bool = False,
) -> EvaluateReport:
    """Evaluate ``model`` under ``protocols`` on every planned object not yet in ``results``."""
    settings = get_settings()
    catalog = settings.catalog_root
    protocol_names = protocols or ["medsam-box"]
    run_id, started = current_run_id(), dt.datetime.now(dt.UTC)
    sha256 = model_identity(model, checkpoint)
    units = plan_units(catalog, model, sha256, build_protocols(protocol_names, options), datasets or (),
                       cases or (), max_slices_per_case)
    report = EvaluateReport(model, sha256, len(units), sum(len(u.objects) for u in units), sum(u.slices for u in units))
    logger = get_run_logger()
    logger.info("planned %d units, %d objects on %d slices", report.units, report.objects, report.slices)
    if dry_run or not units:
        return report
    threads = max(1, (os.cpu_count() or 1) // max(n_workers, 1))  # no oversubscription of the cores
    # GPU workers advertise GPU=1, so each runs one unit at a time on its device.
    largest_first = sorted(units, key=lambda u: -u.slices)  # long units start early: better load balance
    with unit_resources(device):  # on CUDA a worker runs one unit at a time on its GPU
        futures = {
            evaluate_unit_task.submit(unit, model, checkpoint, device, protocol_names, options, str(catalog), run_id, threads):
            f"{unit.dataset}/{unit.case_id}" for unit in largest_first
        }
    for finished, (future, done) in enumerate(results_within(futures, settings.unit_timeout_s), start=1):
        if isinstance(done, BaseException):  # a bad unit is reported; the others go on
            report.failed[futures[future]] = f"{type(done).__name__}: {done}"
            logger.error("unit %s failed: %s", futures[future], report.failed[futures[future]])
            continue
        report.rows += done["rows"]
        report.encoder_calls += done["encoder_calls"]
        logger.info("%d/%d units done (%s: %d rows)", finished, len(futures), futures[future], done["rows"])
    record_run(catalog, "evaluate", run_id, started,
               {"model": model, "checkpoint": checkpoint, "protocols": protocol_names, "datasets": datasets,
                "cases": cases, "options": options, "max_slices_per_case": max_slices_per_case, "device": device},
               {"units": report.units, "objects": report.objects, "rows": report.rows,
                "encoder_calls": report.encoder_calls, "distinct_slices": report.slices, "failed": report.failed})
    return report
