"""``microsam-iterative``: micro-sam's iterative prompting (Archit et al., Nat. Methods 2025).

Reference code: ``computational-cell-analytics/micro-sam@3acdcd72``,
``micro_sam/evaluation/inference.py:_run_inference_with_iterative_prompting_for_image``,
``micro_sam/prompt_generators.py:IterativePromptGenerator`` and
``micro_sam/util.py:get_centers_and_bounding_boxes``.

Two recorded variants, each ``iterations`` steps (micro-sam's ``n_iterations``, default 8; its
prediction folders ``iteration00`` .. ``iteration07`` are our steps 1 .. 8):

* ``microsam-point`` starts from one positive point at the object centre: the object pixel farthest
  (exact Euclidean distance) from the object's inner boundary, the image padded by 1 px so the image
  border counts as boundary, first maximum in raster order (``np.argmax``, no random tie-break).
  This first step uses multimask output and keeps the output with the highest predicted score.
* ``microsam-box`` starts from the object's ``regionprops`` bounding box, max EXCLUSIVE, as
  (x0, y0, x1, y1); no jitter; single-mask output. The box is kept in every later step.

After each step k < ``iterations`` one positive and one negative point are added and every point is
re-sent, with single-mask output and no previous mask as input (micro-sam's ``use_masks=False``):

* positive: a uniformly random false-negative pixel (GT and not prediction); if there is none, a
  random true-positive pixel;
* negative: a uniformly random false-positive pixel; if there is none, a random pixel of the
  object's box grown by 3 px (clipped to the image) minus the object; if that is empty too, a random
  background pixel. Step k therefore carries the start prompt plus k-1 positive and k-1 negative points.

Kept from the reference: the fallbacks above (micro-sam always adds both points), the exclusive box
maximum, the first-maximum centre, the best-score choice for the multimask start.

Deviations: the reference draws its points from the global ``np.random`` stream with no seed in
this code path; here each variant has its own stream drawn from the object's seeded generator.
The reference also samples points after the last step, which are never used; we skip that draw.
If the object fills the whole image there is no pixel for a negative point (the reference would
fail in ``np.random.choice``); the negative point is then left out.
"""

from __future__ import annotations

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import Prompt
from tasks.protocols.base import Context, PromptProtocol, Step
from tasks.protocols.geometry import bbox_exclusive, child_rngs, inner_boundary_centre, random_pixel

GROW_PX = 3  # IterativePromptGenerator._get_negative_locations_in_obj_bbox(custom_df=3)


def grown_box_background(gt: np.ndarray, grow: int = GROW_PX) -> np.ndarray:
    """Pixels of the object's bbox (max exclusive) grown by ``grow`` px and clipped, minus the object."""
    x0, y0, x1, y1 = bbox_exclusive(gt)
    h, w = gt.shape
    region = np.zeros_like(gt, dtype=bool)
    region[max(y0 - grow, 0) : min(y1 + grow, h), max(x0 - grow, 0) : min(x1 + grow, w)] = True
    return region & ~gt


def corrective_points(
    gt: np.ndarray, pred: np.ndarray, rng: np.random.Generator
) -> list[tuple[tuple[int, int], int]]:
    """micro-sam's next (point, label) pairs: one positive, then one negative, with its fallbacks."""
    out: list[tuple[tuple[int, int], int]] = []
    positive = gt & ~pred
    if not positive.any():
        positive = gt & pred
    out.append((random_pixel(positive, rng), 1))
    negative = pred & ~gt
    if not negative.any():
        negative = grown_box_background(gt)
    if not negative.any():
        negative = ~gt
    if negative.any():
        out.append((random_pixel(negative, rng), 0))
    return out


class MicroSAMIterative(PromptProtocol):
    """Point start and box start, then one random corrective positive and negative point per step."""

    name = "microsam-iterative"
    OPTIONS = ("iterations",)
    VARIANTS = ("point", "box")

    def __init__(self, iterations: int = 8) -> None:
        if int(iterations) < 1:
            raise ValueError("microsam-iterative needs at least one iteration")
        self.iterations = int(iterations)

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return tuple(
            ProtocolSpec(f"microsam-{v}", {"iterations": self.iterations, "start": v, "use_masks": False}, steps=self.iterations)
            for v in self.VARIANTS
        )

    def run(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> list[Step]:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("microsam-iterative needs a non-empty object mask")
        steps: list[Step] = []
        for variant, rng in zip(self.VARIANTS, child_rngs(ctx.rng, len(self.VARIANTS))):
            if not wanted or f"microsam-{variant}" in wanted:
                steps += self._run_variant(ctx, gt, variant, rng)
        return steps

    def _run_variant(self, ctx: Context, gt: np.ndarray, variant: str, rng: np.random.Generator) -> list[Step]:
        name = f"microsam-{variant}"
        box: tuple[float, float, float, float] | None = None
        points: list[tuple[float, float]] = []
        labels: list[int] = []
        if variant == "point":
            x, y = inner_boundary_centre(gt)
            points.append((float(x), float(y)))
            labels.append(1)
            multimask = True
        else:
            box = tuple(float(v) for v in bbox_exclusive(gt))
            multimask = False
        steps: list[Step] = []
        for k in range(1, self.iterations + 1):
            prompt = Prompt(box=box, points=tuple(points), point_labels=tuple(labels))
            masks, scores = ctx.predict(prompt, multimask)
            scores = np.asarray(scores, dtype=np.float64)
            i = int(np.argmax(scores)) if multimask else 0
            pred = np.asarray(masks[i], dtype=bool)
            steps.append(Step(name, k, prompt, pred, float(scores[i])))
            multimask = False  # only the single starting point is multimasked
            if k < self.iterations:
                for (px, py), lab in corrective_points(gt, pred, rng):
                    points.append((float(px), float(py)))
                    labels.append(lab)
        return steps
