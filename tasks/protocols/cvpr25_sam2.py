"""``cvpr25-interactive-sam2``: the CVPR 2025 interactive 3D challenge (protocols.md §7.2) for SAM 2 in video mode.

The challenge's prompts, as ``cvpr25-interactive`` sends them to a 2D model: step 1 the key slice's
box (tight GT box enlarged by ``randint(0, 6)`` scaled per axis, ``get_boxes.py``) with the object's
``z_min .. z_max``; steps 2-6 one click each at the deepest voxel of the largest error component,
foreground or background by the GT (``tasks.protocols.clicks3d``); a step with no error places no
click and repeats the previous prediction.

What SAM 2's memory does with them (``tasks.models.sam2_video``):

* Step 1, as ``sam2-propagation`` (MedSAM2's two passes): a forward pass (box on the key slice,
  tracked up to ``z_max``) and a reverse pass (its own state, same box, down to ``z_min``). Both
  passes keep their state for the clicks. The prediction is the forward pass above the key slice,
  the reverse pass below it and their union on it; no component filtering (the challenge scores the
  model's output as it is).
* Each click is added on its slice to the pass that tracked that slice (both for the key slice) as
  a correction: the package's ``add_new_points_or_box`` with ``clear_old_points=False``, so the
  slice's earlier inputs (the box on the key slice, earlier clicks there) stay and the slice's last
  prediction is the decoder's mask input; the corrected slice becomes a conditioning frame
  (``add_all_frames_to_correct_as_cond``). Then that pass is propagated again from the clicked slice
  to its end of the range, replacing those slices' predictions; slices between the key slice and the
  click keep theirs (as samatlas's 2D rule, and as SAM 2's demo would not, which re-tracks from the
  first conditioning frame).

Scored per object with the MedSAM paper's convention, as ``cvpr25-interactive``; its CVPR summary
(DSC_AUC, NSD_AUC over the click steps) applies unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.models.base import Prompt
from tasks.protocols.clicks3d import Click, next_click
from tasks.protocols.cvpr25_interactive import CLICKS, key_box
from tasks.protocols.volumetric import VideoPassLike, VolumeContext, VolumeProtocol, VolumeStep

SCORING = convention("medsam-paper").to_params()


def passes_for(z: int, key: int) -> tuple[bool, ...]:
    """Which passes (reverse flags) tracked slice ``z``: the forward above the key slice, the reverse
    below it, both on it."""
    return (False, True) if z == key else ((True,) if z < key else (False,))


class CVPR25InteractiveSAM2(VolumeProtocol):
    """Six steps: the key-slice box tracked both ways by SAM 2's memory, then five clicks, each added to
    the pass that tracked its slice and propagated again from there."""

    name = "cvpr25-interactive-sam2"
    needs_video = True

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {
            "box": "key-slice-gt-shift-0-6-per-256", "passes": "forward-and-reverse-states", "range": "gt-slices",
            "combine": "forward-above-reverse-below-union-on-key", "postprocess": "none",
            "clicks": CLICKS, "click": "edt-max-largest-26-error-component",
            "click_video": "correction-as-conditioning-frame-repropagate-from-click", "scoring": SCORING,
        }, steps=1 + CLICKS),)

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        key, low, high = ctx.target.key_slice, ctx.target.first_slice, ctx.target.last_slice
        box, shift = key_box(ctx)
        tracker = ctx.tracker()
        passes = {reverse: tracker.open_pass(low, high, reverse, keep_outputs=True) for reverse in (False, True)}
        pred, key_masks = ctx.empty(), {}
        for reverse, video_pass in passes.items():
            video_pass.prompt(key, Prompt(box=box))
            self._write(ctx, pred, key_masks, video_pass, key, key, reverse)
        yield VolumeStep(self.name, 1, {"box": list(box), "z": key, "shift": shift}, pred.copy())
        for step in range(2, 2 + CLICKS):
            click = next_click(pred, ctx.gt, ctx.rng)
            if click is None:
                yield VolumeStep(self.name, step, {"click": None}, pred.copy())
                continue
            for reverse in passes_for(click.z, key):
                passes[reverse].prompt(click.z, self._click_prompt(click), correction=True)
                self._write(ctx, pred, key_masks, passes[reverse], click.z, key, reverse)
            yield VolumeStep(self.name, step, click.to_json(), pred.copy())
        for video_pass in passes.values():
            video_pass.close()

    @staticmethod
    def _click_prompt(click: Click) -> Prompt:
        return Prompt(points=((float(click.x), float(click.y)),), point_labels=(int(click.foreground),))

    @staticmethod
    def _write(ctx: VolumeContext, pred: np.ndarray, key_masks: dict[bool, np.ndarray], video_pass: VideoPassLike,
               start: int, key: int, reverse: bool) -> None:
        """Propagate ``video_pass`` from ``start`` and write its masks into ``pred``; the key slice holds
        the union of the two passes' latest masks there."""
        for z, mask in ctx.record(video_pass.propagate(start)):
            if z == key:
                key_masks[reverse] = mask
                pred[z] = np.logical_or.reduce(list(key_masks.values()))
            else:
                pred[z] = mask
