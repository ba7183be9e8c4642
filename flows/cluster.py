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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import distributed
import psutil
import yaml
from prefect_dask import DaskTaskRunner

from tasks.settings import get_settings

OPTIONAL = {"slurm": ("dask_jobqueue", "samatlas[slurm]"), "kubernetes": ("dask_kubernetes", "samatlas[kubernetes]")}
CLUSTER_CLASSES = {"slurm": "dask_jobqueue.SLURMCluster", "kubernetes": "dask_kubernetes.operator.KubeCluster"}


# A local worker's share of the machine's memory (Dask's default limit, total / workers) should hold
# a model worker: about 1.5 GiB with LiteMedSAM (libraries, networks, a unit's activations; measured
# in a worker process), more with SAM's ViT-B; 4 workers on an 8 GiB laptop would swap.
WORKER_MEMORY = 3 * 2**30


def local_workers(requested: int | None = None) -> int:
    """Worker processes for a local cluster: one per core, at most 4 and one per ``WORKER_MEMORY`` of
    the machine's memory, unless asked otherwise."""
    if requested:
        return requested
    return max(1, min(4, os.cpu_count() or 1, psutil.virtual_memory().total // WORKER_MEMORY))


def unit_threads(n_workers: int) -> int:
    """Torch threads of each unit when ``n_workers`` worker processes share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(n_workers, 1))  # no oversubscription of the cores


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


# glibc's adaptive rule raises the mmap threshold to the largest freed chunk, up to 32 MiB on 64-bit
# (DEFAULT_MMAP_THRESHOLD_MAX), and the trim threshold to twice that; set explicitly, as their ceiling.
MALLOC_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20)}


@contextmanager
def environ_set(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment for the block, then put those variables back as
    they were. Only they are restored: other threads may set variables meanwhile (the Prefect API URL)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def model_worker_settings() -> Iterator[None]:
    """For the block: Dask settings for worker processes that run model networks on their CPU cores.

    Two of Dask's defaults slow a worker's torch encoder down against the same code in a plain process
    (``bench/worker_speed.py``, passes interleaved: 1.55x with them, 0.93x without; ONNX Runtime's
    encoder, which keeps its buffers, runs at the process's speed either way):
    - the nanny exports ``MALLOC_TRIM_THRESHOLD_=65536`` before it spawns a worker (to hand freed
      memory back soon); setting it turns glibc's adaptive mmap threshold off, so every tensor above
      128 KiB a network allocates is a fresh ``mmap`` whose pages fault in again. Workers get glibc's
      own ceilings instead (``MALLOC_ENVIRON``), as explicit values. The nanny takes a variable from
      this process's environment over its configuration, and leaves its own exports there, so the
      environment is set too for the block (and restored after it);
    - the statistical profiler samples every thread's stack every 10 ms, which stalls a network
      whose threads fill every core. The dashboard's Profile page stays empty.
    And one of its defaults can stall a run: a worker past 80 % of its memory limit is paused until
    its memory drops, but a model worker's memory is its model and libraries, which stay; pausing is
    off (the nanny still restarts a worker past 95 %).
    A nanny reads them when it is made and uses them for every (re)spawn of its worker; ``dask
    worker`` processes started elsewhere keep their own configuration (see infra/).
    """
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **MALLOC_ENVIRON}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, "distributed.worker.profile.enabled": False,
                          "distributed.worker.memory.pause": False}), \
            environ_set(MALLOC_ENVIRON):
        yield


def make_cluster(cluster_class: str, **kwargs: Any) -> Any:
    """``cluster_class(**kwargs)`` (a dotted name) under :func:`model_worker_settings`."""
    logging.getLogger("prefect.task_runner.dask").addFilter(_DASHBOARD_FILTER)
    module, _, name = cluster_class.rpartition(".")
    with model_worker_settings():
        return getattr(importlib.import_module(module), name)(**kwargs)


def print_dashboard_link(cluster: Any, kwargs: dict[str, Any]) -> None:
    """Print the dashboard link of ``cluster``, made with ``kwargs``, if it serves one."""
    if kwargs.get("dashboard_address", "") is not None and cluster.dashboard_link:
        # Written, not print()ed: flows with log_prints would turn a print into a run log line.
        sys.stderr.write(f"Dask dashboard: {cluster.dashboard_link}\n")
        sys.stderr.flush()


def start_cluster(cluster_class: str, **kwargs: Any) -> Any:
    """Make the cluster (:func:`make_cluster`) and print its dashboard link (if it serves one).

    prefect-dask calls this (as ``cluster_class``) when the first unit is submitted, so runs that
    submit nothing (``--dry-run``, nothing planned) start no cluster and print no link.
    """
    cluster = make_cluster(cluster_class, **kwargs)
    print_dashboard_link(cluster, kwargs)
    return cluster


def _warm(warm_up: Callable[[], object]) -> None:
    """Run ``warm_up`` on a worker and return nothing, not even its error.

    Dask tells a client the type of each result it holds, and the client unpickles that type: a
    model's would import torch and the model's package into the command's process, on the thread
    that carries its Dask messages, while the command waits for the warm-up (LiteMedSAM: 7.5 s of
    the cold start on 2 cores, measured with py-spy). An error is the first unit's to report: it
    builds the model the same way (the worker logs the warm-up's too, as a failed task).
    """
    try:
        warm_up()
    except Exception:  # noqa: BLE001 (reported by the first unit, see above)
        return


class EarlyCluster:
    """A cluster started on a background thread when made, handed to prefect-dask at the first submit.

    A command starts its local cluster this way beside its Prefect server, instead of after it when
    the flow submits its first unit; the workers also build the model meanwhile (``warm_up``, one task
    pinned to each worker), so the first unit finds it built. A cluster never handed over (nothing
    was planned, or the flow failed first) is closed by :meth:`close`.
    """

    def __init__(self, kwargs: dict[str, Any], warm_up: Callable[[], object] | None = None):
        self.kwargs = kwargs
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="samatlas-cluster")
        self._started = self._pool.submit(self._start, warm_up)
        self._handed_over = False

    def _start(self, warm_up: Callable[[], object] | None) -> _Started:
        cluster = make_cluster(**self.kwargs)
        if warm_up is None:
            return _Started(cluster)
        # set_as_default=False: prefect-dask would take a default client for its own
        client = distributed.Client(cluster, set_as_default=False)
        return _Started(cluster, client, [client.submit(_warm, warm_up, workers=[w], allow_other_workers=False, pure=False)
                                          for w in client.scheduler_info()["workers"]])

    def hand_over(self) -> Any:
        """The started cluster, once its workers are warm, its dashboard link printed: the
        ``cluster_class`` of the prefect-dask runner. What a warm-up raised is the first unit's to
        report (it builds the model the same way), so it is not raised here."""
        started = self._started.result()
        if started.client is not None:
            with started.client.as_current():  # distributed.wait looks for the current client
                distributed.wait(started.warm_ups)
        started.close_client()
        self._handed_over = True
        print_dashboard_link(started.cluster, self.kwargs)
        return started.cluster

    def __getstate__(self) -> dict[str, Any]:
        # Prefect sends the flow's task runner, so this object, along with each unit: the copy a
        # worker unpickles only describes the cluster (its thread and cluster stay here).
        return {"kwargs": self.kwargs, "_handed_over": True}

    def runner(self) -> DaskTaskRunner:
        """A prefect-dask runner that takes this cluster when the flow submits its first unit."""
        return DaskTaskRunner(cluster_class=self.hand_over)

    def close(self) -> None:
        """Close the cluster (waiting for it to start) unless prefect-dask took it: it closes it itself."""
        self._pool.shutdown(wait=True)
        if not self._handed_over and self._started.exception() is None:
            started = self._started.result()
            started.close_client()
            started.cluster.close()


@dataclass
class _Started:
    """An early cluster, and the client and futures of its workers' warm-up (if any)."""

    cluster: Any
    client: Any = None
    warm_ups: list = field(default_factory=list)

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def local_cluster_kwargs(n_workers: int | None, device: str, dashboard: bool | None) -> dict[str, Any]:
    """:func:`make_cluster` arguments of a local cluster: ``n_workers`` single-threaded worker processes
    on 127.0.0.1, each with a ``GPU`` on CUDA, the dashboard served if ``dashboard`` (default: the setting)."""
    settings = get_settings()
    serve = settings.dashboard if dashboard is None else dashboard
    kwargs = {
        "cluster_class": "distributed.LocalCluster", "n_workers": local_workers(n_workers),
        "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": settings.dashboard_address if serve else None,
    }
    if device == "cuda":
        kwargs["resources"] = {"GPU": 1}
    return kwargs


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
        return DaskTaskRunner(cluster_class=start_cluster, cluster_kwargs=local_cluster_kwargs(n_workers, device, dashboard))
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


@contextmanager
def started_task_runner(
    cluster: str, n_workers: int | None, device: str, dashboard: bool | None, spec: Path | None,
    warm_up: Callable[[], object] | None = None,
) -> Iterator[DaskTaskRunner]:
    """:func:`make_task_runner`'s runner for the block, a local cluster started at once on a
    background thread (:class:`EarlyCluster`, its workers running ``warm_up``) and closed after the
    block if the flow never took it."""
    if cluster != "local":
        yield make_task_runner(cluster, n_workers, device, dashboard, spec)
        return
    early = EarlyCluster(local_cluster_kwargs(n_workers, device, dashboard), warm_up)
    try:
        yield early.runner()
    finally:
        early.close()
