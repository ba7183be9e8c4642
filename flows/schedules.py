"""Scheduled runs: a weekly ingest refresh and a nightly re-evaluation, served by one process.

Schedules fire only against a long-lived Prefect server (``samatlas server``); the temporary server
of no-server mode runs no scheduler, so ``samatlas serve`` refuses to start without one.
"""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment

from catalog.user_cards import resolve_dataset
from flows.cluster import make_task_runner
from flows.evaluate import evaluate
from flows.ingest import ingest

WEEKLY_INGEST = "0 3 * * 0"  # Sundays 03:00: re-checks sources; unchanged cases are skipped
NIGHTLY_EVALUATE = "0 2 * * *"  # 02:00: computes only what results lacks (new cases, models, protocols)


def build_deployments(
    datasets: list[str], models: list[str], protocols: list[str], cluster: str = "local",
    ingest_cron: str = WEEKLY_INGEST, evaluate_cron: str = NIGHTLY_EVALUATE,
) -> list[RunnerDeployment]:
    """One ingest deployment for ``datasets`` (ids or YAML card paths) and one evaluate deployment per model."""
    deployments = [ingest.to_deployment(
        name="weekly-ingest", cron=ingest_cron, parameters={"datasets": datasets}, tags=["samatlas", "ingest"],
    )]
    runner = make_task_runner(cluster)
    for model in models:
        deployments.append(evaluate.with_options(task_runner=runner).to_deployment(
            name=f"nightly-evaluate-{model}", cron=evaluate_cron, tags=["samatlas", "evaluate"],
            parameters={"model": model, "protocols": protocols, "datasets": [resolve_dataset(d) for d in datasets]},
        ))
    return deployments
