"""``sammed2d``: the test prompts of SAM-Med2D (Cheng et al., arXiv 2308.16184).

Reference code: ``OpenGVLab/SAM-Med2D@bfd2b93``: ``DataLoader.py:TestingDataset`` (prompts),
``utils.py:get_boxes_from_mask`` / ``init_point_sampling``, ``test.py:prompt_and_decoder``.

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
* The iterative mode (``iter_point=K``: one random error-region point per step, the previous
  low-res mask fed back as ``mask_inputs``) is omitted: ``Context.predict`` takes no mask input.
  ``sammed2d-points`` is therefore the ``point_num`` reading of "N pts" (protocols.md §4.1 notes the
  published 3/5-point table may be the iterative one).
* The reference draws from the global ``np.random`` stream; here the 1-point and N-point variants
  each have their own stream drawn from the object's seeded generator. If the object fills the
  whole image there is no background pixel; the N-point prompt then has only its foreground points
  (the reference would fail in ``np.random.choice``).
"""

from __future__ import annotations

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import Prompt
from tasks.protocols.base import Context, PromptProtocol, Step
from tasks.protocols.geometry import bbox_exclusive, child_rngs, components, random_pixel


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

    def run(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> list[Step]:
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
        steps = []
        for name, prompt in zip((s.name for s in self.specs), prompts):
            if wanted and name not in wanted:
                continue
            masks, scores = ctx.predict(prompt, True)
            scores = np.asarray(scores, dtype=np.float64)
            i = int(np.argmax(scores))
            steps.append(Step(name, 1, prompt, np.asarray(masks[i], dtype=bool), float(scores[i])))
        return steps
