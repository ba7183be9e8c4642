"""Task runners for the evaluate flow: a local Dask cluster, an existing scheduler, SLURM or Kubernetes.

Runners are built at call time (``flow.with_options(task_runner=...)``): prefect-dask resolves a
``cluster_class`` when the runner is constructed, and the SLURM/Kubernetes packages are optional.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import AbstractContextManager, nullcontext

import dask

from prefect_dask import DaskTaskRunner

OPTIONAL = {"slurm": ("dask_jobqueue", "samatlas[slurm]"), "kubernetes": ("dask_kubernetes", "samatlas[kubernetes]")}


def local_workers(requested: int | None = None) -> int:
    """Worker processes for a local cluster: one per core (at most 4) unless asked otherwise."""
    return requested or max(1, min(4, os.cpu_count() or 1))


def unit_resources(device: str) -> AbstractContextManager:
    """The Dask annotation for evaluate units: on CUDA each unit holds one of a worker's ``GPU``.

    Workers advertise ``GPU=1`` (local clusters here, ``--resources GPU=1`` elsewhere), so a worker
    runs one unit at a time on its device however many threads it has.
    """
    return dask.annotate(resources={"GPU": 1}) if device == "cuda" else nullcontext()


def make_task_runner(cluster: str, n_workers: int | None = None, device: str = "cpu") -> DaskTaskRunner:
    """The Dask task runner for ``cluster`` (local, tcp://HOST:PORT, slurm or kubernetes)."""
    if cluster.startswith(("tcp://", "tls://")):
        return DaskTaskRunner(address=cluster)
    if cluster == "local":
        kwargs = {
            "n_workers": local_workers(n_workers), "threads_per_worker": 1, "processes": True,
            "host": "127.0.0.1", "dashboard_address": None,
        }
        if device == "cuda":
            kwargs["resources"] = {"GPU": 1}
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)
    if cluster in OPTIONAL:
        module, extra = OPTIONAL[cluster]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--cluster {cluster} needs {module}: pip install '{extra}' (see infra/{cluster}.md)")
        if cluster == "slurm":
            return DaskTaskRunner(cluster_class="dask_jobqueue.SLURMCluster", adapt_kwargs={"minimum": 0, "maximum": 8})
        return DaskTaskRunner(cluster_class="dask_kubernetes.operator.KubeCluster", adapt_kwargs={"minimum": 0, "maximum": 8})
    raise ValueError(f"unknown cluster {cluster!r}: use local, tcp://HOST:PORT, slurm or kubernetes")
