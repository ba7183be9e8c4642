"""The SLURM and Kubernetes spec files in infra/ render into what their schedulers would run.

Rendered, not run: no SLURM controller or Kubernetes API exists here. dask-jobqueue writes the
job script (its scheduler starts on 127.0.0.1, no job is queued); dask-kubernetes builds the
DaskCluster resource the operator would receive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.cluster import kubernetes_cluster_spec, make_task_runner, slurm_cluster_kwargs, start_cluster

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_the_slurm_spec_renders_a_gpu_job_script():
    from dask_jobqueue import SLURMCluster

    kwargs = slurm_cluster_kwargs(INFRA / "slurm.yaml", device="cuda")
    with SLURMCluster(**kwargs, scheduler_options={"host": "127.0.0.1", "dashboard_address": None}) as cluster:
        script = cluster.job_script()
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --gres=gpu:1" in header and "#SBATCH -p gpu" in header and "#SBATCH -A my-lab" in header
    assert "#SBATCH --mem=60G" in header  # 64GB as SLURM counts it (GiB, rounded up)
    assert "#SBATCH -t 04:00:00" in header
    command = script.splitlines()[-1]
    assert command.startswith("python -m distributed.cli.dask_worker") and "--resources GPU=1" in command
    assert command.split().count("--nthreads") == 2 and command.rsplit("--nthreads ", 1)[1].startswith("1 ")  # the last wins
    assert "--memory-limit 59.60GiB" in command
    lines = script.splitlines()
    activate = lines.index("source /path/to/samatlas/.venv/bin/activate")
    assert activate < lines.index(command)  # the environment is active before the worker starts


def test_the_kubernetes_spec_renders_gpu_workers_and_a_gpu_free_scheduler():
    resource, namespace = kubernetes_cluster_spec(INFRA / "kubernetes.yaml", device="cuda")
    assert resource["kind"] == "DaskCluster" and namespace == "samatlas"
    worker_pod = resource["spec"]["worker"]["spec"]
    worker = worker_pod["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["args"][:6] == ["dask", "worker", "--resources", "GPU=1", "--nthreads", "1"]
    assert {"name": "PREFECT_API_URL", "value": "http://prefect-server.samatlas.svc:4200/api"} in worker["env"]
    assert worker["volumeMounts"][0]["mountPath"] == "/data/samatlas"
    assert worker_pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "samatlas-data"
    scheduler = resource["spec"]["scheduler"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in scheduler["resources"]["limits"]  # the scheduler needs no GPU
    assert scheduler["args"][0] == "dask-scheduler"


def test_cluster_runners_read_the_spec_and_take_scaling_bounds_from_settings(monkeypatch: pytest.MonkeyPatch):
    from tasks.settings import get_settings

    monkeypatch.setenv("SAMATLAS_CLUSTER_MIN_WORKERS", "1")
    monkeypatch.setenv("SAMATLAS_CLUSTER_MAX_WORKERS", "3")
    get_settings.cache_clear()
    try:
        slurm = make_task_runner("slurm", device="cuda", spec=INFRA / "slurm.yaml")
        kube = make_task_runner("kubernetes", device="cuda", spec=INFRA / "kubernetes.yaml")
    finally:
        get_settings.cache_clear()
    assert slurm.cluster_class is start_cluster and slurm.cluster_kwargs["cluster_class"] == "dask_jobqueue.SLURMCluster"
    assert slurm.cluster_kwargs["job_extra_directives"] == ["--gres=gpu:1"]
    assert kube.cluster_kwargs["cluster_class"] == "dask_kubernetes.operator.KubeCluster"
    assert kube.cluster_kwargs["custom_cluster_spec"]["metadata"]["name"] == "samatlas"
    assert slurm.adapt_kwargs == kube.adapt_kwargs == {"minimum": 1, "maximum": 3}


def _edited(tmp_path: Path, name: str, edit) -> Path:
    spec = yaml.safe_load((INFRA / name).read_text())
    edit(spec)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_bad_specs_are_one_line_errors_naming_the_file(tmp_path: Path):
    no_gpu = _edited(tmp_path, "slurm.yaml", lambda s: s.update(worker_extra_args=["--nthreads", "1"]))
    with pytest.raises(ValueError, match=rf"{no_gpu}: --device cuda, but worker_extra_args lacks --resources GPU=1"):
        slurm_cluster_kwargs(no_gpu, device="cuda")
    assert slurm_cluster_kwargs(no_gpu, device="cpu")["worker_extra_args"] == ["--nthreads", "1"]
    typo = _edited(tmp_path, "slurm.yaml", lambda s: s.update(gres="gpu:1"))
    with pytest.raises(ValueError, match=r"unknown SLURMCluster settings gres"):
        slurm_cluster_kwargs(typo)
    with pytest.raises(ValueError, match=r"nowhere\.yaml: no such cluster spec"):
        make_task_runner("slurm", spec=tmp_path / "nowhere.yaml")
    (tmp_path / "broken.yaml").write_text("queue: [gpu\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        slurm_cluster_kwargs(tmp_path / "broken.yaml")
    kube_no_gpu = _edited(tmp_path, "kubernetes.yaml", lambda s: s["cluster"].update(worker_command="dask worker"))
    with pytest.raises(ValueError, match=r"cluster.worker_command lacks --resources GPU=1"):
        kubernetes_cluster_spec(kube_no_gpu, device="cuda")
    bad_name = _edited(tmp_path, "kubernetes.yaml", lambda s: s["cluster"].update(name="SAM_atlas"))
    with pytest.raises(ValueError, match=r"cluster.name: The DaskCluster SAM_atlas is invalid"):
        kubernetes_cluster_spec(bad_name)
    bad_key = _edited(tmp_path, "kubernetes.yaml", lambda s: s["cluster"].update(gpus=1))
    with pytest.raises(ValueError, match=r"kubernetes.yaml: cluster: .*gpus"):
        kubernetes_cluster_spec(bad_key)
