"""Scheduled deployments: built with their crons and parameters, loadable where they run, the same in
infra/prefect.yaml; serve refuses the no-server mode."""

from __future__ import annotations

import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect_dask import DaskTaskRunner

from flows.schedules import build_deployments
from tasks.settings import Settings
from tests.conftest import REPO, run_samatlas


def test_deployments_carry_schedules_and_parameters():
    deployments = build_deployments(["sample-radiomics"], ["litemedsam", "filled-box"], ["medsam-box"])
    by_name = {d.name: d for d in deployments}
    assert set(by_name) == {"weekly-ingest", "nightly-evaluate-litemedsam", "nightly-evaluate-filled-box"}
    assert by_name["weekly-ingest"].schedules[0].schedule.cron == Settings().ingest_cron == "0 3 * * 0"
    assert by_name["weekly-ingest"].parameters == {"datasets": ["sample-radiomics"]}
    nightly = by_name["nightly-evaluate-filled-box"]
    assert nightly.schedules[0].schedule.cron == Settings().evaluate_cron == "0 2 * * *"
    assert nightly.parameters["model"] == "filled-box" and nightly.parameters["protocols"] == ["medsam-box"]
    for deployment in deployments:  # a run due while the previous one runs is cancelled, not stacked
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"


def test_serve_without_a_server_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    done = run_samatlas(tmp_path, "serve", "--dataset", "sample-radiomics")
    assert done.exit_code == 2
    assert "samatlas server" in done.output and "Traceback" not in done.output


def test_served_evaluate_loads_with_its_dask_runner():
    """A served run loads its flow from the entrypoint in a subprocess: there it must still run on Dask."""
    built = {d.name: d for d in build_deployments(["sample-radiomics"], ["filled-box"], ["medsam-box"])}
    for deployment in built.values():
        flow = load_flow_from_entrypoint(deployment.entrypoint)
        assert flow.name == deployment.flow_name
    assert isinstance(load_flow_from_entrypoint(built["nightly-evaluate-filled-box"].entrypoint).task_runner, DaskTaskRunner)


def test_prefect_yaml_declares_the_served_deployments():
    """infra/prefect.yaml (for work pools) names entrypoints that load, with the crons and parameters serve uses."""
    declared = {d["name"]: d for d in yaml.safe_load((REPO / "infra" / "prefect.yaml").read_text())["deployments"]}
    evaluate = [d for d in declared.values() if d["entrypoint"].endswith(":evaluate")]
    built = {d.name: d for d in build_deployments(
        declared["weekly-ingest"]["parameters"]["datasets"], [d["parameters"]["model"] for d in evaluate],
        evaluate[0]["parameters"]["protocols"],
    )}
    assert set(declared) == set(built)
    for name, spec in declared.items():
        flow = load_flow_from_entrypoint(str(REPO / spec["entrypoint"]))  # as a worker loads it from the checkout
        assert flow.name == built[name].flow_name
        assert [s["cron"] for s in spec["schedules"]] == [s.schedule.cron for s in built[name].schedules]
        assert spec["parameters"] == built[name].parameters and spec["tags"] == built[name].tags
        assert spec["concurrency_limit"]["limit"] == built[name].concurrency_limit
        assert spec["concurrency_limit"]["collision_strategy"] == built[name].concurrency_options.collision_strategy
        assert spec["work_pool"]["name"] == "samatlas"
    assert all(isinstance(load_flow_from_entrypoint(str(REPO / d["entrypoint"])).task_runner, DaskTaskRunner) for d in evaluate)
