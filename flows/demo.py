"""The demo: both real samples through ingest and evaluate, then the summary and an overlay figure.

The pyradiomics volumes are evaluated slice by slice (``medsam-box``: a GT box on every slice, each
slice scored alone) and as volumes (``cvpr24-box3d``: one 3D box, propagated from the middle of its
range, scored in 3D), so the summary shows both side by side."""

from __future__ import annotations

import time

from rich.console import Console

from catalog.figures import overlay_figure
from catalog.query import connect, summary_sql
from flows.cluster import local_workers, make_task_runner
from flows.evaluate import evaluate
from flows.ingest import ingest
from flows.output import Format, emit
from flows.server import prefect_api
from tasks.settings import get_settings

SAMPLES = ["sample-radiomics", "sample-mni152"]
MNI_SLICES = 5  # a spread of slices: the template's 150+ labelled slices would take minutes
PROTOCOLS = {"sample-radiomics": ["medsam-box", "cvpr24-box3d"], "sample-mni152": ["medsam-box"]}


def run_demo(workers: int | None = None) -> None:
    """Ingest the samples, evaluate LiteMedSAM and the filled-box baseline, print and draw."""
    console = Console()
    settings = get_settings()
    n_workers = local_workers(workers or settings.n_workers)
    started = time.perf_counter()
    with prefect_api():
        for report in ingest(SAMPLES):
            console.print(f"{report.dataset}: {len(report.ingested)} ingested, {len(report.skipped)} unchanged, "
                          f"{len(report.quarantined)} quarantined")
        for model in ("litemedsam", "filled-box"):
            for dataset, limit in (("sample-radiomics", 0), ("sample-mni152", MNI_SLICES)):
                runner = make_task_runner("local", n_workers, "cpu")
                report = evaluate.with_options(task_runner=runner)(
                    model=model, datasets=[dataset], protocols=PROTOCOLS[dataset], max_slices_per_case=limit,
                    n_workers=n_workers)
                console.print(f"{model} on {dataset}: {report.objects} objects, {report.rows} rows, "
                              f"{report.encoder_calls} encoder calls")
    cursor = connect(settings.catalog_root).execute(summary_sql(("modality", "anatomy", "target", "model", "protocol", "scope")))
    emit([d[0] for d in cursor.description], cursor.fetchall(), Format.table,
         title="Dice and IoU by target and model (scope slice: per slice; volume: per object in 3D)")
    figure = overlay_figure(settings.catalog_root, settings.data_root / "overlays.png")
    console.print(f"overlays: {figure}")
    console.print(f"catalog: {settings.catalog_root}  store: {settings.store_root}  "
                  f"({time.perf_counter() - started:.0f} s)")
