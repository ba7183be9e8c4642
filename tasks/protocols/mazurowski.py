"""``mazurowski``: the prompts of Mazurowski et al. 2023 (MedIA 89:102918), modes M1–M5 and iterative clicks.

Reference code: ``mazurowski-lab/segment-anything-medical-evaluation@2775b73``,
``prompt_gen_and_exec_v2_allmode.py`` (the five modes) and ``prompt_gen_and_exec_v1.py`` (clicks).

Modes (v2), all with ``multimask_output=True`` and no box jitter or expansion:

* M1: one positive point at the centre of the largest component.
* M2: one positive point at the centre of each of the up to 3 largest components, one predict call.
* M3: the tight box (inclusive pixel bounds) of the largest component.
* M4: the tight box of each of the up to 3 largest components, one predict call per box; the
  boolean outputs are OR-ed index by index (``preds += preds_single`` on bool arrays), and the mask
  is then chosen among the three OR-ed outputs.
* M5: the tight box of the whole mask.

Iterative clicks (v1): click 1 at the centre of the WHOLE mask (all components at once); click k
at the centre of the error region (chosen prediction XOR GT), positive where the GT is set; every
click is re-sent, no previous mask is fed back, ``multimask_output=True``.

Mask choice, recorded as two variants of every mode and of the click sequence: the default keeps
output index 0 (the first multimask output, NOT the best-scoring one); ``-oracle`` keeps the output
with the best IoU against the GT. Each oracle click sequence is driven by its own chosen masks.

Kept from the reference:

* components are 8-connected (``skimage.measure.label(connectivity=2)``), sorted by area, largest
  first; equal areas put the higher label first (``sorted(zip(area, id))[::-1]``);
* "centre" = a pixel where the distance transform of the region padded by 1 px of zeros is largest,
  uniform tie-break among all maxima (listed in raster order, as ``np.where``); an empty error
  region (perfect prediction) makes every pixel tie, as in the reference;
* the oracle's loop (``max_slice, max_dc = -1, 0; if dc > max_dc``): the first output with the
  largest IoU, and the LAST output when every IoU is 0 (Python's index -1);
* modes M3–M5 use no randomness; default and oracle share the modes' prompts and predictions
  (the reference ran them as two runs whose prompts do not depend on the mask choice).

Deliberate deviations:

* Distance transform: the EXACT Euclidean distance transform (``scipy.ndimage.distance_transform_edt``)
  instead of ``cv2.distanceTransform(DIST_L2, maskSize=5)``, a 5x5 approximation (no cv2 here).
  Maxima, and so click positions, can differ by a pixel or two on some shapes.
* Click labels come from the binary object mask. The reference reads the full multi-class label
  image (a click on another class becomes positive); only the binary mask reaches a protocol here,
  and that is the correct behaviour.
* Randomness: the reference draws ties from one global ``np.random`` stream seeded once (1) at import,
  so clicks depend on file order. Here the object's seeded generator (``Context.rng``) feeds one
  stream for the modes and one for the clicks; the default and oracle click sequences start from the
  same stream state, so while both keep the same masks they place the same clicks.
* M4's recorded score is the mean of the per-box scores of the chosen output index; its recorded
  prompt lists every box (``BoxesPrompt``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import DecodeRequest, Prompt
from tasks.protocols.base import Context, PromptProtocol, Step, Steps, lockstep, tight_box
from tasks.protocols.geometry import EdtCentres, child_rngs, components, iou

MODES = ("m1", "m2", "m3", "m4", "m5")


@dataclass(frozen=True)
class BoxesPrompt(Prompt):
    """Several boxes sent one per predict call (mode M4); ``box`` holds the first, ``boxes`` all of them."""

    boxes: tuple[tuple[float, float, float, float], ...] = ()

    def to_json(self) -> str:
        return json.dumps({"boxes": [[round(float(v), 2) for v in b] for b in self.boxes]}, separators=(",", ":"))


def oracle_index(masks: np.ndarray, gt: np.ndarray) -> int:
    """The reference's oracle: first output with the largest IoU; the last one if every IoU is 0."""
    best, best_iou = -1, 0.0
    for k in range(len(masks)):
        value = iou(masks[k], gt)
        if value > best_iou:
            best, best_iou = k, value
    return best % len(masks)


class Mazurowski(PromptProtocol):
    """Modes M1–M5 and clicks 1..N, each with the default (index 0) and the oracle (best IoU) mask choice."""

    name = "mazurowski"
    OPTIONS = ("clicks",)

    def __init__(self, clicks: int = 9) -> None:
        if int(clicks) < 1:
            raise ValueError("mazurowski needs at least one click")
        self.clicks = int(clicks)

    @property
    def clicks_name(self) -> str:
        return f"{self.name}-clicks"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        # The modes do not depend on the click count, so their specs do not carry it.
        modes = tuple(
            ProtocolSpec(f"{self.name}-{m}{suffix}", {"mode": m, "mask_choice": choice, "edt": "exact"})
            for m in MODES for suffix, choice in (("", "first"), ("-oracle", "oracle"))
        )
        clicks = tuple(
            ProtocolSpec(f"{self.clicks_name}{suffix}", {"clicks": self.clicks, "mask_choice": choice, "edt": "exact"}, steps=self.clicks)
            for suffix, choice in (("", "first"), ("-oracle", "oracle"))
        )
        return modes + clicks

    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        gt = np.asarray(ctx.gt, dtype=bool)
        if not gt.any():
            raise ValueError("mazurowski needs a non-empty object mask")

        def asked(name: str) -> bool:
            return not wanted or name in wanted

        modes_rng, clicks_rng = child_rngs(ctx.rng, 2)
        centre = EdtCentres()  # the steps of this object share their masks' transforms
        oracle_rng = copy.deepcopy(clicks_rng)  # same stream state: same clicks while the masks agree
        runs: list[Steps] = []
        if any(asked(f"{self.name}-{m}{s}") for m in MODES for s in ("", "-oracle")):
            runs.append(self._modes(gt, modes_rng, centre))
        if asked(self.clicks_name):
            runs.append(self._clicks(gt, clicks_rng, centre, oracle=False))
        if asked(f"{self.clicks_name}-oracle"):
            runs.append(self._clicks(gt, oracle_rng, centre, oracle=True))
        # Modes and both click sequences side by side; a prompt asked twice in a round (the two click
        # sequences while their masks agree, M3's box and M4's first) is decoded once by the driver.
        return [step for steps in (yield from lockstep(runs)) for step in steps]

    def _modes(self, gt: np.ndarray, rng: np.random.Generator, centre: EdtCentres) -> Steps:
        comps = components(gt, ties="last")
        steps: list[Step] = []

        def record(mode: str, prompt: Prompt, masks: np.ndarray, scores: np.ndarray) -> None:
            for suffix, k in (("", 0), ("-oracle", oracle_index(masks, gt))):
                steps.append(Step(f"{self.name}-{mode}{suffix}", 1, prompt, masks[k], float(scores[k])))

        def points_prompt(points: list[tuple[int, int]]) -> Prompt:
            return Prompt(points=tuple((float(x), float(y)) for x, y in points), point_labels=(1,) * len(points))

        def box_of(region: np.ndarray) -> tuple[float, float, float, float]:
            return tuple(float(v) for v in tight_box(region))

        m1 = points_prompt([centre(comps[0], rng)])  # M1: centre of the largest component
        m2 = points_prompt([centre(c, rng) for c in comps[:3]])  # M2: centres of the up to 3 largest, one call
        m3 = Prompt(box=box_of(comps[0]))  # M3: tight box of the largest component
        boxes = tuple(box_of(c) for c in comps[:3])  # M4: one box per component (up to 3), one call each
        m5 = Prompt(box=box_of(gt))  # M5: tight box of the whole mask
        prompts = [m1, m2, m3, *(Prompt(box=b) for b in boxes), m5]
        outs = yield [DecodeRequest(p, multimask=True) for p in prompts]  # no mode depends on another
        outputs = [(np.asarray(o.masks, dtype=bool), np.asarray(o.scores, dtype=np.float64)) for o in outs]
        record("m1", m1, *outputs[0])
        record("m2", m2, *outputs[1])
        record("m3", m3, *outputs[2])
        per_box = outputs[3 : 3 + len(boxes)]  # M4's outputs OR-ed index by index
        masks = np.logical_or.reduce([m for m, _ in per_box])
        scores = np.mean([s for _, s in per_box], axis=0)
        record("m4", BoxesPrompt(box=boxes[0], boxes=boxes), masks, scores)
        record("m5", m5, *outputs[-1])
        return steps

    def _clicks(self, gt: np.ndarray, rng: np.random.Generator, centre: EdtCentres, oracle: bool) -> Steps:
        name = f"{self.clicks_name}-oracle" if oracle else self.clicks_name
        points: list[tuple[float, float]] = []
        labels: list[int] = []
        steps: list[Step] = []
        region = gt  # click 1: centre of the whole mask
        for k in range(1, self.clicks + 1):
            x, y = centre(region, rng)
            points.append((float(x), float(y)))
            labels.append(1 if gt[y, x] else 0)
            prompt = Prompt(points=tuple(points), point_labels=tuple(labels))
            out = yield DecodeRequest(prompt, multimask=True)
            masks, scores = np.asarray(out.masks, dtype=bool), np.asarray(out.scores, dtype=np.float64)
            i = oracle_index(masks, gt) if oracle else 0
            steps.append(Step(name, k, prompt, masks[i], float(scores[i])))
            region = masks[i] ^ gt
        return steps
