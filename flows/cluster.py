"""Task runners for the evaluate flow: a local Dask cluster, an existing scheduler, SLURM or Kubernetes.

Runners are built at call time (``flow.with_options(task_runner=...)``): prefect-dask resolves a
``cluster_class`` when the runner is constructed, and the SLURM/Kubernetes packages are optional.
SLURM and Kubernetes clusters are described by a spec file the user edits (``infra/slurm.yaml``,
``infra/kubernetes.yaml``); their adaptive scaling bounds are settings.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import dask
import yaml
from prefect_dask import DaskTaskRunner

from tasks.settings import get_settings

OPTIONAL = {"slurm": ("dask_jobqueue", "samatlas[slurm]"), "kubernetes": ("dask_kubernetes", "samatlas[kubernetes]")}
CLUSTER_CLASSES = {"slurm": "dask_jobqueue.SLURMCluster", "kubernetes": "dask_kubernetes.operator.KubeCluster"}


def local_workers(requested: int | None = None) -> int:
    """Worker processes for a local cluster: one per core (at most 4) unless asked otherwise."""
    return requested or max(1, min(4, os.cpu_count() or 1))


def unit_resources(device: str) -> AbstractContextManager:
    """The Dask annotation for evaluate units: on CUDA each unit holds one of a worker's ``GPU``.

    Workers advertise ``GPU=1`` (local clusters here, ``--resources GPU=1`` elsewhere), so a worker
    runs one unit at a time on its device however many threads it has.
    """
    return dask.annotate(resources={"GPU": 1}) if device == "cuda" else nullcontext()


def advertises_gpu(worker_args: list[str]) -> bool:
    """True if a ``dask worker`` command line declares a ``GPU`` resource (``--resources GPU=1``)."""
    return any(flag == "--resources" and "GPU=" in value for flag, value in zip(worker_args, worker_args[1:]))


def read_spec(path: Path) -> dict[str, Any]:
    """The mapping in a cluster spec file; a clear one-line error names the file otherwise."""
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such cluster spec; copy one from infra/ or pass --cluster-spec") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a cluster spec is a mapping of settings, not {type(spec).__name__}")
    return spec


def slurm_cluster_kwargs(path: Path, device: str = "cpu") -> dict[str, Any]:
    """``SLURMCluster`` keyword arguments from ``path`` (a mapping of them), checked before any job is queued."""
    from dask_jobqueue import SLURMCluster
    from dask_jobqueue.core import Job, JobQueueCluster
    from dask_jobqueue.slurm import SLURMJob

    spec = read_spec(path)
    known = {name for cls in (SLURMCluster, JobQueueCluster, SLURMJob, Job)
             for name in inspect.signature(cls.__init__).parameters} - {"self", "kwargs", "base_class_kwargs", "job_kwargs"}
    if unknown := sorted(set(spec) - known):
        raise ValueError(f"{path}: unknown SLURMCluster settings {', '.join(unknown)}")
    if device == "cuda" and not advertises_gpu([str(a) for a in spec.get("worker_extra_args") or []]):
        raise ValueError(f"{path}: --device cuda, but worker_extra_args lacks --resources GPU=1, so units would wait forever")
    return spec


def kubernetes_cluster_spec(path: Path, device: str = "cpu") -> tuple[dict[str, Any], str | None]:
    """The ``DaskCluster`` resource and namespace from ``path``.

    ``cluster:`` holds ``make_cluster_spec`` arguments (its ``resources`` go to the scheduler);
    ``worker: {container: ..., pod: ...}`` is merged into the worker's container and pod, which is
    where GPU limits, volumes, node selectors and tolerations go (dask-kubernetes' documented way:
    build the spec, edit it, pass ``custom_cluster_spec``).
    """
    from dask_kubernetes.exceptions import ValidationError
    from dask_kubernetes.operator import make_cluster_spec
    from dask_kubernetes.operator.validation import validate_cluster_name

    spec = read_spec(path)
    if unknown := sorted(set(spec) - {"namespace", "cluster", "worker"}):
        raise ValueError(f"{path}: unknown keys {', '.join(unknown)} (use namespace, cluster, worker)")
    try:
        resource = make_cluster_spec(**(spec.get("cluster") or {}))
    except TypeError as exc:
        raise ValueError(f"{path}: cluster: {exc}") from None
    try:
        validate_cluster_name(str(resource["metadata"]["name"]))
    except ValidationError as exc:
        raise ValueError(f"{path}: cluster.name: {exc.message}") from None
    worker = spec.get("worker") or {}
    if unknown := sorted(set(worker) - {"container", "pod"}):
        raise ValueError(f"{path}: worker: unknown keys {', '.join(unknown)} (use container, pod)")
    pod = resource["spec"]["worker"]["spec"]
    pod["containers"][0].update(worker.get("container") or {})
    pod.update(worker.get("pod") or {})
    if device == "cuda" and not advertises_gpu([str(a) for a in pod["containers"][0]["args"]]):
        raise ValueError(f"{path}: --device cuda, but cluster.worker_command lacks --resources GPU=1, so units would wait forever")
    return resource, spec.get("namespace")


class _NoFalseDashboardLink(logging.Filter):
    """Drops prefect-dask's "dashboard is available" line: it prints one whenever the scheduler's
    HTTP server runs, which it does with the dashboard off too (health and metrics routes), and
    samatlas prints the link itself when the dashboard is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The Dask dashboard is available")


_DASHBOARD_FILTER = _NoFalseDashboardLink()


def start_cluster(cluster_class: str, **kwargs: Any) -> Any:
    """Start ``cluster_class(**kwargs)`` and print its dashboard link (if it serves one).

    prefect-dask calls this (as ``cluster_class``) when the first unit is submitted, so runs that
    submit nothing (``--dry-run``, nothing planned) start no cluster and print no link.
    """
    logging.getLogger("prefect.task_runner.dask").addFilter(_DASHBOARD_FILTER)
    module, _, name = cluster_class.rpartition(".")
    cluster = getattr(importlib.import_module(module), name)(**kwargs)
    serves_dashboard = kwargs.get("dashboard_address", "") is not None
    if serves_dashboard and cluster.dashboard_link:
        # Written, not print()ed: flows with log_prints would turn a print into a run log line.
        sys.stderr.write(f"Dask dashboard: {cluster.dashboard_link}\n")
        sys.stderr.flush()
    return cluster


def make_task_runner(
    cluster: str, n_workers: int | None = None, device: str = "cpu", dashboard: bool | None = None,
    spec: Path | None = None,
) -> DaskTaskRunner:
    """The Dask task runner for ``cluster`` (local, tcp://HOST:PORT, slurm or kubernetes).

    ``dashboard`` (default: the setting) serves a local cluster's dashboard on the settings'
    loopback address; ``spec`` (default: the setting, else ``infra/<cluster>.yaml``) describes a
    SLURM or Kubernetes cluster.
    """
    settings = get_settings()
    if cluster.startswith(("tcp://", "tls://")):
        return DaskTaskRunner(address=cluster)
    if cluster == "local":
        serve = settings.dashboard if dashboard is None else dashboard
        kwargs = {
            "cluster_class": "distributed.LocalCluster", "n_workers": local_workers(n_workers),
            "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
            "dashboard_address": settings.dashboard_address if serve else None,
        }
        if device == "cuda":
            kwargs["resources"] = {"GPU": 1}
        return DaskTaskRunner(cluster_class=start_cluster, cluster_kwargs=kwargs)
    if cluster in OPTIONAL:
        module, extra = OPTIONAL[cluster]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--cluster {cluster} needs {module}: pip install '{extra}' (see infra/{cluster}.md)")
        path = spec or settings.cluster_spec or Path("infra") / f"{cluster}.yaml"
        if cluster == "slurm":
            kwargs = slurm_cluster_kwargs(path, device)
        else:
            resource, namespace = kubernetes_cluster_spec(path, device)
            kwargs = {"custom_cluster_spec": resource, **({"namespace": namespace} if namespace else {})}
        return DaskTaskRunner(
            cluster_class=start_cluster, cluster_kwargs={"cluster_class": CLUSTER_CLASSES[cluster], **kwargs},
            adapt_kwargs={"minimum": settings.cluster_min_workers, "maximum": settings.cluster_max_workers})
    raise ValueError(f"unknown cluster {cluster!r}: use local, tcp://HOST:PORT, slurm or kubernetes")
