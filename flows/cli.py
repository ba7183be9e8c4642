"""The ``samatlas`` command line."""

from __future__ import annotations

import atexit
import functools
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import duckdb
import typer
from rich.console import Console

from catalog.registry import UnknownDataset, get_card
from catalog.query import (
    INSTANCE_SUMMARY_SQL, NAMED_SUMMARIES, SUMMARY_KEYS, QueryLimits, QueryRefused, connect, summary_sql, user_query,
)
from catalog.user_cards import register_folder, resolve_dataset
from flows.output import Format, emit
from tasks.fetch import FetchError, check_obtainable, materialise, resolve_subsets
from tasks.model_plugins import plugin_names
from tasks.process_exit import end_process
from tasks.settings import get_settings

if TYPE_CHECKING:
    from tasks.evaluate_unit import PlannedSpec

app = typer.Typer(help="Where does Segment Anything work in medicine, and where does it fail?", no_args_is_help=True)
catalog_app = typer.Typer(help="Query the Parquet catalog (read-only).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
err = Console(stderr=True)

FormatOpt = Annotated[Format, typer.Option("--format", help="table, csv or json")]
# The installed model plugins' names, from package metadata (no plugin is imported: help stays cheap).
MODEL_HELP = "litemedsam, filled-box, sam_vit_b|l|h, medsam_vit_b, sam2.1_hiera_t|s|b+|l, medsam2" + (
    f"; plugins: {', '.join(plugin_names())}" if plugin_names() else "") + " (see `samatlas models`)"

PROTOCOL_HELP = (
    "protocol name (repeatable). Slice-wise: medsam-box, medsam-box-jitter, mazurowski, microsam, "
    "microsam-iterative, sammed2d, sammed2d-iter; volumetric (3D datasets): cvpr24-box3d, cvpr25-interactive, "
    "radioactive-propagation, radioactive-interpolation, slicewise-box3d; "
    "video (SAM 2 models, 3D datasets): sam2-propagation, sam2-propagation-point, cvpr25-interactive-sam2"
)  # a test checks it names every protocol in tasks.protocols.PROTOCOLS


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as an error and exit without a traceback."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


SubsetOpt = Annotated[Optional[list[str]], typer.Option(
    "--subset", help="a subset (repeatable; 'all' for every one), e.g. msd's Task04_Hippocampus; needs one dataset")]


def one_dataset_for(option: str, datasets: list[str]) -> None:
    """Stop unless exactly one dataset is given, since ``option`` describes one dataset's release."""
    if len(datasets) != 1:
        fail(f"{option} names one dataset's release: give exactly one dataset with it")


@app.command()
def fetch(
    datasets: Annotated[list[str], typer.Argument(help="dataset ids or YAML card paths")],
    subset: SubsetOpt = None,
) -> None:
    """Download and unpack datasets' releases into the cache (no ingest)."""
    cache = get_settings().cache_root
    if subset:
        one_dataset_for("--subset", datasets)
    for dataset_id in datasets:
        try:
            card = get_card(resolve_dataset(dataset_id))
            check_obtainable(card, cache, as_given=dataset_id)
            release = materialise(card, cache, subsets=resolve_subsets(card, subset))
        except (UnknownDataset, FetchError, ValueError) as exc:
            fail(str(exc).strip("'\""))
        err.print(f"{dataset_id}: release ready at {release.root}")
        for name, reason in release.problems.items():
            err.print(f"  [yellow]skipped[/] {name}: {reason}")


@app.command()
def datasets(
    modality: Annotated[Optional[str], typer.Option(help="only datasets with this modality (ct, mr, us, ...)")] = None,
    anatomy: Annotated[Optional[str], typer.Option(help="only datasets with this anatomy region or target anatomy")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The dataset registry: what samatlas can ingest, and how each release is obtained."""
    from catalog.listing import COLUMNS, registry_rows

    try:
        register_folder()
    except ValueError as exc:
        fail(str(exc))
    emit(COLUMNS, registry_rows(modality, anatomy), fmt, title="samatlas datasets")


@app.command()
def models(fmt: FormatOpt = Format.table) -> None:
    """The models: built-in ones and installed plugins (entry point group samatlas.models), with each
    plugin's package, version and status (ok, or broken with its reason)."""
    from tasks.models.listing import COLUMNS, listing_rows

    emit(COLUMNS, listing_rows(), fmt, title="samatlas models")


@app.command()
def ingest(
    datasets: Annotated[list[str], typer.Argument(help="dataset ids, or paths of YAML cards (see examples/)")],
    source: Annotated[Optional[Path], typer.Option(help="the official release as a folder or archive")] = None,
    subset: SubsetOpt = None,
) -> None:
    """Ingest datasets into the Zarr store and the catalog; bad cases are quarantined, not fatal.

    Exits 1 when a dataset could not be ingested or none of its cases could (all quarantined).
    """
    from flows.interrupt import exit_on_interrupt
    from flows.server import launched_prefect_api
    from tasks.storage_errors import StorageError

    for option, given in (("--source", source), ("--subset", subset)):
        if given:
            one_dataset_for(option, datasets)
    try:
        ids = [resolve_dataset(d) for d in datasets]
        for dataset_id, as_given in zip(ids, datasets):
            card = get_card(dataset_id)
            check_obtainable(card, get_settings().cache_root, source, as_given=as_given)
            resolve_subsets(card, subset)  # an unknown subset fails here, before the server starts
        kept = "cases ingested so far are kept; run the same command again to ingest the rest"
        with launched_prefect_api() as api:  # a temporary server starts while the flow's modules import
            from flows.ingest import ingest as ingest_flow

            with exit_on_interrupt(kept):
                api.ready()
                reports = ingest_flow(ids, str(source) if source else None, subset)
    except StorageError as exc:
        fail(f"storage error: {exc}", code=1)
    except (UnknownDataset, FetchError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    for r in reports:
        if r.error:
            err.print(f"[bold red]{r.dataset}: not ingested:[/] {r.error}")
            continue
        err.print(f"{r.dataset}: {len(r.ingested)} ingested, {len(r.skipped)} unchanged, {len(r.quarantined)} quarantined")
        for case_id, reason in r.quarantined.items():
            err.print(f"  [yellow]quarantined[/] {case_id}: {reason}")
        if r.storage_error:
            err.print(f"  [bold red]storage error:[/] {r.storage_error}; free space and run again to ingest the rest")
    unusable = [r.dataset for r in reports if not r.error and not r.storage_error and not r.ingested and not r.skipped]
    for dataset_id in unusable:
        err.print(f"[bold red]{dataset_id}: no case could be ingested[/] (see the reasons above)")
    if unusable or any(r.error or r.storage_error for r in reports):
        raise typer.Exit(1)


def check_evaluable(datasets: list[str]) -> None:
    """Stop unless every ``--dataset`` is the id of a dataset with ingested cases, naming the known ids.

    Evaluation plans from the catalog, so an id it does not hold (a typo, a card path, a dataset not
    yet ingested) would otherwise plan nothing and succeed silently.
    """
    from catalog.registry import REGISTRY, load_builtins

    load_builtins()
    try:
        register_folder()
        cursor = connect(get_settings().catalog_root).execute("SELECT DISTINCT dataset FROM cases WHERE status = 'ok'")
    except (ValueError, duckdb.Error) as exc:
        fail(str(exc))
    ingested = sorted(row[0] for row in cursor.fetchall())
    have = f"ingested: {', '.join(ingested) or 'none yet'}"
    for arg in datasets:
        if arg in ingested:
            continue
        if arg.lower().endswith((".yaml", ".yml")) or Path(arg).is_file():
            try:
                hint = f"its id is {get_card(resolve_dataset(arg)).id!r}"
            except (UnknownDataset, ValueError) as exc:
                hint = str(exc)
            fail(f"--dataset takes a dataset id, not a card path ({arg}: {hint}); {have}")
        if arg in REGISTRY:
            fail(f"dataset {arg!r} has no ingested cases: run `samatlas ingest {arg}` first; {have}")
        fail(f"unknown dataset {arg!r}; known ids: {', '.join(sorted(REGISTRY))}; {have}")


@dataclass(frozen=True)
class _CheckedRun:
    """What ``samatlas evaluate``'s arguments come to once checked, with the settings' defaults filled in."""

    specs: dict[str, PlannedSpec]  # by spec id
    checkpoint: str | None
    cluster: str
    device: str
    n_workers: int
    bf16: bool


def _checked_run(
    model: str, checkpoint: Path | None, protocols: list[str], options: dict[str, int | str], datasets: list[str] | None,
    store_steps: str, cluster: str | None, device: str | None, workers: int | None, bf16: bool | None,
    metrics: str | None, window: str | None,
) -> _CheckedRun:
    """Check ``samatlas evaluate``'s arguments before anything runs, failing with what to change."""
    from flows.cluster import local_workers
    from flows.evaluate import RunOptions, build_protocols, check_video_protocols, flat_datasets_skipped, planned_specs
    from tasks.evaluate_volume import STORE_STEPS
    from tasks.models import check_model_args

    if store_steps not in STORE_STEPS:
        fail(f"--store-steps must be one of {', '.join(STORE_STEPS)}, not {store_steps!r}")
    settings = get_settings()
    bf16 = settings.bf16 if bf16 is None else bf16
    try:
        check_model_args(model, checkpoint, bf16)  # an unknown model, a broken plugin, a missing/unused checkpoint
    except ValueError as exc:
        fail(str(exc))
    try:
        specs = planned_specs(build_protocols(protocols, options), RunOptions(metrics, window))  # bad names fail here
        check_video_protocols(model, protocols, bf16)
    except (ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    if datasets:
        check_evaluable(datasets)
        try:
            skipped = flat_datasets_skipped(datasets, protocols)
        except ValueError as exc:
            fail(str(exc))
        if skipped:
            err.print(f"[yellow]note[/]: {skipped}")
    cluster = cluster or settings.cluster
    device = device or settings.device
    if bf16 and device != "cuda":
        fail(f"--bf16 runs the encoder under CUDA autocast; it needs --device cuda (the device is {device})")
    n_workers = local_workers(workers or settings.n_workers) if cluster == "local" else 1
    if device == "cuda" and cluster == "local":
        import torch

        if not torch.cuda.is_available():
            fail("--device cuda, but this machine has no usable CUDA device; use --device cpu, or a cluster with GPU workers")
    return _CheckedRun(specs, str(checkpoint) if checkpoint else None, cluster, device, n_workers, bf16)


@app.command()
def evaluate(
    dataset: Annotated[Optional[list[str]], typer.Option(help="dataset id (repeatable; default all)")] = None,
    case: Annotated[Optional[list[str]], typer.Option(help="case id (repeatable; default all)")] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "litemedsam",
    checkpoint: Annotated[Optional[Path], typer.Option(help="weights file for SAM, MedSAM, SAM 2.1 and MedSAM2 models (and plugins that take one)")] = None,
    protocol: Annotated[Optional[list[str]], typer.Option(help=PROTOCOL_HELP)] = None,
    clicks: Annotated[Optional[int], typer.Option(help="clicks for mazurowski (default 9)")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="iterations for microsam-iterative (default 8)")] = None,
    points: Annotated[Optional[int], typer.Option(help="points for sammed2d's N-point prompt (default 5)")] = None,
    iter_points: Annotated[Optional[int], typer.Option(help="points (steps) for sammed2d-iter (default 5)")] = None,
    z_range: Annotated[Optional[str], typer.Option(help="cvpr24-box3d: inclusive (default) or reference (the baseline's loops, which skip the box's first and last slice)")] = None,
    margin_slices: Annotated[Optional[int], typer.Option(help="sam2-propagation(-point): slices tracked beyond the object's GT range on each side (default 3)")] = None,
    store_steps: Annotated[str, typer.Option(help="volumetric protocols: store the predicted volumes of first-final (default), all or none of the steps")] = "first-final",
    max_slices_per_case: Annotated[int, typer.Option(help="evaluate at most this many slices per case, evenly spread (0: all)")] = 0,
    cluster: Annotated[Optional[str], typer.Option(help="local, tcp://HOST:PORT, slurm or kubernetes")] = None,
    cluster_spec: Annotated[Optional[Path], typer.Option(help="spec file of slurm|kubernetes (default infra/<cluster>.yaml)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="local Dask worker processes")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--fp32", help="--device cuda: the image encoder under bf16 autocast, rows keyed apart (default: fp32, or SAMATLAS_BF16)")] = None,
    dashboard: Annotated[Optional[bool], typer.Option("--dashboard/--no-dashboard", help="serve a local cluster's Dask dashboard on 127.0.0.1 (default: on)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only print the plan")] = False,
    metrics: Annotated[Optional[str], typer.Option(help="metric convention preset for NSD/HD95 (default: each protocol's source's; see README)")] = None,
    window: Annotated[Optional[str], typer.Option(help="CT window preset name or L,W replacing each case's stored window")] = None,
) -> None:
    """Evaluate a model under prompt protocols on every object not yet in the results."""
    from flows.server import launched_prefect_api

    # The temporary Prefect server (if any) starts now, while the command imports, checks and plans.
    with launched_prefect_api() as api:
        from flows.cluster import make_task_runner, started_task_runner, unit_threads
        from flows.evaluate import plan_run
        from flows.evaluate import evaluate as evaluate_flow
        from flows.interrupt import exit_on_interrupt
        from tasks.models import worker_model
        from tasks.models.weights import CheckpointError
        from tasks.storage_errors import StorageError

        options = {k: v for k, v in {"clicks": clicks, "iterations": iterations, "points": points, "iter_points": iter_points,
                                     "z_range": z_range, "margin_slices": margin_slices}.items() if v is not None}
        run = _checked_run(model, checkpoint, protocol or ["medsam-box"], options, dataset, store_steps, cluster,
                           device, workers, bf16, metrics, window)
        try:
            # With work planned, a local cluster starts now and its workers build the model while the
            # Prefect server finishes starting, no more workers than units (an idle one costs a process start and a
            # model build); otherwise (a dry run, nothing missing) none starts, as the flow submits
            # nothing. Other clusters start when the flow submits its first unit.
            planned = 0 if run.cluster != "local" or dry_run else len(plan_run(
                get_settings().catalog_root, model, run.checkpoint, run.specs, dataset, case, max_slices_per_case,
                run.device, run.bf16)[1].units)
            starts_early = planned > 0
            n_workers = min(run.n_workers, planned) if starts_early else run.n_workers
            warm_up = functools.partial(worker_model, model, run.checkpoint, run.device, unit_threads(n_workers), run.bf16)
            kept = "results of finished work units are kept; run the same command again to evaluate the rest"
            with exit_on_interrupt(kept), \
                    (started_task_runner(run.cluster, n_workers, run.device, dashboard, cluster_spec, warm_up) if starts_early else
                     nullcontext(make_task_runner(run.cluster, n_workers, run.device, dashboard, cluster_spec))) as runner:
                api.ready()
                report = evaluate_flow.with_options(task_runner=runner)(
                    model=model, checkpoint=run.checkpoint, protocols=protocol,
                    datasets=dataset, cases=case, options=options, max_slices_per_case=max_slices_per_case,
                    device=run.device, n_workers=n_workers, dry_run=dry_run, metrics=metrics, window=window,
                    store_steps=store_steps, bf16=run.bf16,
                )
        except StorageError as exc:
            fail(f"storage error: {exc}", code=1)
        except (CheckpointError, ValueError) as exc:
            fail(str(exc))
    for d in report.plan:
        err.print(
            f"{d.dataset}: {d.units} units, {d.objects} objects on {d.slices} slices ({d.encoder_calls} encoder calls) "
            f"to compute; {d.pairs_done} of {d.pairs_done + d.pairs_missing} object-spec pairs already done"
        )
    err.print(
        f"{report.model} ({report.model_sha256[:12]}): planned {report.units} units, {report.objects} objects "
        f"on {report.slices} slices; wrote {report.committed} result rows ({report.rows} computed) with "
        f"{report.encoder_calls} encoder calls"
        + (f"; the first unit began {report.first_unit_after_s:.1f} s after the command started"
           if report.first_unit_after_s is not None else "")
    )
    for unit, reason in report.failed.items():
        err.print(f"  [red]failed[/] {unit}: {reason}")
    if report.failed:
        fail(f"{len(report.failed)} units failed; their objects stay planned for the next run", code=1)


@app.command()
def export(
    outdir: Annotated[Path, typer.Argument(help="folder for <case_id>/<name>.nii.gz")],
    dataset: Annotated[str, typer.Option(help="dataset id")],
    model: Annotated[str, typer.Option(help="model whose stored predictions to export")],
    protocol: Annotated[str, typer.Option(help="volumetric protocol that stored them")],
    step: Annotated[str, typer.Option(help="final (each run's highest stored step), first, all, or a step number")] = "final",
) -> None:
    """Write stored predicted label volumes as NIfTI on each case's source grid (orientation, spacing, origin)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from catalog.stored_predictions import choose_steps, parse_step, stored_predictions, stored_runs
    from tasks.export import ExportError, export_label_image
    from tasks.storage_errors import StorageError

    try:
        chosen_step = parse_step(step)
    except ValueError as exc:
        fail(str(exc))
    check_evaluable([dataset])
    try:
        con = connect(get_settings().catalog_root, tables=("datasets", "cases", "volume_steps"))
        dimensionality = con.execute("SELECT max(dimensionality) FROM datasets WHERE dataset = ?", [dataset]).fetchone()[0]
        found = stored_predictions(con, dataset, model, protocol)
        runs = stored_runs(con, dataset) if not found else []
    except duckdb.Error as exc:
        fail(str(exc))
    if dimensionality == 2:
        fail(f"dataset {dataset!r} is 2D: export writes NIfTI volumes of 3D datasets")
    if not found:
        stored = ", ".join(f"--model {m} --protocol {p}" for m, p in runs)
        fail(f"no stored predictions of model {model!r} under protocol {protocol!r} on {dataset!r}; "
             + (f"stored: {stored}" if stored else "it has none (volumetric protocols store them as they evaluate)"))
    chosen = choose_steps(found, chosen_step)
    if not chosen:
        fail(f"no stored step {step} of {model!r} under {protocol!r} on {dataset!r}; "
             f"stored steps: {', '.join(map(str, sorted({p.step for p in found})))}")
    failed: dict[str, str] = {}
    written: list[Path] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task(f"{dataset}: exporting", total=len(chosen))
            for prediction in chosen:
                out = outdir / prediction.case_id / f"{prediction.name}.nii.gz"
                try:
                    written.append(export_label_image(prediction.zarr_path, prediction.name, out))
                    print(out)
                except (ExportError, FileNotFoundError) as exc:
                    failed[f"{prediction.case_id}/{prediction.name}"] = str(exc)
                progress.advance(task)
    except StorageError as exc:
        fail(f"storage error: {exc}", code=1)
    cases = len({path.parent for path in written})
    err.print(f"{dataset}: wrote {len(written)} label images of {cases} cases to "
              f"{outdir}/<case_id>/<name>.nii.gz", soft_wrap=True)
    for what, reason in failed.items():
        err.print(f"  [red]not exported[/] {what}: {reason}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@catalog_app.command("summary")
def catalog_summary(
    by: Annotated[str, typer.Option(help=f"comma-separated keys from {','.join(SUMMARY_KEYS)}")] = ",".join(SUMMARY_KEYS),
    named: Annotated[Optional[str], typer.Option(help=f"a published aggregation instead: {', '.join(NAMED_SUMMARIES)}")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """n, mean and median Dice and IoU (and NSD, HD95) grouped by the keys.

    Results are keyed by protocol spec: group by spec_id or spec_label to tell options apart.
    ``--named cvpr`` gives the CVPR 2024/2025 challenges' case scores of volumetric protocols (mean over
    a case's labels, NSD gated at DSC > 0.2, DSC_AUC/NSD_AUC over the five clicks), averaged per
    dataset; ``--named cvpr-cases`` the same per case."""
    keys = tuple(k.strip() for k in by.split(",") if k.strip())
    if named is not None and named not in NAMED_SUMMARIES:
        fail(f"unknown summary {named!r}; choose from {', '.join(NAMED_SUMMARIES)}")
    try:
        cursor = connect(get_settings().catalog_root).execute(NAMED_SUMMARIES[named] if named else summary_sql(keys))
    except ValueError as exc:
        fail(str(exc))
    emit([d[0] for d in cursor.description], cursor.fetchall(), fmt, title="samatlas results")


@catalog_app.command("instances")
def catalog_instances(fmt: FormatOpt = Format.table) -> None:
    """micro-sam's instance scores per dataset, model, spec and step: mean mSA, SA50, SA75 over slices.

    Written for specs that score instances (the microsam protocols): each slice's objects are
    pasted into one instance map and matched to its GT instances."""
    cursor = connect(get_settings().catalog_root).execute(INSTANCE_SUMMARY_SQL)
    emit([d[0] for d in cursor.description], cursor.fetchall(), fmt, title="samatlas instances")


@catalog_app.command("query")
def catalog_query(sql: Annotated[str, typer.Argument(help="SQL over the views datasets, cases, objects, results, instances, runs")], fmt: FormatOpt = Format.table) -> None:
    """Run one read-only SELECT on the catalog (time and memory limited; nothing can be written)."""
    settings = get_settings()
    limits = QueryLimits(timeout_s=settings.query_timeout_s, memory=settings.query_memory)
    try:
        columns, rows = user_query(settings.catalog_root, sql, limits)
    except QueryRefused as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("query interrupted", code=130)
    emit(columns, rows, fmt)


@catalog_app.command("compact")
def catalog_compact(fmt: FormatOpt = Format.table) -> None:
    """Rewrite the catalog's small files into large ones and delete superseded files.

    Idempotent; readers never see a half state. Run it while no other samatlas command uses this
    catalog (superseded files are deleted at once)."""
    from catalog.tables import compact

    done = compact(get_settings().catalog_root)
    emit(["table", "files_before", "files_after", "removed_files"],
         [(c.table, c.files_before, c.files_after, c.removed_files) for c in done], fmt)


@app.command()
def report(
    outdir: Annotated[Path, typer.Argument(help="folder for report.md and its figures")],
    overlays: Annotated[bool, typer.Option(help="re-run the model to draw overlays")] = True,
) -> None:
    """Summaries, a Dice heatmap, Dice-vs-step curves and overlays as Markdown + PNG."""
    from flows.report import report as report_flow
    from flows.server import prefect_api

    try:
        with prefect_api():
            path = report_flow(str(outdir), overlays)
    except ValueError as exc:
        fail(str(exc))
    err.print(f"report: {path}")


@app.command()
def server(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 4200,
) -> None:
    """Start a long-lived Prefect server on 127.0.0.1 (schedules need one); Ctrl-C stops it.

    Its database is ``prefect/prefect.db`` under the data root (unless PREFECT_SERVER_DATABASE_CONNECTION_URL
    names another), so runs, schedules and artifacts live beside the catalog they describe.
    """
    import subprocess

    from flows.server import die_with

    env = dict(os.environ)
    if not {"PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"} & set(env):
        database = get_settings().data_root.resolve() / "prefect" / "prefect.db"
        database.parent.mkdir(parents=True, exist_ok=True)
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{database}"
    if not {"PREFECT_SERVER_UI_API_URL", "PREFECT_UI_API_URL"} & set(env):  # else the UI calls port 4200's API
        env["PREFECT_SERVER_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    err.print(f"Prefect server on http://127.0.0.1:{port}; in other shells: "
              f"export PREFECT_API_URL=http://127.0.0.1:{port}/api")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # The server dies with this command (a kill of it leaves no server holding the port).
    with subprocess.Popen(command, env=env, preexec_fn=functools.partial(die_with, os.getpid())) as process:
        try:
            code = process.wait()
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached the server too; let it stop
            code = process.wait()
    raise typer.Exit(code)


@app.command()
def serve(
    dataset: Annotated[list[str], typer.Option(help="datasets to refresh and re-evaluate (repeatable)")],
    model: Annotated[Optional[list[str]], typer.Option(help="models to re-evaluate nightly")] = None,
    protocol: Annotated[Optional[list[str]], typer.Option(help="protocols")] = None,
    cluster: Annotated[Optional[str], typer.Option(help="local, tcp://HOST:PORT, slurm or kubernetes (default: settings)")] = None,
    ingest_cron: Annotated[Optional[str], typer.Option(help="cron of the ingest refresh (default: settings)")] = None,
    evaluate_cron: Annotated[Optional[str], typer.Option(help="cron of the re-evaluation (default: settings)")] = None,
    ingest_every: Annotated[Optional[float], typer.Option(min=1, help="run the ingest refresh every this many seconds instead of on its cron")] = None,
    evaluate_every: Annotated[Optional[float], typer.Option(min=1, help="run the re-evaluation every this many seconds instead of on its cron")] = None,
) -> None:
    """Serve the scheduled deployments (weekly ingest, nightly evaluate) until Ctrl-C."""
    from flows.serving import serve_until_stopped

    if not os.environ.get("PREFECT_API_URL"):
        fail("schedules fire only on a running Prefect server: start `samatlas server`, then "
             "export PREFECT_API_URL=http://127.0.0.1:4200/api and run serve again")
    for dataset_id in dataset:
        try:
            get_card(resolve_dataset(dataset_id))
        except (UnknownDataset, ValueError) as exc:
            fail(str(exc).strip("'\""))
    if cluster:  # served runs are subprocesses that read the cluster from the settings (flows/schedules.py)
        os.environ["SAMATLAS_CLUSTER"] = cluster
        get_settings.cache_clear()
    try:
        from flows.schedules import build_deployments

        deployments = build_deployments(dataset, model or ["litemedsam"], protocol or ["medsam-box"],
                                        ingest_cron, evaluate_cron, ingest_every, evaluate_every)
    except ValueError as exc:  # a cluster that cannot be built (a missing package, a bad spec file)
        fail(str(exc))
    err.print(f"serving {', '.join(d.name for d in deployments)} on {os.environ['PREFECT_API_URL']}; Ctrl-C stops")
    serve_until_stopped(deployments, lambda: err.print("stopping: no new runs; the running ones are cancelled"))


@app.command()
def demo(
    workers: Annotated[Optional[int], typer.Option(help="local Dask worker processes")] = None,
) -> None:
    """Sample data -> ingest -> evaluate (LiteMedSAM and the filled-box baseline) -> summary + figure."""
    from flows.demo import run_demo

    run_demo(workers)


def main() -> None:
    """The ``samatlas`` console script: the command, then the exit without the interpreter's teardown.

    Tearing down what a command loaded (torch, ONNX Runtime, Prefect, Dask) took 3.5-4 s after every
    ``evaluate`` here (timed from the last atexit handler to the process's end; a thread dump then
    shows the main thread in C, with no Python frame left), with nothing left to do: results are
    committed, Prefect's logs drained, the server and the cluster stopped before the command
    returns. So the status click exits with is kept, stdout and stderr are flushed and atexit
    handlers run, then the process ends at once. An exception other than SystemExit propagates.
    """
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):  # sys.exit(None) is 0; sys.exit("text") prints it and is 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    end_process(code)


if __name__ == "__main__":
    main()
