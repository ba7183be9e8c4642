"""Overlay figures: image, ground-truth contour, predicted contour and prompt box for a few objects.

Slice-wise predictions are not stored (only their metrics are), so :func:`overlay_figure` re-runs the
model on the chosen objects with the same protocol and seed, which reproduces the recorded prompt
exactly. Volumetric runs store their predicted label volumes in the case
(``tasks.predictions``), so :func:`volume_overlay_figure` reads them and runs no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from catalog.query import connect  # noqa: E402
from tasks.evaluate_unit import object_context, slice_rgb  # noqa: E402
from tasks.locations import Location  # noqa: E402
from tasks.models import load_model  # noqa: E402
from tasks.predictions import read_prediction  # noqa: E402
from tasks.protocols import get_protocol  # noqa: E402
from tasks.store import StoredCase  # noqa: E402


def pick_objects(catalog: Location, model: str, spec_id: str) -> list[dict]:
    """For each target, the object with the largest ground truth (its lesion is the most visible)."""
    con = connect(catalog)
    cursor = con.execute("""
        SELECT r.dataset, r.case_id, r.slice_index, r.label, r.target, r.dice, r.prompt, c.zarr_path
        FROM results r JOIN cases c USING (dataset, case_id)
        WHERE r.model = ? AND r.spec_id = ? AND r.step = 1 AND r.scope = 'slice'
        QUALIFY row_number() OVER (PARTITION BY r.target ORDER BY r.gt_area_px DESC) = 1
        ORDER BY r.dataset, r.target
    """, [model, spec_id])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _crop(mask: np.ndarray, margin: float = 1.5, minimum: int = 96) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half = max(minimum / 2, margin * max(np.ptp(ys), np.ptp(xs)))
    y0, x0 = int(max(cy - half, 0)), int(max(cx - half, 0))
    return slice(y0, int(min(cy + half, mask.shape[0]))), slice(x0, int(min(cx + half, mask.shape[1])))


def overlay_figure(catalog: Location, out: Path, model_name: str = "litemedsam", protocol_name: str = "medsam-box") -> Path:
    """Write a PNG with one panel per target and return its path."""
    protocol = get_protocol(protocol_name)
    objects = pick_objects(catalog, model_name, protocol.specs[0].id)
    if not objects:
        raise ValueError(f"no {model_name} results under {protocol_name} to draw")
    model = load_model(model_name)
    fig, axes = plt.subplots(1, len(objects), figsize=(3.2 * len(objects), 3.6), squeeze=False)
    for ax, obj in zip(axes[0], objects):
        case = StoredCase(obj["zarr_path"])
        image = slice_rgb(case, obj["slice_index"])
        gt = case.mask_slice(obj["slice_index"]) == obj["label"]
        embedding = model.encode(image)
        key = (obj["dataset"], obj["case_id"], obj["slice_index"], obj["label"])
        step = protocol.run(object_context(model, embedding, gt, key, protocol, []))[0]
        rows, cols = _crop(gt)
        ax.imshow(image[rows, cols], interpolation="nearest")
        ax.contour(gt[rows, cols], levels=[0.5], colors="lime", linewidths=1.2)
        if step.mask[rows, cols].any():
            ax.contour(step.mask[rows, cols], levels=[0.5], colors="red", linewidths=1.2)
        box = json.loads(obj["prompt"]).get("box")
        if box:
            x0, y0, x1, y1 = box
            ax.add_patch(Rectangle((x0 - cols.start, y0 - rows.start), x1 - x0, y1 - y0, fill=False, ec="yellow", ls="--", lw=1))
        ax.set_title(f"{obj['case_id']} z{obj['slice_index']} {obj['target']}\nDice {obj['dice']:.3f}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{model_name} / {protocol_name}: ground truth (green), prediction (red), box (yellow)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


VOLUME_PICKS_SQL = """
    WITH final AS (
        SELECT * FROM results WHERE scope = 'volume' QUALIFY step = max(step) OVER (PARTITION BY spec_id)
    ), ranked AS (
        SELECT dataset, case_id, label, target, model, model_sha256, protocol, spec_id, step, dice,
               row_number() OVER (PARTITION BY model, model_sha256, spec_id ORDER BY dice DESC, dataset, case_id, label) AS best,
               row_number() OVER (PARTITION BY model, model_sha256, spec_id ORDER BY dice ASC, dataset, case_id, label) AS worst
        FROM final
    )
    SELECT r.dataset, r.case_id, r.label, r.target, r.model, r.protocol, r.step, r.dice,
           CASE WHEN r.best = 1 THEN 'best' ELSE 'worst' END AS pick,
           o.key_slice, c.zarr_path, v.prediction
    FROM ranked r
    JOIN volume_objects o ON o.dataset = r.dataset AND o.case_id = r.case_id AND o.label = r.label
    JOIN cases c ON c.dataset = r.dataset AND c.case_id = r.case_id
    LEFT JOIN volume_steps v ON v.dataset = r.dataset AND v.case_id = r.case_id AND v.label = r.label
         AND v.model = r.model AND v.model_sha256 = r.model_sha256 AND v.spec_id = r.spec_id AND v.step = r.step
    WHERE r.best = 1 OR r.worst = 1
    ORDER BY r.protocol, r.spec_id, r.model, r.model_sha256, pick
"""
"""Per model and volumetric spec, the objects with the best and the worst final-step 3D Dice (one row
if the spec has one object), with the key slice, the case's store path and the stored prediction's name."""


@dataclass(frozen=True)
class VolumePick:
    """One volume object chosen for an overlay, with where its image, GT and prediction are."""

    dataset: str
    case_id: str
    label: int
    target: str
    model: str
    protocol: str
    step: int
    dice: float
    pick: str  # best | worst
    key_slice: int
    zarr_path: str
    prediction: str | None

    @property
    def name(self) -> str:
        """How the report names the object."""
        return f"{self.model} / {self.protocol} {self.pick}: {self.dataset}/{self.case_id} label {self.label}"


@dataclass(frozen=True)
class VolumeOverlays:
    """The overlay figure (None if no pick had a stored prediction) and the picks left out for lack of one."""

    path: Path | None
    skipped: list[str]


def volume_picks(con: duckdb.DuckDBPyConnection) -> list[VolumePick]:
    """The objects :data:`VOLUME_PICKS_SQL` chooses."""
    return [VolumePick(*row) for row in con.execute(VOLUME_PICKS_SQL).fetchall()]


def _draw_volume_pick(ax, pick: VolumePick, predicted: np.ndarray) -> None:
    """The key slice of ``pick`` with its GT (green) and predicted (red) contours, cropped around the GT."""
    case = StoredCase(pick.zarr_path)
    z = pick.key_slice
    image = slice_rgb(case, z)
    gt = case.mask_slice(z) == pick.label
    pred = predicted[z] == pick.label
    rows, cols = _crop(gt)
    ax.imshow(image[rows, cols], interpolation="nearest")
    ax.contour(gt[rows, cols], levels=[0.5], colors="lime", linewidths=1.2)
    if pred[rows, cols].any():
        ax.contour(pred[rows, cols], levels=[0.5], colors="red", linewidths=1.2)
    ax.set_title(f"{pick.model} / {pick.protocol} s{pick.step} ({pick.pick})\n"
                 f"{pick.case_id} z{z} {pick.target}, 3D Dice {pick.dice:.3f}", fontsize=8)
    ax.axis("off")


def volume_overlay_figure(con: duckdb.DuckDBPyConnection, out: Path) -> VolumeOverlays:
    """Write a PNG with one panel per picked volume object whose prediction is stored (its key slice,
    GT and prediction read from the store) and return it with the picks skipped for lack of one."""
    drawable, skipped = [], []
    for pick in volume_picks(con):
        predicted = read_prediction(pick.zarr_path, pick.prediction) if pick.prediction else None
        if predicted is None:
            skipped.append(pick.name)
        else:
            drawable.append((pick, predicted))
    if not drawable:
        return VolumeOverlays(None, skipped)
    ncols = min(4, len(drawable))
    nrows = -(-len(drawable) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(drawable):]:
        ax.axis("off")
    for ax, (pick, predicted) in zip(axes.flat, drawable):
        _draw_volume_pick(ax, pick, predicted)
    fig.suptitle("stored volumetric predictions: ground truth (green), prediction (red)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return VolumeOverlays(out, skipped)
