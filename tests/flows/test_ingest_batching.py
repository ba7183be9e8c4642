"""Batched ingest of many small images: few task runs, per-case quarantine, and re-runs without duplicate rows.

The replica is a synthetic QaTa-COV19 v2 release (``Train Set/Images/<id>.png`` with
``Ground-truths/mask_<id>.png``): it tests batching and the catalog commits, not image content.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest
from PIL import Image

from records.cards import CaseFiles
from catalog.registry import get_card
from catalog.query import connect
from catalog import tables
from flows.ingest import commit_outcomes, previous_state
from tasks.ingest_batch import BUCKETS, bucket_of, group_by_bucket, ingest_batch

IMAGES = 120
SIDE = 16


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


def write_qata(root: Path, n: int) -> Path:
    """A QaTa-COV19 v2 replica of ``n`` training images; image k has a (k % 5 + 1)-pixel-high lesion, none when k % 7 == 0."""
    top = root / "QaTa-COV19-v2" / "Train Set"
    (top / "Images").mkdir(parents=True)
    (top / "Ground-truths").mkdir()
    y, x = np.indices((SIDE, SIDE))
    for k in range(n):
        Image.fromarray((5 * y + 3 * x + k).astype(np.uint8)).save(top / "Images" / f"covid_{k}.png")
        mask = np.zeros((SIDE, SIDE), np.uint8)
        if k % 7:
            mask[2:3 + k % 5, 4:10] = 255
        Image.fromarray(mask).save(top / "Ground-truths" / f"mask_covid_{k}.png")
    return top


def task_runs(flow_run_id: str, expected: int, wait_s: float = 60) -> int:
    """How many task runs the Prefect API recorded for a flow run, once it has ``expected`` of them
    or ``wait_s`` has passed: a task run reaches the API as events, which the server records in the
    background, possibly after the command that sent them has ended."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200)
            if len(runs) >= expected or time.monotonic() > deadline:
                return len(runs)
            time.sleep(0.5)


def data_files(root: Path, table: str) -> set[str]:
    return set(tables.data_files(root / "catalog", table))


@pytest.mark.slow
def test_many_images_few_tasks_quarantine_and_clean_rerun(cli, data_root: Path, tmp_path: Path):
    top = write_qata(tmp_path / "release", IMAGES)
    corrupt = top / "Images" / "covid_5.png"
    good = corrupt.read_bytes()
    corrupt.write_bytes(good[: len(good) // 2])
    odd_mask = top / "Ground-truths" / "mask_covid_9.png"
    Image.fromarray(np.zeros((SIDE, SIDE * 2), np.uint8)).save(odd_mask)  # 32x16: no aspect match

    first = cli("ingest", "qata_cov19", "--source", tmp_path / "release")
    assert first.exit_code == 0, first.output
    assert f"{IMAGES - 2} ingested, 0 unchanged, 2 quarantined" in first.output, first.output
    reasons = dict(query(data_root, "SELECT case_id, reason FROM cases WHERE status = 'quarantined'"))
    assert set(reasons) == {"train-covid_5", "train-covid_9"}
    assert "covid_5.png" in reasons["train-covid_5"] and "cannot be read" in reasons["train-covid_5"]
    assert "mask_covid_9.png" in reasons["train-covid_9"] and "aspect ratios differ" in reasons["train-covid_9"]

    run_id, counts = query(data_root, "SELECT run_id, counts FROM runs")[0]
    tasks = json.loads(counts)["qata_cov19"]["tasks"]
    buckets = len({bucket_of(f"train-covid_{k}") for k in range(IMAGES)})
    assert tasks == buckets <= BUCKETS and task_runs(run_id, tasks) == tasks < IMAGES / 2
    assert len(data_files(data_root, "cases")) <= 2  # rows committed in batches, not one file per image
    expected_objects = sum(1 for k in range(IMAGES) if k % 7 and k not in (5, 9))
    assert query(data_root, "SELECT count(*) FROM objects")[0][0] == expected_objects

    corrupt.write_bytes(good)
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(odd_mask)
    second = cli("ingest", "qata_cov19", "--source", tmp_path / "release")
    assert f"2 ingested, {IMAGES - 2} unchanged, 0 quarantined" in second.output, second.output
    run_ids = dict(query(data_root, "SELECT case_id, run_id FROM cases WHERE case_id IN ('train-covid_5', 'train-covid_9', 'train-covid_1')"))
    assert run_ids["train-covid_5"] == run_ids["train-covid_9"] != run_ids["train-covid_1"] == run_id

    assert query(data_root, "SELECT count(*), count(DISTINCT case_id) FROM cases") == [(IMAGES, IMAGES)]
    assert query(data_root, "SELECT count(*) FROM cases WHERE status = 'ok'")[0][0] == IMAGES
    total, distinct = query(data_root, "SELECT count(*), count(DISTINCT (case_id, slice_index, label)) FROM objects")[0]
    assert total == distinct == expected_objects + 1  # covid_5 has a lesion, covid_9's fixed mask is empty
    assert query(data_root, "SELECT area_px FROM objects WHERE case_id = 'train-covid_5'") == [(6,)]


def test_bucket_of_is_stable():
    """Buckets derive from case ids alone, so the same case is always in the same task."""
    assert BUCKETS == 64
    assert [bucket_of("train-covid_1"), bucket_of("case-0001")] == [13, 37]
    cases = [CaseFiles(f"case-{k:04d}", (Path(f"/x/{k}.png"),), None) for k in range(300, 0, -1)]
    groups = group_by_bucket(cases)
    assert list(groups) == sorted(groups) and sum(len(g) for g in groups.values()) == 300
    assert all(g == sorted(g, key=lambda c: c.case_id) and {bucket_of(c.case_id) for c in g} == {b} for b, g in groups.items())


def test_a_batch_heals_rows_lost_in_a_crash(tmp_path: Path):
    """A crash after the store was written but before the catalog commit (or a lost ``objects``
    commit) re-ingests exactly those cases next time, and the commit never duplicates a row."""
    write_qata(tmp_path / "release", 12)
    card = get_card("qata_cov19")
    store, catalog = tmp_path / "store", tmp_path / "catalog"
    cases = list(card.discover(tmp_path / "release"))
    _, members = max(group_by_bucket(cases).items(), key=lambda item: len(item[1]))
    statuses, outcomes = ingest_batch(card, members, store, {}, {}, "run-1")
    assert {s.status for s in statuses} == {"ok"}
    with_objects = {o.case.case_id for o in outcomes if o.objects}
    assert with_objects, "the bucket should hold some objects"
    commit_outcomes(catalog, card.id, outcomes)
    rows = tables.read(catalog, "objects").to_pylist()
    tables.replace(catalog, [], type(outcomes[0].objects[0]), {"dataset": [card.id]})  # as if objects were lost

    previous, counts = previous_state(catalog, card.id)
    statuses, second = ingest_batch(card, members, store, previous, counts, "run-2")
    assert {s.case_id for s in statuses if s.status == "ok"} == with_objects
    assert {s.case_id for s in statuses if s.status == "skipped"} == {c.case_id for c in members} - with_objects
    commit_outcomes(catalog, card.id, second)
    commit_outcomes(catalog, card.id, second)  # a repeated commit changes nothing
    healed = tables.read(catalog, "objects").to_pylist()
    assert sorted((r["case_id"], r["label"]) for r in healed) == sorted((r["case_id"], r["label"]) for r in rows)
    assert len(tables.read(catalog, "cases")) == len(members)
