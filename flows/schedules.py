"""Scheduled runs: a weekly ingest refresh and a nightly re-evaluation, served by one process.

Schedules fire only against a long-lived Prefect server (``samatlas server``); the temporary server
of no-server mode runs no scheduler, so ``samatlas serve`` refuses to start without one.
``infra/prefect.yaml`` declares the same deployments for work pools and workers (``prefect deploy``).

A served run is a subprocess that loads its flow from the deployment's entrypoint (``prefect.serve``
keeps no flow objects), so a task runner attached with ``with_options`` would be lost there: the
evaluate deployments name ``flows.deployed``'s evaluate, which attaches the Dask runner of the
settings' cluster, as the work-pool deployments do. Entrypoints are module paths, so they load
wherever samatlas is installed, whatever the serving directory.
"""

from __future__ import annotations

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from catalog.user_cards import resolve_dataset
from flows.deployed import evaluate, ingest
from tasks.settings import get_settings

EVALUATE_ENTRYPOINT = "flows.deployed.evaluate"
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
"""A deployment's runs never overlap: a run due while the previous one still runs is cancelled (the
next firing computes what is still missing). Overlapping runs of one deployment would compete for the
same cores and the same missing keys; on a slow machine with a short interval they piled up."""


def build_deployments(
    datasets: list[str], models: list[str], protocols: list[str],
    ingest_cron: str | None = None, evaluate_cron: str | None = None,
    ingest_every: float | None = None, evaluate_every: float | None = None,
) -> list[RunnerDeployment]:
    """One ingest deployment for ``datasets`` (ids or YAML card paths) and one evaluate deployment per model.

    Each runs on its cron (default: the settings' ``ingest_cron`` and ``evaluate_cron``), or every
    ``ingest_every`` / ``evaluate_every`` seconds when given (the first run one interval after serving).
    Evaluate runs on the cluster of the settings (``SAMATLAS_CLUSTER``) of the serving process. A
    deployment runs one run at a time (``ONE_AT_A_TIME``).
    """
    settings = get_settings()
    ingest_when = {"interval": ingest_every} if ingest_every else {"cron": ingest_cron or settings.ingest_cron}
    evaluate_when = {"interval": evaluate_every} if evaluate_every else {"cron": evaluate_cron or settings.evaluate_cron}
    deployments = [ingest.to_deployment(
        name="weekly-ingest", parameters={"datasets": datasets}, tags=["samatlas", "ingest"],
        entrypoint_type=EntrypointType.MODULE_PATH, concurrency_limit=ONE_AT_A_TIME, **ingest_when,
    )]
    for model in models:
        deployment = evaluate.to_deployment(
            name=f"nightly-evaluate-{model}", tags=["samatlas", "evaluate"], concurrency_limit=ONE_AT_A_TIME,
            **evaluate_when,
            parameters={"model": model, "protocols": protocols, "datasets": [resolve_dataset(d) for d in datasets]},
        )
        deployment.entrypoint = EVALUATE_ENTRYPOINT  # its function's own module would be flows.evaluate
        deployments.append(deployment)
    return deployments
