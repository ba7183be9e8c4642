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
from tasks.settings import get_settings



def build_deployments(
    datasets: list[str], models: list[str], protocols: list[str], cluster: str = "local",
    ingest_cron: str | None = None, evaluate_cron: str | None = None,
) -> list[RunnerDeployment]:
    """One ingest deployment for ``datasets`` (ids or YAML card paths) and one evaluate deployment per model.

    Crons default to the settings' ``ingest_cron`` and ``evaluate_cron``.
    """
    settings = get_settings()
    ingest_cron, evaluate_cron = ingest_cron or settings.ingest_cron, evaluate_cron or settings.evaluate_cron
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
