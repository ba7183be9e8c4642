"""Synthetic catalog rows for plumbing tests (no image behind them): typed rows with defaults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from catalog import tables
from records.rows import SLICE, CaseRow, ObjectRow, ResultRow
from records.specs import ProtocolSpec


def case_row(case_id: str, status: str = "ok", dataset: str = "d") -> CaseRow:
    return CaseRow(
        dataset=dataset, case_id=case_id, subset="default", status=status, reason=None, shape=[1, 1, 8, 8],
        spacing=[1.0, 1.0, 1.0], zarr_path=f"/store/{dataset}/{case_id}", source_files=[], source_sha256=[],
        n_objects=0, ingested_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), run_id="r", modality="ct", anatomy="chest",
    )


def object_row(case_id: str, z: int, label: int = 1, area: int = 50, dataset: str = "d") -> ObjectRow:
    return ObjectRow(
        dataset=dataset, case_id=case_id, subset="default", slice_index=z, label=label, target="t", area_px=area,
        area_mm2=float(area), bbox=[0, 0, 1, 1], components=1, modality="ct", anatomy="lung",
    )


def result_row(case_id: str, z: int, spec: ProtocolSpec, step: int = 1, sha: str = "abc", dice: float = 0.5,
               label: int = 1, run_id: str = "r", dataset: str = "d", anatomy: str = "lung") -> ResultRow:
    return ResultRow(
        dataset=dataset, case_id=case_id, scope=SLICE, slice_index=z, label=label, target="t", model="m",
        model_sha256=sha, protocol=spec.name, spec_id=spec.id, spec=spec.params_json, spec_label=spec.label,
        step=step, prompt="{}", dice=dice, iou=dice, nsd=dice, hd95=1.0, gt_area_px=50, pred_area_px=50,
        model_score=0.9, encode_s=0.0, decode_s=0.0, run_id=run_id, code_version="test", modality="ct", anatomy=anatomy,
    )


def write_case(root: Path, case_id: str, slices: range, status: str = "ok", area: int = 50, labels=(1,)) -> None:
    """A case and its objects (one per slice and label), committed as ingest commits them."""
    scope = {"dataset": ["d"], "case_id": [case_id]}
    tables.replace(root, [object_row(case_id, z, lab, area) for z in slices for lab in labels], ObjectRow, scope)
    tables.replace(root, [case_row(case_id, status)], CaseRow, scope)


def write_done(root: Path, case_id: str, z: int, spec: ProtocolSpec, sha: str = "abc", label: int = 1) -> None:
    """Every step of ``spec`` for one object, as evaluate commits them."""
    tables.insert_missing(root, [result_row(case_id, z, spec, s, sha, label=label) for s in range(1, spec.steps + 1)], ResultRow)
