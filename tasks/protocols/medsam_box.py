"""``medsam-box``: the ground-truth box of the object on the slice, expanded by a fixed margin.

The margin is stated per model in its input pixels (20 px at 1024 for SAM/MedSAM as in MedSAM's
SAM baseline scripts, 5 px at 256 for LiteMedSAM as in its inference_3D.py); one mask output.
The jittered variant ``medsam-box-jitter`` draws each side's expansion uniformly from 0..margin
(MedSAM's training perturbation, ``train_one_gpu.py``: ``random.randint(0, bbox_shift)`` per side,
drawn in the order x_min, x_max, y_min, y_max), from the object's seeded generator instead of
Python's global ``random``; the box is clipped to the resized image as ``medsam-box`` clips it.

Both reproduce the CVPR 2024 "MedSAM on Laptop" baseline's prompt, so their NSD and HD95 default to
that challenge's 2D scorer (``cvpr24-2d``: DeepMind surfels at 2 px, NSD 0 unless Dice > 0.2, the
image lifted to a one-slice volume), the rule behind the published LiteMedSAM numbers they are put
beside; ``--metrics`` names another. The other slice-wise protocols reproduce papers that report
no surface metric (Mazurowski et al.: IoU; micro-sam: mSA; SAM-Med2D: Dice), so they keep the
stated default, ``samatlas-voxels``.
"""

from __future__ import annotations

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.models.base import DecodeRequest, Prompt
from tasks.protocols.base import Context, PromptProtocol, Step, Steps, expand_box, tight_box


SOURCE_SCORING = convention("cvpr24-2d").to_params()
"""The metric convention of the challenge whose baseline these protocols reproduce."""


class MedSAMBox(PromptProtocol):
    """One step: the tight GT box of the whole object, expanded by the model's box margin."""

    name = "medsam-box"
    MIN_AREA_PX = 10  # LiteMedSAM's 2D small-component threshold: smaller boxes degenerate

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        # The margin is the model's stated one (Context.box_shift); the model's sha256 is in the key.
        return (ProtocolSpec(self.name, {"box_margin": "model", "scoring": SOURCE_SCORING}, min_area_px=self.MIN_AREA_PX),)

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        box = expand_box(tight_box(ctx.gt), ctx.geometry, ctx.box_shift)
        prompt = Prompt(box=box)
        out = yield DecodeRequest(prompt, multimask=False)
        return [Step(self.name, 1, prompt, out.masks[0], float(out.scores[0]))]


class MedSAMBoxJitter(MedSAMBox):
    """One step: the tight GT box, each side pushed out by an independent integer in 0..margin."""

    name = "medsam-box-jitter"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(
            self.name, {"box_margin": "model", "jitter": "uniform-0-margin-per-side", "scoring": SOURCE_SCORING},
            min_area_px=self.MIN_AREA_PX,
        ),)

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        # MedSAM draws x_min, x_max, y_min, y_max in that order; randint(0, n) includes n.
        dx0, dx1, dy0, dy1 = (int(v) for v in ctx.rng.integers(0, ctx.box_shift + 1, size=4))
        box = expand_box(tight_box(ctx.gt), ctx.geometry, (dx0, dy0, dx1, dy1))
        prompt = Prompt(box=box)
        out = yield DecodeRequest(prompt, multimask=False)
        return [Step(self.name, 1, prompt, out.masks[0], float(out.scores[0]))]
