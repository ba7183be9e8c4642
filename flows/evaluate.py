"""The evaluate flow: plan the missing result keys, fan units out over Dask, commit rows in batches.

Workers return their rows; only this flow writes the catalog. Rows are committed in batches
(``SAMATLAS_COMMIT_ROWS`` rows or ``SAMATLAS_COMMIT_S`` seconds, and whatever is left when the run
ends, fails or is interrupted) with a keyed insert, so a retried unit, an overlapping run or a re-run after a kill adds
no key twice, and each batch is one atomic commit. Image-level ``instances`` rows (micro-sam's mSA,
for specs that score instances) travel with their units' result rows and are committed just before
them, so a slice whose results are in the catalog has its instance rows too. Volumetric specs
(``tasks.protocols.volumetric``) plan one unit per 3D case (``flows.plan.plan_volume_units``); their
``volume_steps`` rows travel and commit the same way, and their predicted label volumes are stored in
the case by the worker before its rows come back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil
import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from catalog import tables
from catalog.query import connect
from catalog.registry import REGISTRY, get_card
from flows.artifacts import Headline, artifact_key, evaluate_markdown, evaluate_table, publish
from flows.cluster import unit_resources, unit_threads
from flows.plan import DatasetPlan, Plan, WorkUnit, plan_units, plan_volume_units, unit_objects, unit_volumes
from flows.progress import RunProgress
from flows.runinfo import code_version, current_run_id, start_run
from flows.timeouts import results_within
from flows.unit_cost import ModelSpeed, model_speed
from records.rows import VOLUME, InstanceRow, ResultRow, VolumeStepRow, to_table
from tasks.evaluate_unit import PlannedSpec, RunStamp, run_unit
from tasks.evaluate_volume import run_volume_unit
from tasks.intensity import parse_window
from tasks.locations import Location, as_location
from tasks.metrics import convention
from tasks.models import VIDEO_MODELS, no_video_mode, worker_model
from tasks.models.identity import CACHE_NAME, model_sha256
from tasks.models.weights import CheckpointError
from tasks.protocols import PROTOCOLS, AnyProtocol, VolumeProtocol, get_protocol, is_volumetric
from tasks.settings import get_settings
from tasks.storage_errors import writing


@dataclass
class EvaluateReport:
    """What a run planned and computed."""

    model: str
    model_sha256: str
    plan: list[DatasetPlan]
    units: int
    objects: int
    slices: int
    rows: int = 0  # rows the workers returned
    committed: int = 0  # rows this run added (keys another run added first are not counted)
    instance_rows: int = 0  # image-level rows (mSA ...) this run added
    encoder_calls: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    units_done: dict[str, int] = field(default_factory=dict)  # by dataset
    dataset_rows: dict[str, int] = field(default_factory=dict)  # rows the workers returned, by dataset
    first_unit_after_s: float | None = None  # from the flow process's start to a worker's first unit work


@dataclass(frozen=True)
class UnitOutput:
    """What a unit task returns: its result, image-level and volume-step rows, its encoder calls, and
    when (epoch seconds) its work began, the model built: the run's cold start ends at the first."""

    rows: pa.Table
    instances: pa.Table
    steps: pa.Table
    encoder_calls: int
    started_at: float


def build_protocols(names: list[str], options: dict[str, int | str] | None = None) -> dict[str, AnyProtocol]:
    """Protocol instances by the names the user gave, each taking the options it accepts."""
    return {name: get_protocol(name, **(options or {})) for name in dict.fromkeys(names)}


def flat_datasets_skipped(datasets: list[str], protocol_names: list[str]) -> str | None:
    """Refuse (ValueError) volumetric protocols asked only of 2D datasets, which have no volume objects,
    naming the slice-wise protocols that apply; when some protocols are slice-wise, return a note
    that the volumetric ones skip the 2D datasets (None when nothing is skipped)."""
    names = list(dict.fromkeys(protocol_names))
    volumetric = [p for p in names if p in PROTOCOLS and issubclass(PROTOCOLS[p], VolumeProtocol)]
    flat = [d for d in datasets if d in REGISTRY and get_card(d).dimensionality == 2]
    if not volumetric or not flat:
        return None
    if len(volumetric) < len(names):
        return f"{', '.join(volumetric)} skip the 2D datasets {', '.join(flat)}"
    slicewise = [p for p, cls in PROTOCOLS.items() if not issubclass(cls, VolumeProtocol)]
    raise ValueError(
        f"{', '.join(volumetric)}: volumetric protocols prompt one object through a 3D case, and "
        f"{', '.join(flat)} {'is' if len(flat) == 1 else 'are'} 2D; use a slice-wise protocol there: {', '.join(slicewise)}"
    )


def check_video_protocols(model: str, protocol_names: list[str], bf16: bool = False) -> None:
    """Refuse (ValueError) protocols that propagate with SAM 2's video memory for a model without a
    video mode, before anything is planned, naming the models that have one; and for bf16, which
    only the image encoder runs in (the video mode is float32), so that no fp32 rows carry bf16's key."""
    needing = [p for p in dict.fromkeys(protocol_names) if p in PROTOCOLS and getattr(PROTOCOLS[p], "needs_video", False)]
    if needing and model not in VIDEO_MODELS:
        raise ValueError(no_video_mode(model, needing))
    if needing and bf16:
        raise ValueError(f"{', '.join(needing)}: SAM 2's video mode runs in float32; evaluate them without --bf16")


@dataclass(frozen=True)
class RunOptions:
    """Options of a run that change every spec: the metric convention (a ``tasks.metrics`` preset
    name) and an intensity window replacing each case's stored one (``NAME`` or ``L,W``)."""

    metrics: str | None = None
    window: str | None = None

    def scoring(self) -> dict | None:
        return None if self.metrics is None else convention(self.metrics).to_params()

    def window_bounds(self) -> tuple[float, float] | None:
        return None if self.window is None else parse_window(self.window)


def planned_specs(protocols: dict[str, AnyProtocol], run: RunOptions = RunOptions()) -> dict[str, PlannedSpec]:
    """Every spec the protocols record (under the run's convention and window), by spec id."""
    scoring, window = run.scoring(), run.window_bounds()
    return {
        spec.id: PlannedSpec(spec, protocol)
        for protocol in protocols.values()
        for spec in (s.with_run_options(scoring, window) for s in protocol.specs)
    }


@task(name="evaluate-unit", cache_policy=NO_CACHE, task_run_name="evaluate {unit.dataset}/{unit.case_id}")
def evaluate_unit_task(
    unit: WorkUnit, model_name: str, checkpoint: str | None, device: str, protocol_names: list[str],
    options: dict[str, int | str], catalog: str, run_id: str, torch_threads: int, run: RunOptions = RunOptions(),
    store_steps: str = "first-final", bf16: bool = False,
) -> UnitOutput:
    """Evaluate one unit's missing (object, spec) pairs."""
    model = worker_model(model_name, checkpoint, device, torch_threads, bf16)
    started_at = time.time()
    specs = planned_specs(build_protocols(protocol_names, options), run)
    stamp, wanted = RunStamp(run_id, code_version()), [p.spec for p in specs.values()]
    if unit.scope == VOLUME:
        volumes = unit_volumes(as_location(catalog), unit, model.name, model.sha256, wanted)
        done = run_volume_unit(as_location(unit.zarr_path), unit.dataset, unit.case_id, volumes, model, specs, stamp,
                               run.window_bounds(), store_steps)
        return UnitOutput(to_table(done.rows, ResultRow), InstanceRow.SCHEMA.empty_table(),
                          to_table(done.steps, VolumeStepRow), done.encoder_calls, started_at)
    objects = unit_objects(as_location(catalog), unit, model.name, model.sha256, wanted)
    result = run_unit(as_location(unit.zarr_path), unit.dataset, unit.case_id, objects, model, specs, stamp,
                      run.window_bounds())
    return UnitOutput(to_table(result.rows, ResultRow), to_table(result.instances, InstanceRow),
                      VolumeStepRow.SCHEMA.empty_table(), result.encoder_calls, started_at)


def model_identity(model: str, checkpoint: str | None, bf16: bool = False) -> str:
    """The sha256 that identifies the model's weights and precision (decides what re-evaluation
    recomputes), read from the checkpoint file: only workers build the model."""
    return model_sha256(model, checkpoint, get_settings().cache_root / CACHE_NAME, bf16)


def plan_run(
    catalog: Location, model: str, checkpoint: str | None, specs: dict[str, PlannedSpec], datasets: list[str] | None,
    cases: list[str] | None, max_slices_per_case: int, device: str, bf16: bool = False,
) -> tuple[str, Plan, ModelSpeed]:
    """The model's identity, the units of every missing result key (volume units last) and the model
    speed they were sized by. The flow plans with it; ``samatlas evaluate`` asks it first whether
    there is work, to start its cluster at once only then."""
    sha256 = model_identity(model, checkpoint, bf16)
    slice_specs = [p.spec for p in specs.values() if not is_volumetric(p.protocol)]
    volume_specs = [p.spec for p in specs.values() if is_volumetric(p.protocol)]
    plan = plan_volume_units(catalog, model, sha256, volume_specs, datasets or (), cases or ())
    speed = model_speed(model, device)
    if slice_specs:
        plan = plan_units(catalog, model, sha256, slice_specs, datasets or (), cases or (), max_slices_per_case,
                          speed) + plan
    return sha256, plan, speed


class ResultBuffer:
    """Rows waiting to be committed; committed when large or old enough, and on ``flush``."""

    def __init__(self, catalog: Location, rows: int, seconds: float) -> None:
        self.catalog, self.max_rows, self.max_s = catalog, rows, seconds
        self.pending: list[pa.Table] = []
        self.pending_instances: list[pa.Table] = []
        self.pending_steps: list[pa.Table] = []
        self.since = time.monotonic()
        self.committed = 0
        self.committed_instances = 0

    def add(self, table: pa.Table, instances: pa.Table | None = None, steps: pa.Table | None = None) -> None:
        """Queue ``table`` (and its unit's instance and volume-step rows); commit if the queue is big or old enough."""
        self.pending.append(table)
        if instances is not None and instances.num_rows:
            self.pending_instances.append(instances)
        if steps is not None and steps.num_rows:
            self.pending_steps.append(steps)
        if sum(t.num_rows for t in self.pending) >= self.max_rows or time.monotonic() - self.since >= self.max_s:
            self.flush()

    def flush(self) -> None:
        """Commit every queued row (keys already in the catalog are skipped), instance and volume-step
        rows first: a kill between the commits leaves results missing, which the next run recomputes."""
        with writing(self.catalog):  # a full disk is a StorageError naming the catalog and its free space
            if self.pending_instances:
                self.committed_instances += tables.insert_missing(
                    self.catalog, pa.concat_tables(self.pending_instances), InstanceRow)
            if self.pending_steps:
                tables.insert_missing(self.catalog, pa.concat_tables(self.pending_steps), VolumeStepRow)
            if self.pending:
                self.committed += tables.insert_missing(self.catalog, pa.concat_tables(self.pending), ResultRow)
        self.pending, self.pending_instances, self.pending_steps = [], [], []
        self.since = time.monotonic()


def _log_plan(plan: Plan, speed: ModelSpeed, device: str) -> None:
    logger = get_run_logger()
    sliced = [u for u in plan.units if u.cost_s > 0]
    if sliced:
        logger.info("slice work of about %.0f s on one %s worker, in %d units (%s: %.3g s per encoder pass, %.3g s per prompt)",
                    sum(u.cost_s for u in sliced), device, len(sliced), speed.source, speed.encode_s, speed.prompt_s)
    for d in plan.datasets:
        logger.info(
            "%s: %d units, %d objects on %d slices (%d encoder calls) to compute; %d of %d object-spec pairs already done",
            d.dataset, d.units, d.objects, d.slices, d.encoder_calls, d.pairs_done, d.pairs_done + d.pairs_missing,
        )


def headline(catalog: Location, run_id: str) -> list[Headline]:
    """The Dice of the result rows ``run_id`` wrote, by dataset, target, protocol and step."""
    rows = connect(catalog).execute("""
        SELECT dataset, target, protocol, step, count(*), avg(dice), median(dice) FROM results
        WHERE run_id = ? GROUP BY ALL ORDER BY ALL""", [run_id]).fetchall()
    return [Headline(*row) for row in rows]


def publish_report(catalog: Location, report: EvaluateReport, run_id: str, status: str) -> None:
    """Publish the run's summary, counts and Dice headline as Prefect artifacts (keyed by model)."""
    publish(artifact_key("samatlas-evaluate", report.model),
            evaluate_markdown(report, headline(catalog, run_id), status), evaluate_table(report),
            f"evaluate {report.model} ({status})")


@flow(name="evaluate", log_prints=True)
def evaluate(
    model: str = "litemedsam", checkpoint: str | None = None, protocols: list[str] | None = None,
    datasets: list[str] | None = None, cases: list[str] | None = None, options: dict[str, int | str] | None = None,
    max_slices_per_case: int = 0, device: str = "cpu", n_workers: int = 1, dry_run: bool = False,
    metrics: str | None = None, window: str | None = None, store_steps: str = "first-final", bf16: bool = False,
) -> EvaluateReport:
    """Evaluate ``model`` under ``protocols`` on every planned object whose result keys are missing.

    Volumetric protocols plan over the 3D cases' volume objects; ``store_steps`` says which of their
    steps' predicted volumes are stored in the cases (first-final, all or none). ``bf16`` runs the
    model's encoder under CUDA bf16 autocast, its rows keyed apart from fp32's.
    """
    settings = get_settings()
    catalog = settings.catalog_root
    protocol_names = protocols or ["medsam-box"]
    if datasets:
        flat_datasets_skipped(datasets, protocol_names)  # only volumetric protocols on 2D datasets: refused
    check_video_protocols(model, protocol_names, bf16)
    run = RunOptions(metrics, window)
    specs = planned_specs(build_protocols(protocol_names, options), run)
    sha256, plan, speed = plan_run(catalog, model, checkpoint, specs, datasets, cases, max_slices_per_case, device, bf16)
    report = EvaluateReport(model, sha256, plan.datasets, len(plan.units), sum(u.objects for u in plan.units),
                            sum(len(u.slices) for u in plan.units))
    _log_plan(plan, speed, device)
    run_id = current_run_id()
    if dry_run or not plan.units:
        if not dry_run:
            publish_report(catalog, report, run_id, "nothing to compute")
        return report
    logger = get_run_logger()
    record = start_run(catalog, "evaluate", run_id, {
        "model": model, "checkpoint": checkpoint, "protocols": protocol_names, "datasets": datasets,
        "cases": cases, "options": options, "max_slices_per_case": max_slices_per_case, "device": device,
        "bf16": bf16,
        "metrics": metrics, "window": window, "store_steps": store_steps,
        "specs": {s.spec.id: s.spec.label for s in specs.values()},
    })
    buffer, status = ResultBuffer(catalog, settings.commit_rows, settings.commit_s), "failed"
    threads = unit_threads(n_workers)
    largest_first = sorted(plan.units, key=lambda u: -len(u.slices))  # long units start early
    first_unit_at = float("inf")
    progress = RunProgress(artifact_key("samatlas-evaluate", model, "progress"), f"evaluate {model}: share of planned slices done")
    try:
        with unit_resources(device):  # on CUDA a worker runs one unit at a time on its GPU
            futures = {
                evaluate_unit_task.submit(unit, model, checkpoint, device, protocol_names, options, str(catalog), run_id,
                                          threads, run, store_steps, bf16):
                unit for unit in largest_first
            }
        with progress:
            progress.begin(model, len(futures), report.slices)
            for finished, (future, done) in enumerate(results_within(futures, settings.unit_timeout_s, paused_limit_s=settings.paused_limit_s), start=1):
                unit = futures[future]
                if isinstance(done, CheckpointError):  # every unit would fail alike: the run stops here
                    raise done
                if isinstance(done, BaseException):  # a bad unit is reported; the others go on
                    report.failed[unit.name] = f"{type(done).__name__}: {done}"
                    logger.error("unit %s failed: %s", unit.name, report.failed[unit.name])
                    progress.advance(work=len(unit.slices))
                    continue
                rows = done.rows
                buffer.add(rows, done.instances, done.steps)
                report.rows += rows.num_rows
                report.encoder_calls += done.encoder_calls
                first_unit_at = min(first_unit_at, done.started_at)
                report.units_done[unit.dataset] = report.units_done.get(unit.dataset, 0) + 1
                report.dataset_rows[unit.dataset] = report.dataset_rows.get(unit.dataset, 0) + rows.num_rows
                progress.advance(work=len(unit.slices), rows=rows.num_rows)
                logger.info("%d/%d units done (%s: %d rows)", finished, len(futures), unit.name, rows.num_rows)
            progress.end()
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        buffer.flush()
        report.committed = buffer.committed
        report.instance_rows = buffer.committed_instances
        if first_unit_at < float("inf"):
            report.first_unit_after_s = round(first_unit_at - psutil.Process().create_time(), 2)
            logger.info("cold start: the first unit began %.1f s after the process started", report.first_unit_after_s)
        record.finish(status, {
            "units": report.units, "objects": report.objects, "rows": report.rows, "committed": report.committed,
            "instance_rows": report.instance_rows,
            "encoder_calls": report.encoder_calls, "distinct_slices": report.slices, "failed": report.failed,
            "first_unit_after_s": report.first_unit_after_s,
        })
        if status != "interrupted":  # a failed run shows what it did too
            publish_report(catalog, report, run_id, status)
    return report
