"""The protocol interface: turn one object (its GT mask on one slice) into prompt steps.

A protocol talks to the model only through ``Context.predict`` (a prompt in, masks and scores out,
on the slice's cached embedding), so iterative protocols can react to each prediction while the
encoder runs once per slice. ``Context.predict_with_mask`` also takes a low-res mask input and
returns the low-res logits, for protocols that feed a prediction back (SAM-Med2D's ``iter_point``);
it is None for models without a mask prompt branch.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from records.specs import ProtocolSpec
from tasks.models.base import Decoded, Geometry, Prompt

Predict = Callable[[Prompt, bool], tuple[np.ndarray, np.ndarray]]
PredictWithMask = Callable[[Prompt, bool, "np.ndarray | None"], Decoded]


@dataclass(frozen=True)
class Context:
    """What a protocol may use for one object: GT, model geometry and box rule, predictor, seeded RNG."""

    gt: np.ndarray  # (H, W) bool
    geometry: Geometry
    box_shift: int
    predict: Predict
    rng: np.random.Generator
    predict_with_mask: PredictWithMask | None = None


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
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("cannot box an empty mask")
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


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


class PromptProtocol(ABC):
    """A named, published way of prompting; ``specs`` are the variants its steps record.

    Every variant is its own spec (name + parameters + step count): the planner asks for the specs an
    object still lacks and ``run`` computes at least those (variants share one encoder pass).
    """

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

    @abstractmethod
    def run(self, ctx: Context, wanted: frozenset[str]) -> list[Step]:
        """Prompt the model for one object; return the steps of at least the ``wanted`` variant names."""
