"""``sammed2d`` and ``sammed2d-iter``: the test prompts of SAM-Med2D (Cheng et al., arXiv 2308.16184).

Reference code: ``OpenGVLab/SAM-Med2D@bfd2b93``: ``DataLoader.py:TestingDataset`` (prompts),
``utils.py:get_boxes_from_mask`` / ``init_point_sampling`` / ``select_random_points`` /
``generate_point``, ``test.py:prompt_and_decoder`` and ``main`` (the ``iter_point`` loop).

Published numbers (protocols.md §4.2, ``OpenGVLab/SAM-Med2D:README.md``, SA-Med2D test set, Dice %,
masks weighted equally): the "Bbox" column is ``sammed2d-box``; "1 pt" is ``sammed2d-1pt`` (and step
1 of ``sammed2d-iter``, the same rule); "3 pts" / "5 pts" are either ``sammed2d-points`` with
``points`` 3 / 5 (``point_num``) or steps 3 / 5 of ``sammed2d-iter`` (``iter_point``): the test
script names both ``iter{N}_prompt`` and the README does not say which was run (protocols.md §4.1,
open item 2). Both readings are recorded so either can sit beside the table.

Three recorded variants, one step each, every one with multimask output keeping the output with the
highest predicted score (``test.py``: ``--multimask`` defaults to True, then ``torch.max(iou_predictions)``):

* ``sammed2d-box``: the ``regionprops`` bbox of the LARGEST 8-connected component (skimage ``label``
  default connectivity), max EXCLUSIVE, as (x0, y0, x1, y1); equal areas keep label order (stable
  sort). The test loader calls ``get_boxes_from_mask(mask, max_pixel=0)``, whose noise range is then
  empty (``randint(-0, 0)`` raises and the code falls back to 0), so the test box is tight: no jitter.
* ``sammed2d-1pt``: one uniformly random foreground pixel, positive (``init_point_sampling(mask, 1)``).
* ``sammed2d-points`` (option ``points``, default 5, N >= 2): N//2 random foreground pixels (positive)
  and N - N//2 random background pixels from anywhere in the image (negative), each drawn with
  replacement, then shuffled together (``init_point_sampling(mask, N)``: ``point_num=N``).

Kept: largest component only for the box, exclusive maximum, sampling with replacement, the
foreground-then-background order before one shuffle, best-score mask choice.

Deviations and omissions:

* Prompts are computed on the object mask at the ORIGINAL resolution, in original pixel coordinates.
  The reference computes them on the mask after its own 256x256 step (nearest resize, or centred zero
  padding when both sides are below 256); here each model maps the prompt through its own geometry.
  Random pixels are drawn from the same uniform distribution over the object; box corners can differ
  by under one 256-pixel.
* ``sammed2d-points`` is the ``point_num`` reading of "N pts"; the iterative one is
  ``sammed2d-iter`` below.
* The reference draws from the global ``np.random`` stream; here the 1-point and N-point variants
  each have their own stream drawn from the object's seeded generator. If the object fills the
  whole image there is no background pixel; the N-point prompt then has only its foreground points
  (the reference would fail in ``np.random.choice``).
"""

from __future__ import annotations

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import DecodeRequest, Prompt
from tasks.protocols.base import Context, PromptProtocol, Step, Steps
from tasks.protocols.geometry import bbox_exclusive, child_rngs, components, random_pixel

NOT_A_POINT = -1  # SAM's padding label: the prompt encoder ignores the point's position


def sample_points(gt: np.ndarray, n: int, rng: np.random.Generator) -> tuple[tuple[tuple[float, float], ...], tuple[int, ...]]:
    """``init_point_sampling(mask, n)`` for n >= 2: n//2 fg + rest bg, with replacement, shuffled."""
    fg_rows, fg_cols = np.nonzero(gt)
    bg_rows, bg_cols = np.nonzero(~gt)
    num_fg = n // 2
    num_bg = n - num_fg if bg_rows.size else 0
    fg = rng.choice(fg_rows.size, size=num_fg, replace=True)
    bg = rng.choice(bg_rows.size, size=num_bg, replace=True) if num_bg else np.zeros(0, dtype=np.int64)
    coords = [(float(fg_cols[i]), float(fg_rows[i])) for i in fg] + [(float(bg_cols[i]), float(bg_rows[i])) for i in bg]
    labels = [1] * num_fg + [0] * num_bg
    order = rng.permutation(len(coords))
    return tuple(coords[i] for i in order), tuple(labels[i] for i in order)


class SAMMed2D(PromptProtocol):
    """Tight box of the largest component, one random foreground point, N random points."""

    name = "sammed2d"
    OPTIONS = ("points",)

    def __init__(self, points: int = 5) -> None:
        if int(points) < 2:
            raise ValueError("sammed2d points must be at least 2 (the 1-point prompt is always run)")
        self.points = int(points)

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (
            ProtocolSpec(f"{self.name}-box", {"box": "largest-component-exclusive", "mask_choice": "best-score"}),
            ProtocolSpec(f"{self.name}-1pt", {"points": 1, "mask_choice": "best-score"}),
            ProtocolSpec(f"{self.name}-points", {"points": self.points, "sampling": "point_num", "mask_choice": "best-score"}),
        )

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("sammed2d needs a non-empty object mask")
        one_rng, many_rng = child_rngs(ctx.rng, 2)
        largest = components(gt, ties="first")[0]
        x, y = random_pixel(gt, one_rng)
        points, labels = sample_points(gt, self.points, many_rng)
        prompts = (
            Prompt(box=tuple(float(v) for v in bbox_exclusive(largest))),
            Prompt(points=((float(x), float(y)),), point_labels=(1,)),
            Prompt(points=points, point_labels=labels),
        )
        asked = [(name, prompt) for name, prompt in zip((s.name for s in self.specs), prompts) if not wanted or name in wanted]
        outs = yield [DecodeRequest(prompt, multimask=True) for _, prompt in asked]  # independent: one round
        steps = []
        for (name, prompt), out in zip(asked, outs):
            scores = np.asarray(out.scores, dtype=np.float64)
            i = int(np.argmax(scores))
            steps.append(Step(name, 1, prompt, np.asarray(out.masks[i], dtype=bool), float(scores[i])))
        return steps


def error_point(gt: np.ndarray, pred: np.ndarray, rng: np.random.Generator) -> tuple[tuple[float, float], int]:
    """``select_random_points(pred, gt, 1)``: a uniformly random pixel where the prediction is wrong,
    positive if the GT is set there (a miss), negative if not (a false alarm); with no error left, a
    random pixel of the image with SAM's "not a point" label."""
    error = pred != gt
    if error.any():
        x, y = random_pixel(error, rng)
        return (float(x), float(y)), int(gt[y, x])
    x, y = random_pixel(np.ones_like(gt, dtype=bool), rng)
    return (float(x), float(y)), NOT_A_POINT


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, as ``torch.sigmoid``, without overflow warnings for large logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


class SAMMed2DIter(PromptProtocol):
    """``iter_point``: one random foreground point, then per step one random error-region point with
    the previous low-res mask fed back; every step recorded.

    Rules (``test.py:main`` with ``--iter_point K``, which forces ``point_num=1`` and drops the box;
    ``utils.py:generate_point`` / ``select_random_points``):

    * step 1: one uniformly random foreground pixel, positive (``init_point_sampling(mask, 1)``), no
      mask input;
    * after step k < K: one pixel drawn uniformly from the error region (prediction != GT), label 1
      where the GT is set (false negative) and 0 where it is not (false positive); when the
      prediction has no error, a random image pixel with label -1 ("not a point"); every point so
      far is re-sent, and the previous step's chosen low-res mask goes in as ``mask_inputs`` after a
      SIGMOID (``generate_point`` feeds probabilities, not logits: spec parameter
      ``mask_input: "sigmoid"``);
    * every step uses multimask output and keeps the output with the highest predicted score, whose
      low-res mask is the one fed back (``prompt_and_decoder``).

    The reference scores only the last step of a run with ``iter_point=K``; since steps 1..k of a
    K-step run are exactly a k-step run, every step is recorded and step k stands for ``iter_point=k``.

    Deviations: the error region is taken at the ORIGINAL resolution from the mask the model
    returned there (the reference compares at 256x256 after its own resize or padding, which also
    lets a point fall in the padding when the image is smaller than 256); the mask fed back is the
    model's own low-res logits in its input frame (256x256 for LiteMedSAM and SAM; 64x64 for
    SAM-Med2D's 256-pixel ViT-B). Draws come from the object's seeded generator, not the global
    ``np.random`` stream. Needs a model with a mask prompt branch (``Context.accepts_mask_input``).
    """

    name = "sammed2d-iter"
    OPTIONS = ("iter_points",)

    def __init__(self, iter_points: int = 5) -> None:
        if int(iter_points) < 1:
            raise ValueError("sammed2d-iter needs at least one point")
        self.iter_points = int(iter_points)

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        params = {"iter_point": self.iter_points, "mask_input": "sigmoid", "mask_choice": "best-score",
                  "error_region": "original-resolution"}
        return (ProtocolSpec(self.name, params, steps=self.iter_points),)

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("sammed2d-iter needs a non-empty object mask")
        if not ctx.accepts_mask_input:
            raise ValueError("sammed2d-iter feeds each low-res mask back: it needs a model with a mask input (litemedsam, sam_*, medsam_*, sam2.1_*, medsam2)")
        x, y = random_pixel(gt, ctx.rng)
        points, labels = [(float(x), float(y))], [1]
        mask_input: np.ndarray | None = None
        steps: list[Step] = []
        for k in range(1, self.iter_points + 1):
            prompt = Prompt(points=tuple(points), point_labels=tuple(labels))
            out = yield DecodeRequest(prompt, multimask=True, mask_input=mask_input)
            scores = np.asarray(out.scores, dtype=np.float64)
            i = int(np.argmax(scores))
            pred = np.asarray(out.masks[i], dtype=bool)
            steps.append(Step(self.name, k, prompt, pred, float(scores[i])))
            if k < self.iter_points:
                point, label = error_point(gt, pred, ctx.rng)
                points.append(point)
                labels.append(label)
                mask_input = sigmoid(out.low_res[i])
        return steps
