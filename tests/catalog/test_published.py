"""Published reference values: the shipped file's consistency, and its join with a catalog.

The join tests use synthetic rows (tests/synthetic_rows.py): no image or model is behind them; they
test that the right rows are matched and aggregated the published way.
"""

from __future__ import annotations

import csv
import dataclasses
import statistics
from pathlib import Path

import pytest

from catalog import tables
from catalog.published import PublishedFileError, compare, load, section, spec_families
from catalog.query import connect
from catalog.registry import get_card
from records.rows import CaseRow, ResultRow
from records.specs import ProtocolSpec
from tasks.models import MODEL_NAMES
from tests.synthetic_rows import case_row, result_row

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "protocols.md"


def spec_named(name: str, **params) -> ProtocolSpec:
    """The spec samatlas records under ``name`` (with ``params`` overriding, e.g. another click count)."""
    from tasks.protocols import PROTOCOLS

    protocol, _ = spec_families()[name]
    specs = {s.name: s for s in PROTOCOLS[protocol](**params).specs}
    return specs[name]


def write_results(root: Path, dataset: str, target: str, model: str, spec: ProtocolSpec, ious: dict[str, list[float]],
                  step: int = 1) -> None:
    """One result row per (case, value): case ``c`` gets objects on slices 0, 1, ... with those IoUs."""
    rows = [dataclasses.replace(result_row(case, z, spec, step=step, dataset=dataset), target=target, model=model, iou=v, dice=v)
            for case, values in ious.items() for z, v in enumerate(values)]
    tables.insert_missing(root, rows, ResultRow)
    tables.replace(root, [dataclasses.replace(case_row(c), dataset=dataset) for c in ious], CaseRow,
                   {"dataset": [dataset], "case_id": list(ious)})


def published(source: str = "mazurowski2023", **match) -> list:
    """The shipped rows of ``source`` whose fields equal ``match``."""
    return [v for v in load() if v.source == source and all(getattr(v, k) == x for k, x in match.items())]


def test_shipped_rows_name_registered_datasets_targets_models_and_specs():
    values = load()
    assert {v.source for v in values} >= {"mazurowski2023", "medsam2024", "cvpr2024", "sammed2d2023", "cvpr2025"}
    for v in values:
        if v.dataset:
            card = get_card(v.dataset)  # raises for an unknown id
            assert not v.target or v.target in card.targets, (v.task, v.target, card.targets)
        assert not v.model or v.model in MODEL_NAMES, v.model
        assert v.protocol in spec_families() or "no samatlas spec" in v.note, (v.task, v.protocol)
    # every Mazurowski task of both figures, each mode with both mask choices, clicks 1, 5, 9
    fig2 = published(citation=values[0].citation, aggregation="object")
    assert len({v.task for v in fig2}) == 28 and len(fig2) == 280
    clicks = [v for v in published(aggregation="object") if v.protocol.startswith("mazurowski-clicks")]
    assert {v.step for v in clicks} == {1, 5, 9} and len(clicks) == 28 * 6


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference/protocols.md is not beside the repository")
def test_every_value_is_printed_in_the_reference_and_the_mazurowski_cells_agree():
    text = REFERENCE.read_text()
    with open(REPO / "catalog" / "published.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    for row in raw:
        assert row["value"] in text, row
    # Fig2 (§1.5): each task's cells in mode order, from the Markdown table itself
    modes = ["m1", "m1-oracle", "m2", "m2-oracle", "m3", "m3-oracle", "m4", "m4-oracle", "m5", "m5-oracle"]
    block = text[text.index("### 1.5"):text.index("### 1.6")]
    cells = {}
    for line in block.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(parts) == 11 and parts[1][:1].isdigit():
            cells.update({(parts[0], f"mazurowski-{m}"): v for m, v in zip(modes, parts[1:])})
    fig2 = [r for r in raw if "Fig2" in r["citation"] and r["aggregation"] == "object"]
    assert len(fig2) == 280
    for row in fig2:
        assert cells[(row["task"], row["protocol"])] == row["value"], row


def test_a_bad_row_is_one_line_naming_file_line_and_field(tmp_path: Path):
    good = (REPO / "catalog" / "published.csv").read_text().splitlines()
    bad = tmp_path / "published.csv"
    bad.write_text("\n".join([good[0], good[1], good[2].replace(",iou,", ",jaccard,")]) + "\n")
    with pytest.raises(PublishedFileError, match=r"published.csv:3: metric 'jaccard' is not one of"):
        load(bad)


def test_section_puts_our_mean_beside_the_published_one_and_lists_the_rest(tmp_path: Path):
    """msd/spleen with sam_vit_h under mazurowski-m3: the CT-Spleen M3 row matches (mean IoU per object);
    the other modes and targets, and tasks with no samatlas dataset, are listed as not reproduced."""
    (row,) = published(task="CT-Spleen", protocol="mazurowski-m3")
    ious = {"c1": [0.80, 0.90, 0.70], "c2": [0.95]}
    write_results(tmp_path, "msd", "spleen", "sam_vit_h", spec_named("mazurowski-m3"), ious)
    write_results(tmp_path, "msd", "liver", "sam_vit_h", spec_named("mazurowski-m3"), {"c3": [0.1]})  # another target
    con = connect(tmp_path)
    matched, unmatched = compare(con, load())
    (comparison,) = matched
    ours = statistics.mean(v for vs in ious.values() for v in vs)
    assert comparison.published == row and comparison.n == 4
    assert comparison.ours == pytest.approx(ours)
    assert comparison.difference == pytest.approx(ours - row.value)
    assert len(unmatched) == len(load()) - 1

    text = "\n".join(section(con))
    line = next(ln for ln in text.splitlines() if ln.startswith("| CT-Spleen |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:4] == ["msd/spleen", "sam_vit_h", spec_named("mazurowski-m3").label]
    assert cells[7:11] == [f"{row.value:.4f}", f"{ours:.4f}", "4", f"{ours - row.value:+.4f}"]
    not_reproduced = text.split("### Not yet reproduced here")[1]
    # the other modes on the ingested dataset: only evaluate is needed; CT-Organ has no samatlas dataset
    assert "`samatlas evaluate --dataset msd --model sam_vit_h --protocol mazurowski`" in not_reproduced
    assert "`samatlas ingest busi`, then `samatlas evaluate --dataset busi" in not_reproduced
    assert "CT-Organ: Lung" in not_reproduced and "these tasks' data (no samatlas dataset)" in not_reproduced
    assert f"{len(load()) - 1} published values have no matching results" in not_reproduced


def test_per_case_median_step_and_parameters_are_matched_as_published(tmp_path: Path):
    """A per-case median averages each case's objects first; a click row matches only its step; a
    spec with other parameters (points=5 against a published points=3) does not match."""
    (clicks5,) = published(task="CT-Spleen", protocol="mazurowski-clicks", step=5)
    spec = spec_named("mazurowski-clicks", clicks=5)
    ious = {"c1": [0.2, 0.4], "c2": [0.9], "c3": [0.6, 0.6, 0.9]}
    for step in range(1, 6):
        write_results(tmp_path, "msd", "spleen", "sam_vit_h", spec, {c: [v * step / 5 for v in vs] for c, vs in ious.items()}, step)
    per_case = dataclasses.replace(clicks5, aggregation="case", statistic="median")
    (points3,) = [v for v in load() if v.source == "sammed2d2023" and v.task == "SA-Med2D-20M test set"
                  and v.published_model == "SAM (256 px)" and v.params == {"points": 3}]
    points3 = dataclasses.replace(points3, dataset="msd", target="spleen", model="sam_vit_h", protocol="mazurowski-clicks",
                                  params={"clicks": 3}, step=5)
    matched, unmatched = compare(connect(tmp_path), [clicks5, per_case, points3])
    by_aggregation = {c.published.aggregation: c for c in matched}
    assert by_aggregation["object"].n == 6
    assert by_aggregation["object"].ours == pytest.approx(statistics.mean(v for vs in ious.values() for v in vs))
    assert by_aggregation["case"].n == 3
    assert by_aggregation["case"].ours == pytest.approx(statistics.median(statistics.mean(vs) for vs in ious.values()))
    assert [u.published for u in unmatched] == [points3]
    assert "--protocol mazurowski --clicks 3" in unmatched[0].needed
