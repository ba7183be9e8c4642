"""``sam2-propagation`` and ``sam2-propagation-point``: a volume as a video, one prompt carried by SAM 2's memory
(protocols.md §7.3; bowang-lab/MedSAM2 ``medsam2_infer_3D_CT.py``).

Per object, as MedSAM2's 3D CT inference: prompt one slice; propagate forward from it; reset the
state; prompt the same slice again with the same prompt; propagate in reverse; the prediction is the
union of both passes, then its largest 26-connected 3D component (``skimage.measure.label``'s default
full connectivity there; ties: the first in raster order). One step.

The prompt: ``sam2-propagation`` sends the object's tight GT box on its key slice (the voxel-weighted
median slice; MedSAM2's boxes come with the data and are not jittered in its 3D script);
``sam2-propagation-point`` sends the first CVPR 2025 click instead (``tasks.protocols.clicks3d``
``next_click`` on an empty prediction: one foreground point at the object's deepest voxel, ties by
the object's seeded generator), on that click's slice.

Range: MedSAM2 propagates through the whole stack it is given (DeepLesion crops a few slices around
each lesion). Here the passes cover the object's GT slice range plus ``margin_slices`` on each side
(clipped to the volume), through the package's ``start_frame_idx`` / ``max_frame_num_to_track``: the
cost follows the object, not the case's depth (a 600-slice CT), and the margin (default 3) leaves
SAM 2's object-presence head room to stop by itself, so leakage past the object's ends is scored as
false positives rather than cut off by the GT range; ``margin_slices=0`` matches the range the
CVPR protocols give their 2D models. The model sees the whole case as its video (its
``num_frames`` is the depth), so only which frames are tracked changes.

Scored with the MedSAM paper's convention (surface-distance NSD at 2 mm of real spacing), as the other
volumetric protocols. Needs a video-capable model (``tasks.models.sam2_video``); the runner refuses
others by name.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.models.base import Prompt
from tasks.protocols.base import tight_box
from tasks.protocols.clicks3d import largest_component, next_click
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

MARGIN_SLICES = 3
SCORING = convention("medsam-paper").to_params()


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a (Z, H, W) bool volume, as a volume of the same shape
    (MedSAM2's ``getLargestCC``); an empty volume stays empty."""
    out = np.zeros(mask.shape, dtype=bool)
    found = largest_component(mask)
    if found is not None:
        component, where = found
        out[where] = component
    return out


def tracked_range(ctx: VolumeContext, margin: int) -> tuple[int, int]:
    """The object's slice range widened by ``margin`` slices each way, clipped to the volume."""
    return max(0, ctx.target.first_slice - margin), min(ctx.gt.shape[0] - 1, ctx.target.last_slice + margin)


def propagate_both_ways(ctx: VolumeContext, z: int, prompt: Prompt, low: int, high: int) -> np.ndarray:
    """Forward pass from ``z`` to ``high``, then (state reset, same prompt) reverse pass down to ``low``;
    the union of both passes' masks, then its largest 3D component."""
    union = ctx.empty()
    for reverse in (False, True):
        for frame, mask in ctx.track(z, prompt, low, high, reverse=reverse):
            union[frame] |= mask
    return keep_largest_component(union)


class SAM2Propagation(VolumeProtocol):
    """One step: the key slice's tight GT box, propagated forward and in reverse by SAM 2's memory."""

    name = "sam2-propagation"
    needs_video = True
    OPTIONS = ("margin_slices",)
    PROMPT = "key-slice-gt-tight-box"

    def __init__(self, margin_slices: int = MARGIN_SLICES):
        if int(margin_slices) != margin_slices or margin_slices < 0:
            raise ValueError(f"{self.name}: margin_slices must be a whole number >= 0, not {margin_slices!r}")
        self.margin_slices = int(margin_slices)

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {
            "prompt": self.PROMPT, "passes": "forward-reset-reverse", "combine": "union",
            "postprocess": "largest-26-component", "range": "gt-slices-plus-margin", "margin_slices": self.margin_slices,
            "scoring": SCORING,
        }),)

    def prompt(self, ctx: VolumeContext) -> tuple[int, Prompt, dict]:
        """The prompted slice, the prompt, and its JSON description."""
        key = ctx.target.key_slice
        box = tuple(float(v) for v in tight_box(ctx.gt[key]))
        return key, Prompt(box=box), {"box": list(box), "z": key}

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        z, prompt, described = self.prompt(ctx)
        low, high = tracked_range(ctx, self.margin_slices)
        pred = propagate_both_ways(ctx, z, prompt, low, high)
        yield VolumeStep(self.name, 1, {**described, "z_range": [low, high]}, pred)


class SAM2PropagationPoint(SAM2Propagation):
    """One step: the first CVPR 2025 click (a foreground point at the object's deepest voxel) on its slice,
    propagated forward and in reverse by SAM 2's memory."""

    name = "sam2-propagation-point"
    PROMPT = "cvpr25-first-click"

    def prompt(self, ctx: VolumeContext) -> tuple[int, Prompt, dict]:
        click = next_click(ctx.empty(), ctx.gt, ctx.rng)
        if click is None:
            raise ValueError(f"{self.name}: object {ctx.target.label} has no voxel to click on")
        return click.z, Prompt(points=((float(click.x), float(click.y)),), point_labels=(1,)), click.to_json()
