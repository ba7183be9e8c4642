"""The report flow: write the Markdown + PNG report and publish its summary as a Prefect artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from catalog.report import write_report
from tasks.settings import get_settings


@flow(name="report")
def report(outdir: str, overlays: bool = True) -> str:
    """Write the report into ``outdir`` and publish it as the ``samatlas-report`` artifact."""
    path = write_report(get_settings().catalog_root, Path(outdir), overlays)
    create_markdown_artifact(markdown=path.read_text(), key="samatlas-report", description=f"written to {path}")
    return str(path)
