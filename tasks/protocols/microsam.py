"""micro-sam's prompt protocols (Archit et al., Nat. Methods 2025): ``microsam`` (single shot) and
``microsam-iterative``.

Reference code: ``computational-cell-analytics/micro-sam@3acdcd72``,
``micro_sam/evaluation/inference.py:_run_inference_with_prompts_for_image`` (single shot) and
``:_run_inference_with_iterative_prompting_for_image``, ``micro_sam/prompt_generators.py``
(``PointAndBoxPromptGenerator``, ``IterativePromptGenerator``),
``micro_sam/evaluation/experiments.py:default_experiment_settings`` and
``micro_sam/util.py:get_centers_and_bounding_boxes``.

Scoring: micro-sam scores an IMAGE, not an object: every object's mask is pasted into one instance
map and matched to the GT instances (mSA, SA50, SA75; ``tasks.instance_metrics``). Every spec here
carries ``instances: "microsam"``, so the evaluation unit also writes one ``instances`` row per
(slice, spec, step) beside the per-object Dice/IoU/NSD rows; the per-object rows follow the spec's
``scoring`` convention as every protocol's do.

Published numbers: protocols.md lists none for micro-sam on medical images (its paper reports
light and electron microscopy), so ``catalog/published.csv`` holds no micro-sam rows.

``microsam``: the four settings of ``default_experiment_settings``, one step each, each its own spec
and its own seeded random stream:

* ``microsam-p1-n0``, ``microsam-p2-n4``, ``microsam-p4-n8`` (``PointAndBoxPromptGenerator(n, m,
  dilation_strength=5)``): the first positive point is the object centre (as ``microsam-point``
  below); the other n - 1 positives are uniformly random object pixels (drawn without replacement,
  with replacement only when the object has fewer pixels than needed; the centre may be drawn
  again). The m negatives are drawn without replacement from the object's ``regionprops`` box (max
  exclusive) grown by 5 px on every side and clipped to the image, minus the object dilated 5 times
  by a 3x3 square; if that ring holds fewer than m pixels, all of it is taken and the rest are drawn
  without replacement from every non-object pixel of the image. Points are sent positives first.
  Only ``p1-n0`` uses multimask output (the output with the highest predicted score is kept);
  the others take the single-mask output.
* ``microsam-box-only``: the ``regionprops`` box, max exclusive, single-mask output.

``microsam-p1-n0`` sends the same prompt as step 1 of ``microsam-point`` and ``microsam-box-only``
the same as step 1 of ``microsam-box``; they are recorded again so that the single-shot settings
are one protocol, as micro-sam's ``run_inference_with_prompts`` runs them.

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
either code path; here each variant has its own stream drawn from the object's seeded generator.
Objects are the labels of one slice (samatlas' objects), where micro-sam's are the ids of an
instance image; a label with several components is prompted as one object, as micro-sam prompts
one id. If an object leaves fewer non-object pixels than ``microsam``'s negatives need, the
reference fails in ``np.random.choice``; here the prompt has fewer negatives.
The reference also samples points after the last step, which are never used; we skip that draw.
If the object fills the whole image there is no pixel for a negative point (the reference would
fail in ``np.random.choice``); the negative point is then left out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from records.specs import ProtocolSpec
from tasks.models.base import DecodeRequest, Prompt
from tasks.protocols.base import Context, PromptProtocol, Step, Steps, lockstep
from tasks.protocols.geometry import bbox_exclusive, child_rngs, inner_boundary_centre, random_pixel

GROW_PX = 3  # IterativePromptGenerator._get_negative_locations_in_obj_bbox(custom_df=3)
DILATION = 5  # run_inference_with_prompts(dilation=5) -> PointAndBoxPromptGenerator(dilation_strength=5)
SETTINGS = ((1, 0), (2, 4), (4, 8))  # default_experiment_settings: p1-n0, p2-n4, p4-n8 (and box only)
INSTANCES = "microsam"  # tasks.instance_metrics.MICROSAM: paste, relabel, match, mSA/SA50/SA75


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
            ProtocolSpec(
                f"microsam-{v}", {"iterations": self.iterations, "start": v, "use_masks": False, "instances": INSTANCES},
                steps=self.iterations,
            )
            for v in self.VARIANTS
        )

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("microsam-iterative needs a non-empty object mask")
        runs = [self._run_variant(gt, variant, rng) for variant, rng in zip(self.VARIANTS, child_rngs(ctx.rng, len(self.VARIANTS)))
                if not wanted or f"microsam-{variant}" in wanted]
        return [step for steps in (yield from lockstep(runs)) for step in steps]  # the two starts side by side

    def _run_variant(self, gt: np.ndarray, variant: str, rng: np.random.Generator) -> Steps:
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
            out = yield DecodeRequest(prompt, multimask)
            scores = np.asarray(out.scores, dtype=np.float64)
            i = int(np.argmax(scores)) if multimask else 0
            pred = np.asarray(out.masks[i], dtype=bool)
            steps.append(Step(name, k, prompt, pred, float(scores[i])))
            multimask = False  # only the single starting point is multimasked
            if k < self.iterations:
                for (px, py), lab in corrective_points(gt, pred, rng):
                    points.append((float(px), float(py)))
                    labels.append(lab)
        return steps


def negative_region(gt: np.ndarray, dilation: int = DILATION) -> np.ndarray:
    """``PointAndBoxPromptGenerator``'s negative ring: the bbox (max exclusive) grown by ``dilation`` px
    and clipped, minus the object dilated ``dilation`` times by a 3x3 square."""
    x0, y0, x1, y1 = bbox_exclusive(gt)
    h, w = gt.shape
    region = np.zeros_like(gt, dtype=bool)
    region[max(y0 - dilation, 0) : min(y1 + dilation, h), max(x0 - dilation, 0) : min(x1 + dilation, w)] = True
    return region & ~ndimage.binary_dilation(gt, structure=np.ones((3, 3), bool), iterations=dilation)


def _draw(region: np.ndarray, n: int, rng: np.random.Generator, replace: bool = False) -> list[tuple[float, float]]:
    """``n`` uniformly random (x, y) pixels of ``region`` (without replacement unless ``replace``)."""
    rows, cols = np.nonzero(region)
    picks = rng.choice(rows.size, size=n, replace=replace) if n else np.zeros(0, dtype=np.int64)
    return [(float(cols[i]), float(rows[i])) for i in picks]


def single_shot_points(
    gt: np.ndarray, n_positive: int, n_negative: int, rng: np.random.Generator
) -> tuple[tuple[tuple[float, float], ...], tuple[int, ...]]:
    """micro-sam's ``n_positive`` / ``n_negative`` point prompt for one object: the centre, random
    object pixels, then negatives from the ring around the object topped up from all background."""
    x, y = inner_boundary_centre(gt)
    positives = [(float(x), float(y))]
    extra = n_positive - 1
    positives += _draw(gt, extra, rng, replace=extra > int(gt.sum()))
    ring = negative_region(gt)
    negatives = _draw(ring, min(n_negative, int(ring.sum())), rng)
    missing = n_negative - len(negatives)
    if missing:
        negatives += _draw(~gt, min(missing, int((~gt).sum())), rng)
    return tuple(positives + negatives), (1,) * len(positives) + (0,) * len(negatives)


class MicroSAMPrompts(PromptProtocol):
    """micro-sam's single-shot settings: p1-n0, p2-n4, p4-n8 point prompts and the box alone."""

    name = "microsam"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        points = tuple(
            ProtocolSpec(
                f"{self.name}-p{n}-n{m}",
                {"positives": n, "negatives": m, "dilation": DILATION, "multimask": (n, m) == (1, 0),
                 "instances": INSTANCES},
            )
            for n, m in SETTINGS
        )
        return (*points, ProtocolSpec(f"{self.name}-box-only", {"box": "regionprops-exclusive", "instances": INSTANCES}))

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("microsam needs a non-empty object mask")
        asked: list[tuple[str, DecodeRequest]] = []
        for spec, rng in zip(self.specs, child_rngs(ctx.rng, len(self.specs))):
            if wanted and spec.name not in wanted:
                continue
            if "box" in spec.params:
                prompt, multimask = Prompt(box=tuple(float(v) for v in bbox_exclusive(gt))), False
            else:
                n, m = spec.params["positives"], spec.params["negatives"]
                points, labels = single_shot_points(gt, n, m, rng)
                prompt, multimask = Prompt(points=points, point_labels=labels), bool(spec.params["multimask"])
            asked.append((spec.name, DecodeRequest(prompt, multimask)))
        outs = yield [request for _, request in asked]  # independent settings: one round
        steps: list[Step] = []
        for (name, request), out in zip(asked, outs):
            scores = np.asarray(out.scores, dtype=np.float64)
            i = int(np.argmax(scores)) if request.multimask else 0
            steps.append(Step(name, 1, request.prompt, np.asarray(out.masks[i], dtype=bool), float(scores[i])))
        return steps
