"""Scheduled deployments: built with their crons and parameters; serve refuses the no-server mode."""

from __future__ import annotations


from flows.schedules import build_deployments
from tasks.settings import Settings
from tests.conftest import run_samatlas


def test_deployments_carry_schedules_and_parameters():
    deployments = build_deployments(["sample-radiomics"], ["litemedsam", "filled-box"], ["medsam-box"])
    by_name = {d.name: d for d in deployments}
    assert set(by_name) == {"weekly-ingest", "nightly-evaluate-litemedsam", "nightly-evaluate-filled-box"}
    assert by_name["weekly-ingest"].schedules[0].schedule.cron == Settings().ingest_cron == "0 3 * * 0"
    assert by_name["weekly-ingest"].parameters == {"datasets": ["sample-radiomics"]}
    nightly = by_name["nightly-evaluate-filled-box"]
    assert nightly.schedules[0].schedule.cron == Settings().evaluate_cron == "0 2 * * *"
    assert nightly.parameters["model"] == "filled-box" and nightly.parameters["protocols"] == ["medsam-box"]


def test_serve_without_a_server_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    done = run_samatlas(tmp_path, "serve", "--dataset", "sample-radiomics")
    assert done.exit_code == 2
    assert "samatlas server" in done.output and "Traceback" not in done.output
