"""``cvpr25-interactive``: the CVPR 2025 interactive 3D challenge for a 2D model (protocols.md §7.2).

Step 1, the box (``get_boxes.py``): on the key slice (the voxel-weighted median slice of the object,
``z_indices[len(z_indices) // 2]``), the object's tight 2D box enlarged by ``shift = randint(0, 6)``
(0..6 inclusive, drawn from the object's seeded generator) scaled per axis as ``int(shift * W / 256)``
and ``int(shift * H / 256)``, clipped to the image. The box travels with the object's ``z_min``/``z_max``:
a 2D model is prompted on the key slice and the prediction carried through ``z_min .. z_max`` by the
CVPR 2024 propagation rule (each next slice gets the previous prediction's box + 3 model-input px; an
empty neighbour falls back to the key box).

Steps 2-6, five clicks (``tasks.protocols.clicks3d``): each at the deepest voxel of the largest error
component, foreground or background by the GT; clicks accumulate. A 3D click needs a rule for a 2D
model, and this is the one kept: a click on slice z re-prompts z with the box z last had and every
click on z; then the change is carried outward, away from the key slice (both ways for a click on the
key slice), as the propagation carried the box: each next slice re-prompted with the box of its
inner neighbour's new prediction (+3 px, key box if empty) and the clicks on it, until a slice's
prediction no longer changes or the walk leaves ``z_min .. z_max``. Slices between the key slice and
z do not depend on z's prediction and keep theirs. A step with no error left places no click and
repeats the previous prediction.

Objects are prompted one at a time, each as a binary volume ("all classes in parallel" in the
challenge: every class gets its click from its own error; here no class overwrites another). No mask
input: the previous prediction reaches the model only through the boxes it yields. Scored per object
with the MedSAM paper's convention (surface-distance NSD at 2 mm of real spacing); the CVPR summary
averages over a case's labels, applies the DSC > 0.2 gate and computes DSC_AUC and NSD_AUC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.protocols.base import tight_box
from tasks.protocols.clicks3d import Click, next_click
from tasks.protocols.propagation import Box, box_and_clicks, mask_box, propagate
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

CLICKS = 5
MAX_SHIFT = 6  # randint(0, 6) in get_boxes.py
PROPAGATION_MARGIN = 3
SCORING = convention("medsam-paper").to_params()


def challenge_box(mask: np.ndarray, shift: int) -> Box:
    """``get_boxes.py``'s 2D box: the tight box of ``mask`` (H, W) enlarged by ``shift`` scaled to the
    image per axis (integer), clipped to the image."""
    height, width = mask.shape
    x0, y0, x1, y1 = tight_box(mask)
    sx, sy = int(shift * width / 256), int(shift * height / 256)
    return float(max(0, x0 - sx)), float(max(0, y0 - sy)), float(min(width - 1, x1 + sx)), float(min(height - 1, y1 + sy))


def key_box(ctx: VolumeContext) -> tuple[Box, int]:
    """The challenge's initial box on the object's key slice and the shift drawn for it (0..6, from the
    object's seeded generator: the first draw of the protocol)."""
    shift = int(ctx.rng.integers(0, MAX_SHIFT + 1))
    return challenge_box(ctx.gt[ctx.target.key_slice], shift), shift


@dataclass
class _SliceState:
    """What each slice of the walk was last prompted with."""

    boxes: dict[int, Box]
    clicks: dict[int, list[tuple[int, int, int]]]


class CVPR25Interactive(VolumeProtocol):
    """Six steps: the key-slice box carried through the object's range, then five refinement clicks."""

    name = "cvpr25-interactive"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {
            "box": "key-slice-gt-shift-0-6-per-256", "propagation": "previous-mask-box", "margin_px": PROPAGATION_MARGIN,
            "clicks": CLICKS, "click": "edt-max-largest-26-error-component", "click_2d": "reprompt-and-carry-until-unchanged",
            "scoring": SCORING,
        }, steps=1 + CLICKS),)

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        key, low, high = ctx.target.key_slice, ctx.target.first_slice, ctx.target.last_slice
        box, shift = key_box(ctx)
        pred = ctx.empty()
        state = _SliceState({}, {})
        propagate(ctx, pred, key, box, low, high, PROPAGATION_MARGIN, fallback=True, boxes=state.boxes)
        yield VolumeStep(self.name, 1, {"box": list(box), "z": key, "shift": shift}, pred.copy())
        for step in range(2, 2 + CLICKS):
            click = next_click(pred, ctx.gt, ctx.rng)
            if click is None:
                yield VolumeStep(self.name, step, {"click": None}, pred.copy())
                continue
            self._refine(ctx, pred, click, key, box, low, high, state)
            yield VolumeStep(self.name, step, click.to_json(), pred.copy())

    @staticmethod
    def _refine(
        ctx: VolumeContext, pred: np.ndarray, click: Click, key: int, key_box: Box, low: int, high: int,
        state: _SliceState,
    ) -> None:
        """Re-prompt the click's slice with its box and clicks, then carry the change away from the key slice."""
        z = click.z
        state.clicks.setdefault(z, []).append((click.x, click.y, int(click.foreground)))
        box = state.boxes.get(z, key_box)
        state.boxes[z] = box
        pred[z] = ctx.predict(z, box_and_clicks(box, state.clicks[z]))
        for direction in ((+1, -1) if z == key else (1 if z > key else -1,)):
            s = z + direction
            while low <= s <= high:
                box = mask_box(pred[s - direction], ctx, PROPAGATION_MARGIN) or key_box
                state.boxes[s] = box
                new = ctx.predict(s, box_and_clicks(box, state.clicks.get(s, ())))
                changed = not np.array_equal(new, pred[s])
                pred[s] = new
                if not changed:
                    break
                s += direction
