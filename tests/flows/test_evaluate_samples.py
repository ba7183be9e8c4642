"""The evaluate flow end to end on real slices of the pyradiomics sample (LiteMedSAM on Dask).

Quality claims here come from real patient data with hand-drawn labels: LiteMedSAM with the
``medsam-box`` protocol must reach a mean Dice of 0.85 on the brain1 and lung2 lesions and beat the
filled-box baseline (a model that answers the prompt box itself) on the same slices.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalog import tables
from catalog.query import connect
from tasks.protocols import get_protocol
from tests.conftest import copy_catalog, run_samatlas

CASES = ("--case", "brain1", "--case", "lung2")
SLICES = ("--max-slices-per-case", "4")
pytestmark = pytest.mark.slow


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


@pytest.fixture(scope="module")
def evaluated(ingested_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingested sample; LiteMedSAM and the filled-box baseline evaluated on 4 slices of brain1 and lung2."""
    root = copy_catalog(ingested_samples, tmp_path_factory.mktemp("evaluate") / "samatlas-data")
    for model in ("litemedsam", "filled-box"):
        done = run_samatlas(root, "evaluate", "--model", model, *CASES, *SLICES, "--workers", "2")
        assert done.exit_code == 0, done.output
        assert "planned 2 units, 8 objects on 8 slices; wrote 8 result rows (8 computed) with 8 encoder calls" in done.output
    return root


def test_litemedsam_reaches_published_quality_and_beats_the_box(evaluated: Path):
    rows = dict(query(evaluated, "SELECT model, avg(dice) FROM results WHERE protocol = 'medsam-box' GROUP BY model"))
    assert rows["litemedsam"] >= 0.85
    per_case = query(evaluated, """
        SELECT case_id, avg(dice) FILTER (model = 'litemedsam') AS lite, avg(dice) FILTER (model = 'filled-box') AS box
        FROM results GROUP BY case_id""")
    for case_id, lite, box in per_case:
        assert lite > box + 0.05, (case_id, lite, box)


def test_results_rows_carry_identity_prompt_and_partition(evaluated: Path):
    rows = query(evaluated, """
        SELECT DISTINCT model, model_sha256, modality, anatomy, target, step FROM results WHERE model = 'litemedsam'""")
    assert {(r[2], r[3], r[4]) for r in rows} == {("mr", "brain", "brain-tumour"), ("ct", "lung", "lung-tumour")}
    assert {r[1] for r in rows} == {"79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"}
    prompt, gt, pred = query(evaluated, "SELECT prompt, gt_area_px, pred_area_px FROM results LIMIT 1")[0]
    assert len(json.loads(prompt)["box"]) == 4 and gt > 0 and pred > 0
    assert (evaluated / "catalog" / "results" / "modality=mr" / "anatomy=brain").is_dir()


def test_second_run_plans_nothing_and_changes_no_counts(evaluated: Path):
    before = {t: query(evaluated, f"SELECT count(*) FROM {t}")[0][0] for t in ("cases", "objects", "results")}
    files_before = tables.data_files(evaluated / "catalog", "results")
    again = run_samatlas(evaluated, "evaluate", "--model", "litemedsam", *CASES, *SLICES)
    assert again.exit_code == 0, again.output
    assert "planned 0 units" in again.output
    assert {t: query(evaluated, f"SELECT count(*) FROM {t}")[0][0] for t in before} == before
    assert tables.data_files(evaluated / "catalog", "results") == files_before


def test_runs_record_encoder_calls_equal_to_distinct_slices(evaluated: Path):
    counts = [json.loads(c) for (c,) in query(evaluated, "SELECT counts FROM runs WHERE flow = 'evaluate'")]
    assert counts and all(c["encoder_calls"] == c["distinct_slices"] for c in counts)
    assert sum(c["encoder_calls"] == 8 for c in counts) >= 2  # the fixture's two runs: 4 slices of 2 cases


def test_runs_record_the_cold_start_to_the_first_unit(evaluated: Path):
    runs = query(evaluated, "SELECT counts, duration_s FROM runs WHERE flow = 'evaluate'")
    computed = [(json.loads(c)["first_unit_after_s"], d) for c, d in runs if json.loads(c)["units"]]
    # the process start (imports, Prefect, the cluster, the worker's model) comes before the first unit,
    # which began inside the run (the run's clock starts with the flow, after imports)
    assert computed and all(first is not None and 1 < first for first, _ in computed)


def test_several_protocols_share_one_encoder_pass_per_slice(evaluated: Path):
    done = run_samatlas(
        evaluated, "evaluate", "--case", "brain1", "--max-slices-per-case", "2", "--protocol", "medsam-box",
        "--protocol", "mazurowski", "--clicks", "3", "--protocol", "sammed2d", "--workers", "1",
    )
    assert done.exit_code == 0, done.output
    # Slices 11 and 17 were evaluated under medsam-box already: only the new protocols run, on 2 slices.
    assert "planned 1 units, 2 objects on 2 slices" in done.output
    assert "with 2 encoder calls" in done.output
    steps = dict(query(evaluated, """
        SELECT protocol, max(step) FROM results WHERE case_id = 'brain1' AND model = 'litemedsam' GROUP BY protocol"""))
    assert steps["mazurowski-clicks"] == 3 and steps["mazurowski-m5-oracle"] == 1 and steps["sammed2d-box"] == 1


def test_summary_and_read_only_query_through_the_cli(evaluated: Path):
    summary = run_samatlas(evaluated, "catalog", "summary", "--format", "json")
    assert summary.exit_code == 0, summary.output
    rows = json.loads(summary.stdout)
    lite = [r for r in rows if r["model"] == "litemedsam" and r["protocol"] == "medsam-box"]
    assert {r["target"] for r in lite} == {"brain-tumour", "lung-tumour"} and all(r["n"] == 4 for r in lite)
    assert {"dice_mean", "dice_median", "iou_mean", "iou_median"} <= set(lite[0])
    csv = run_samatlas(evaluated, "catalog", "query", "SELECT count(*) AS n FROM objects", "--format", "csv")
    assert csv.stdout.splitlines()[0] == "n"
    refused = run_samatlas(evaluated, "catalog", "query", f"COPY results TO '{evaluated / 'leak.csv'}'")
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert not (evaluated / "leak.csv").exists()


def test_overlay_figure_shows_both_contours(evaluated: Path):
    from PIL import Image

    from catalog.figures import overlay_figure

    out = overlay_figure(evaluated / "catalog", evaluated / "overlays.png")
    pixels = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3).astype(int)
    lime = ((pixels[:, 0] < 80) & (pixels[:, 1] > 200) & (pixels[:, 2] < 80)).sum()
    red = ((pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)).sum()
    assert lime > 100 and red > 100, (lime, red)


def test_report_writes_tables_heatmap_and_step_curves(evaluated: Path):
    # Multi-step results for the Dice-vs-step curve (nothing new is computed if an earlier test ran it).
    assert run_samatlas(evaluated, "evaluate", "--case", "brain1", "--max-slices-per-case", "2",
                        "--protocol", "mazurowski", "--clicks", "3", "--workers", "1").exit_code == 0
    out = evaluated / "report"
    done = run_samatlas(evaluated, "report", out, "--no-overlays")
    assert done.exit_code == 0, done.output
    text = (out / "report.md").read_text()
    assert f"| mr | brain | brain-tumour | litemedsam | {get_protocol('medsam-box').specs[0].label} | 4 |" in text
    assert "## Protocol specs" in text and get_protocol("medsam-box").specs[0].id in text
    assert "![Median Dice](heatmap.png)" in text and "![Dice against prompt steps](steps.png)" in text
    assert (out / "heatmap.png").stat().st_size > 10_000 and (out / "steps.png").stat().st_size > 10_000


def test_both_metric_conventions_for_the_same_predictions(evaluated: Path):
    """--metrics names another convention: it is a new spec, so the same prompts are re-scored beside
    the default rows (medsam-box's default is its source's, cvpr24-2d); Dice agrees, NSD differs by
    convention, and the summary shows both."""
    done = run_samatlas(evaluated, "evaluate", "--case", "lung2", "--max-slices-per-case", "2", "--metrics", "samatlas-voxels",
                        "--workers", "1")
    assert done.exit_code == 0, done.output
    rows = query(evaluated, """
        SELECT slice_index, list(spec_label ORDER BY spec_label), list(dice ORDER BY spec_label), list(spec ORDER BY spec_label)
        FROM results WHERE case_id = 'lung2' AND model = 'litemedsam' AND protocol = 'medsam-box'
        GROUP BY slice_index HAVING count(*) = 2""")
    assert len(rows) == 2
    for _, labels, dice, specs in rows:
        assert dice[0] == pytest.approx(dice[1], abs=1e-9)
        assert {json.loads(s)["scoring"]["surface"] for s in specs} == {"voxels", "surfels"}
    summary = run_samatlas(evaluated, "catalog", "summary", "--by", "model,spec_label", "--format", "json")
    labels = {r["spec_label"] for r in json.loads(summary.stdout) if r["model"] == "litemedsam"}
    assert any("nsd=voxels@2mm" in x for x in labels) and any("surfels" in x and ">dice0.2" in x for x in labels)
