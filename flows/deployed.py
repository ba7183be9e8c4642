"""The flows ``infra/prefect.yaml`` names as entrypoints, for deployments run by a work pool's workers.

A worker loads an entrypoint's flow object and runs it as it is. The evaluate flow needs a Dask
task runner (its units are Dask futures), which the CLI and ``samatlas serve`` attach at call time;
here it is attached when the worker imports this module, for the cluster its environment names
(``SAMATLAS_CLUSTER``, ``SAMATLAS_N_WORKERS``, ``SAMATLAS_CLUSTER_SPEC``: set them in the work
pool's or the deployment's ``job_variables.env``). Ingest runs on its own thread pool as declared.
"""

from __future__ import annotations

from flows.cluster import make_task_runner
from flows.evaluate import evaluate as _evaluate
from flows.ingest import ingest
from tasks.settings import get_settings

__all__ = ["evaluate", "ingest"]

evaluate = _evaluate.with_options(task_runner=make_task_runner(get_settings().cluster, get_settings().n_workers))
