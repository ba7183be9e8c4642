"""Overlay figures: image, ground-truth contour, predicted contour and prompt box for a few objects.

Predictions are not stored (only their metrics are), so the figure re-runs the model on the chosen
objects with the same protocol and seed, which reproduces the recorded prompt exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from catalog.query import connect  # noqa: E402
from tasks.evaluate_unit import object_context, slice_rgb  # noqa: E402
from tasks.locations import Location  # noqa: E402
from tasks.models import load_model  # noqa: E402
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
