"""What a flow run shows in Prefect: a Markdown summary and a table of its counts.

The builders here are pure (reports in, Markdown or rows out); :func:`publish` sends both to the
Prefect API. Artifacts carry a key so that the UI's Artifacts page lists them with their history:
one key per flow (and per model for evaluate, so each model's latest run is one click away).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from catalog.listing import markdown_table

if TYPE_CHECKING:  # the flows import this module to publish their reports
    from flows.evaluate import EvaluateReport
    from flows.ingest import DatasetReport


@dataclass(frozen=True)
class Headline:
    """One line of a run's headline: the Dice of the rows it added, by dataset, target, protocol and step."""

    dataset: str
    target: str
    protocol: str
    step: int
    n: int
    dice_mean: float
    dice_median: float


def artifact_key(*parts: str) -> str:
    """An artifact key from ``parts``: Prefect accepts only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _reasons(title: str, reasons: dict[str, str]) -> list[str]:
    """A Markdown section listing each name with its reason (reasons may span lines, so not a table)."""
    if not reasons:
        return []
    return [f"### {title} ({len(reasons)})", "", *(f"- `{name}`: {' '.join(why.split())}" for name, why in reasons.items()), ""]


def ingest_table(reports: Sequence[DatasetReport]) -> list[dict[str, Any]]:
    """One row per dataset: cases planned, ingested, skipped (unchanged) and quarantined, and its error."""
    return [{
        "dataset": r.dataset, "planned": r.planned, "ingested": len(r.ingested), "skipped": len(r.skipped),
        "quarantined": len(r.quarantined), "tasks": r.tasks, "error": r.error or r.storage_error or "",
    } for r in reports]


def ingest_markdown(reports: Sequence[DatasetReport], status: str) -> str:
    """The ingest run in Markdown: counts per dataset, then every quarantined case and failure with its reason."""
    rows = ingest_table(reports)
    columns = ["dataset", "planned", "ingested", "skipped", "quarantined", "tasks"]
    lines = [
        f"# samatlas ingest: {status}", "",
        f"{sum(r['planned'] for r in rows)} cases planned: {sum(r['ingested'] for r in rows)} ingested, "
        f"{sum(r['skipped'] for r in rows)} skipped (sources unchanged), "
        f"{sum(r['quarantined'] for r in rows)} quarantined.", "",
        markdown_table(columns, [[r[c] for c in columns] for r in rows]), "",
    ]
    lines += _reasons("Datasets not ingested", {r.dataset: r.error for r in reports if r.error})
    lines += _reasons("Storage errors", {r.dataset: r.storage_error for r in reports if r.storage_error})
    for r in reports:
        lines += _reasons(f"Quarantined in {r.dataset}", r.quarantined)
    return "\n".join(lines)


def evaluate_table(report: EvaluateReport) -> list[dict[str, Any]]:
    """One row per dataset: units planned, done and failed; objects, slices, rows; pairs already done (skipped)."""
    return [{
        "dataset": d.dataset, "units_planned": d.units, "units_done": report.units_done.get(d.dataset, 0),
        "units_failed": sum(u.startswith(f"{d.dataset}/") for u in report.failed),
        "objects": d.objects, "slices": d.slices, "rows": report.dataset_rows.get(d.dataset, 0),
        "pairs_skipped": d.pairs_done,
    } for d in report.plan]


def evaluate_markdown(report: EvaluateReport, headline: Sequence[Headline], status: str) -> str:
    """The evaluate run in Markdown: what was planned, done and skipped, failures with reasons, the Dice headline."""
    rows = evaluate_table(report)
    columns = list(rows[0]) if rows else ["dataset"]
    done = sum(report.units_done.values())
    lines = [
        f"# samatlas evaluate {report.model}: {status}", "",
        f"Model `{report.model}` (sha256 `{report.model_sha256[:12]}`): {report.units} units planned "
        f"({report.objects} objects on {report.slices} slices), {done} done, {len(report.failed)} failed; "
        f"{report.committed} result rows written ({report.rows} computed) with {report.encoder_calls} encoder calls; "
        f"{sum(d.pairs_done for d in report.plan)} object-spec pairs skipped (already in the results).", "",
        markdown_table(columns, [list(r.values()) for r in rows]), "",
    ]
    lines += _reasons("Failed units", report.failed)
    if headline:
        lines += ["## Dice of the rows this run wrote", "", markdown_table(
            ["dataset", "target", "protocol", "step", "n", "dice_mean", "dice_median"],
            [[h.dataset, h.target, h.protocol, h.step, h.n, f"{h.dice_mean:.3f}", f"{h.dice_median:.3f}"] for h in headline],
        ), ""]
    return "\n".join(lines)


def publish(key: str, markdown: str, table: list[dict[str, Any]], description: str) -> None:
    """Publish the run's Markdown summary under ``key`` and its counts table under ``key``-counts."""
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    create_table_artifact(table=table, key=f"{key}-counts", description=description)
