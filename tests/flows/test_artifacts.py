"""What a run shows: Markdown and table artifacts built from its report, a progress artifact that moves,
plain progress lines in a log; and a real ingest + evaluate whose artifacts are read back from Prefect."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from catalog.query import connect
from flows import progress as progress_module
from flows.artifacts import Headline, artifact_key, evaluate_markdown, evaluate_table, ingest_markdown, ingest_table
from flows.evaluate import EvaluateReport
from flows.ingest import DatasetReport
from flows.plan import DatasetPlan
from flows.progress import RunProgress, Stage, plain_line


def evaluate_report() -> EvaluateReport:
    plan = [DatasetPlan("btcv", units=3, objects=10, slices=6, pairs_missing=10, pairs_done=4),
            DatasetPlan("msd", units=1, objects=2, slices=2, pairs_missing=2, pairs_done=0)]
    return EvaluateReport(
        "sam_vit_b", "ab" * 32, plan, units=4, objects=12, slices=8, rows=11, committed=9, encoder_calls=7,
        failed={"btcv/img0003[4..5]": "RuntimeError: CUDA out of memory\ntried to allocate 2 GiB"},
        units_done={"btcv": 2, "msd": 1}, dataset_rows={"btcv": 9, "msd": 2},
    )


def test_evaluate_table_counts_each_dataset():
    rows = {r["dataset"]: r for r in evaluate_table(evaluate_report())}
    assert rows["btcv"] == {"dataset": "btcv", "units_planned": 3, "units_done": 2, "units_failed": 1, "objects": 10,
                            "slices": 6, "rows": 9, "pairs_skipped": 4}
    assert rows["msd"]["units_failed"] == 0 and rows["msd"]["rows"] == 2


def test_evaluate_markdown_says_planned_done_skipped_failed_and_the_headline():
    headline = [Headline("btcv", "liver", "medsam-box", 1, 9, 0.8123, 0.85)]
    text = evaluate_markdown(evaluate_report(), headline, "completed")
    assert text.startswith("# samatlas evaluate sam_vit_b: completed")
    assert "4 units planned (12 objects on 8 slices), 3 done, 1 failed" in text
    assert "9 result rows written (11 computed) with 7 encoder calls; 4 object-spec pairs skipped" in text
    assert "| btcv | 3 | 2 | 1 | 10 | 6 | 9 | 4 |" in text
    # A reason spanning lines stays on its item's line.
    assert "- `btcv/img0003[4..5]`: RuntimeError: CUDA out of memory tried to allocate 2 GiB" in text
    assert "| btcv | liver | medsam-box | 1 | 9 | 0.812 | 0.850 |" in text


def test_ingest_artifacts_list_quarantined_cases_and_errors():
    reports = [
        DatasetReport("btcv", planned=4, ingested=["a", "b"], skipped=["c"], quarantined={"d": "d.nii.gz: truncated"}, tasks=4),
        DatasetReport("kits", error="RawData.zip: not a zip file"),
    ]
    assert ingest_table(reports)[0] == {"dataset": "btcv", "planned": 4, "ingested": 2, "skipped": 1, "quarantined": 1,
                                        "tasks": 4, "error": ""}
    text = ingest_markdown(reports, "completed")
    assert "4 cases planned: 2 ingested, 1 skipped (sources unchanged), 1 quarantined." in text
    assert "| btcv | 4 | 2 | 1 | 1 | 4 |" in text
    assert "- `kits`: RawData.zip: not a zip file" in text and "- `d`: d.nii.gz: truncated" in text


def test_artifact_keys_are_what_prefect_accepts():
    assert artifact_key("samatlas-evaluate", "sam_vit_b", "progress") == "samatlas-evaluate-sam-vit-b-progress"
    assert artifact_key("samatlas-evaluate", "sam2.1_hiera_T") == "samatlas-evaluate-sam2-1-hiera-t"


def test_plain_line_has_counts_rate_and_eta():
    stage = Stage("litemedsam", units=5, work=40, units_done=2, work_done=16, rows=30)
    assert plain_line(stage, "units", "slices", "rows", 4.0, 6.0) == (
        "litemedsam: 2/5 units, 16/40 slices, 30 rows; 4.00 slices/s, ETA 0:00:06")
    cases = Stage("btcv", units=30, work=30, units_done=3, work_done=3, rows=40)
    assert plain_line(cases, "cases", "cases", "objects", None, None) == "btcv: 3/30 cases, 40 objects; ? cases/s, ETA ?"


def test_rate_and_eta_are_the_stage_mean_from_the_first_unit_on(monkeypatch):
    monkeypatch.setattr("flows.progress.time.monotonic", lambda: 110.0)  # 8 slices done 10 s after the start
    stage = Stage("litemedsam", units=5, work=40, units_done=1, work_done=8, started=100.0)
    assert stage.speed == 0.8 and stage.remaining_s == 40.0
    assert Stage("empty", units=5, work=40, started=0.0).speed is None  # nothing done yet: unknown, not 0


def test_progress_artifact_moves_with_each_unit_and_ends_at_100(monkeypatch):
    updates: list[float] = []
    monkeypatch.setattr(progress_module, "create_progress_artifact", lambda **kw: "artifact-id")
    monkeypatch.setattr(progress_module, "update_progress_artifact", lambda artifact, progress: updates.append(progress))
    monkeypatch.setattr(progress_module, "ARTIFACT_EVERY_S", 0.0)
    log = io.StringIO()  # not a terminal: plain lines, no control codes
    with RunProgress("k", "d", stages=2, unit_name="cases", work_name="cases", rows_name="objects",
                     console=Console(file=log)) as run:
        run.begin("a", units=2, work=2)
        run.advance(1, 1, 3)
        run.advance(1, 1, 2)
        run.end()
        run.end()  # a dataset that could not be fetched begins no stage and still counts
    assert updates == [25.0, 50.0, 100.0]
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("a: 0/2 cases, 0 objects") and lines[-1].startswith("a: 2/2 cases, 5 objects")
    assert not any("\x1b" in line for line in lines)


@pytest.mark.slow
def test_a_real_ingest_and_evaluate_publish_their_artifacts(cli, data_root: Path):
    """ingest + evaluate (filled-box, one slice of two cases) through the CLI; artifacts read from Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    ingested = cli("ingest", "sample-radiomics")
    assert ingested.exit_code == 0, ingested.output
    assert "sample-radiomics: 5/5 cases, 27 objects" in ingested.output  # the plain line of a log
    done = cli("evaluate", "--model", "filled-box", "--case", "brain1", "--case", "lung2",
               "--max-slices-per-case", "1", "--workers", "1")
    assert done.exit_code == 0, done.output
    assert "filled-box: 2/2 units, 2/2 slices, 2 rows" in done.output
    runs = dict(connect(data_root / "catalog").execute("SELECT flow, run_id FROM runs").fetchall())

    def artifacts(flow: str) -> dict[str, object]:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[runs[flow]])))
        return {a.type: a.data for a in found}

    ingest = artifacts("ingest")
    assert "5 cases planned: 5 ingested, 0 skipped (sources unchanged), 0 quarantined." in ingest["markdown"]
    assert json.loads(ingest["table"]) == [{"dataset": "sample-radiomics", "planned": 5, "ingested": 5, "skipped": 0,
                                            "quarantined": 0, "tasks": 5, "error": ""}]
    assert ingest["progress"] == 100

    evaluate = artifacts("evaluate")
    assert "2 units planned (2 objects on 2 slices), 2 done, 0 failed; 2 result rows written" in evaluate["markdown"]
    assert "| sample-radiomics | brain-tumour | medsam-box | 1 | 1 |" in evaluate["markdown"]
    table = json.loads(evaluate["table"])
    assert [(r["units_planned"], r["units_done"], r["units_failed"], r["rows"]) for r in table] == [(2, 2, 0, 2)]
    assert evaluate["progress"] == 100
