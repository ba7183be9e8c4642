"""The protocol interface: turn one object (its GT mask on one slice) into prompt steps.

A protocol never calls the model: :meth:`PromptProtocol.steps` is a generator that yields decode
requests (a :class:`~tasks.models.base.DecodeRequest`, or a list of them to be decoded together) and
receives their outputs (a :class:`~tasks.models.base.Decoded`, or a list), then returns its steps.
So iterative protocols react to each prediction while the encoder runs once per slice, and whoever
drives them decides how requests reach the decoder: :meth:`PromptProtocol.run` answers one request
at a time through ``Context.predict`` (``Context.predict_with_mask`` on models with a mask prompt
branch, for protocols that feed a prediction back), while an evaluation unit advances every object's
protocols in :func:`lockstep` and decodes each round of requests in batches
(``tasks.batched_decoding``). The answers, and so the steps, are the same either way.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from records.specs import ProtocolSpec
from tasks.boxes import bounding_box
from tasks.models.base import Decoded, DecodeRequest, Geometry, Prompt

Predict = Callable[[Prompt, bool], tuple[np.ndarray, np.ndarray]]
PredictWithMask = Callable[[Prompt, bool, "np.ndarray | None"], Decoded]


@dataclass(frozen=True)
class Context:
    """What a protocol may use for one object: GT, model geometry and box rule, seeded RNG, and the
    predictors :meth:`PromptProtocol.run` answers requests with (a unit driving :meth:`PromptProtocol.steps`
    decodes them itself and leaves them out)."""

    gt: np.ndarray  # (H, W) bool
    geometry: Geometry
    box_shift: int
    predict: Predict | None  # None where the driver decodes the requests itself
    rng: np.random.Generator
    predict_with_mask: PredictWithMask | None = None
    takes_mask_input: bool = False  # the model has a mask prompt branch (also true where predict_with_mask is set)

    @property
    def accepts_mask_input(self) -> bool:
        """Whether a request may carry a low-res mask input and get low-res logits back."""
        return self.takes_mask_input or self.predict_with_mask is not None


Asked = Any
"""What a generator yields in one round: one ask, or a list of asks answered together."""

Steps = Generator[DecodeRequest | list[DecodeRequest], Decoded | list[Decoded], list["Step"]]
"""A protocol's run on one object: decode requests out, their outputs in, its steps returned."""


def _as_list(asked: Asked) -> tuple[list[Any], bool]:
    return (asked, True) if isinstance(asked, list) else ([asked], False)


def drive(run: Generator[Asked, Any, Any], answer: Callable[[list[Any]], list[Any]]) -> Any:
    """Run a generator to its return value, answering each round's asks (in order) with ``answer``."""
    try:
        asked = next(run)
        while True:
            asks, many = _as_list(asked)
            answers = answer(asks)
            asked = run.send(answers if many else answers[0])
    except StopIteration as stop:
        return stop.value


def lockstep(runs: Sequence[Generator[Asked, Any, Any]]) -> Generator[list[Any], list[Any], list[Any]]:
    """Advance generators side by side: each round yields every ask of every unfinished one (a yielded
    list is many asks, anything else one), sends each its own answers, and in the end returns their
    return values in order. A generator's asks and answers do not depend on the others', so each
    returns what it returns when run alone."""
    runs = list(runs)
    results: list[Any] = [None] * len(runs)
    pending: dict[int, Asked] = {}

    def advance(i: int, answer: Any, first: bool) -> None:
        try:
            pending[i] = next(runs[i]) if first else runs[i].send(answer)
        except StopIteration as stop:
            results[i] = stop.value

    for i in range(len(runs)):
        advance(i, None, True)
    while pending:
        spans, asks = [], []
        for i, asked in pending.items():
            these, many = _as_list(asked)
            spans.append((i, many, len(asks), len(asks) + len(these)))
            asks += these
        pending.clear()
        answers = yield asks
        for i, many, start, end in spans:
            part = list(answers[start:end])
            advance(i, part if many else part[0], False)
    return results


@dataclass(frozen=True)
class Step:
    """One prompt step's outcome; ``protocol`` is the recorded variant (spec) name."""

    protocol: str
    step: int
    prompt: Prompt
    mask: np.ndarray  # (H, W) bool, the mask the protocol keeps
    score: float


def object_seed(dataset: str, case_id: str, slice_index: int, label: int, protocol: str) -> int:
    """A seed from the object's key and the protocol, independent of file or run order."""
    key = f"{dataset}|{case_id}|{slice_index}|{label}|{protocol}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive pixel bounds of a non-empty mask."""
    rows, cols = bounding_box(mask)
    return cols.start, rows.start, cols.stop - 1, rows.stop - 1


def expand_box(
    box: tuple[float, float, float, float], geometry: Geometry, shifts: float | tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """Expand an original-pixel box by model-input pixels, one ``shift`` for every side or one per side
    (x0, y0, x1, y1), clipped to the image."""
    per_side = np.broadcast_to(np.asarray(shifts, dtype=np.float64), (4,))
    corners = geometry.to_model(np.reshape(box, (2, 2)))
    h, w = geometry.resized
    corners[0] = np.maximum(corners[0] - per_side[:2], 0)
    corners[1] = np.minimum(corners[1] + per_side[2:], [w - 1, h - 1])
    return tuple(float(v) for v in geometry.to_original(corners).ravel())


class RecordedVariants(ABC):
    """A protocol's name and the variants (specs) it records; slice-wise and volumetric protocols alike."""

    name: str

    @property
    @abstractmethod
    def specs(self) -> tuple[ProtocolSpec, ...]:
        """The recorded variants, each with the parameters that change what it sends or scores."""

    def spec(self, name: str) -> ProtocolSpec:
        """The variant recorded as ``name``."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} records no variant {name!r}")


class PromptProtocol(RecordedVariants):
    """A named, published way of prompting; ``specs`` are the variants its steps record.

    Every variant is its own spec (name + parameters + step count): the planner asks for the specs an
    object still lacks and ``run`` computes at least those (variants share one encoder pass).
    """

    @abstractmethod
    def steps(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> Steps:
        """Prompt the model for one object: yield decode requests, receive their outputs, and return the
        steps of at least the ``wanted`` variant names (all of them when empty). Requests yielded
        together do not depend on each other's outputs."""

    def run(self, ctx: Context, wanted: frozenset[str] = frozenset()) -> list[Step]:
        """:meth:`steps` with every request answered on its own through ``ctx``'s predictors; requests
        equal to another of the same round are decoded once."""
        return drive(self.steps(ctx, wanted), lambda asks: answer_each(ctx, asks))


def answer_each(ctx: Context, asks: list[DecodeRequest]) -> list[Decoded]:
    """Each request of a round answered by one call of ``ctx``'s predictor (``predict_with_mask`` where
    the model has one, so low-res logits come back); repeats of a request without mask input reuse it."""
    seen: dict[tuple[Prompt, bool], Decoded] = {}
    out = []
    for ask in asks:
        key = (ask.prompt, ask.multimask)
        if ask.mask_input is None and key in seen:
            out.append(seen[key])
            continue
        if ctx.predict_with_mask is not None:
            decoded = ctx.predict_with_mask(ask.prompt, ask.multimask, ask.mask_input)
        elif ask.mask_input is not None:
            raise ValueError("this request feeds a mask back: it needs a model with a mask input")
        else:
            if ctx.predict is None:
                raise ValueError("PromptProtocol.run needs a context with a predictor")
            masks, scores = ctx.predict(ask.prompt, ask.multimask)
            decoded = Decoded(masks, scores, None)
        if ask.mask_input is None:
            seen[key] = decoded
        out.append(decoded)
    return out
