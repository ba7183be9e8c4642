"""The stored predictions the catalog knows of: ``volume_steps`` rows that name a label image
(column ``prediction``), with their case's location in the store, and the choice of steps to export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import duckdb

STEP_CHOICES = ("final", "first", "all")

PREDICTIONS_SQL = """
SELECT DISTINCT v.case_id, c.zarr_path, v.model_sha256, v.spec_id, v.step, v.prediction
FROM volume_steps v JOIN cases c ON c.dataset = v.dataset AND c.case_id = v.case_id
WHERE v.dataset = ? AND v.model = ? AND v.protocol = ? AND v.prediction IS NOT NULL AND c.status = 'ok'
ORDER BY v.case_id, v.model_sha256, v.spec_id, v.step
"""

RUNS_SQL = """
SELECT DISTINCT model, protocol FROM volume_steps WHERE dataset = ? AND prediction IS NOT NULL ORDER BY 1, 2
"""


@dataclass(frozen=True)
class StoredPrediction:
    """One label image of a case: a step of one (model weights, protocol spec) run."""

    case_id: str
    zarr_path: str
    model_sha256: str
    spec_id: str
    step: int
    name: str


def stored_predictions(con: duckdb.DuckDBPyConnection, dataset: str, model: str, protocol: str) -> list[StoredPrediction]:
    """Every stored prediction of ``model`` under ``protocol`` on the ok cases of ``dataset``, in
    case, weights, spec and step order (``con`` has the ``cases`` and ``volume_steps`` views)."""
    return [StoredPrediction(*row) for row in con.execute(PREDICTIONS_SQL, [dataset, model, protocol]).fetchall()]


def stored_runs(con: duckdb.DuckDBPyConnection, dataset: str) -> list[tuple[str, str]]:
    """The (model, protocol) pairs with stored predictions on ``dataset``, for messages."""
    return [tuple(row) for row in con.execute(RUNS_SQL, [dataset]).fetchall()]


def parse_step(text: str) -> str | int:
    """``final``, ``first``, ``all`` or a step number; ValueError otherwise."""
    if text in STEP_CHOICES:
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--step takes {', '.join(STEP_CHOICES)} or a step number, not {text!r}")


def choose_steps(predictions: Sequence[StoredPrediction], step: str | int) -> list[StoredPrediction]:
    """The predictions of the chosen step of each case's run (per case, weights and spec):
    ``final`` the highest stored step, ``first`` the lowest, ``all`` every one, or step ``N``."""
    chosen: list[StoredPrediction] = []
    ordered = sorted(predictions, key=lambda p: (p.case_id, p.model_sha256, p.spec_id, p.step))
    for _, group in groupby(ordered, key=lambda p: (p.case_id, p.model_sha256, p.spec_id)):
        steps = list(group)
        if step == "all":
            chosen.extend(steps)
        elif step == "final":
            chosen.append(steps[-1])
        elif step == "first":
            chosen.append(steps[0])
        else:
            chosen.extend(p for p in steps if p.step == step)
    return chosen
