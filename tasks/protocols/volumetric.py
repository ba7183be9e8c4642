"""The volumetric protocol interface: prompt a whole object through a case, yield one 3D mask per step.

A volumetric protocol receives one volume object (a label through a 3D case: its GT volume, 3D box and
key slice) and talks to the model only through :meth:`VolumeContext.predict` (slice ``z`` and a prompt
in, that slice's mask out, on the unit's cached embedding of ``z``), so it can carry a prediction from
slice to slice (propagation) and react to it (refinement clicks) while each slice is encoded once per
unit. It yields its steps one at a time, each with the whole predicted volume, so the runner scores and
stores a step before the next one is computed and never holds more than one step's volume per object.

The context records what each step did (the slices prompted, in order, and the decoder calls); the
runner reads it between steps (:meth:`VolumeContext.take_activity`).

For a video-capable model (SAM 2) the runner also gives the context a ``video`` tracker (a
``tasks.models.sam2_video.VideoSession`` over the case), and a protocol that ``needs_video`` carries
its prompt through the stack with SAM 2's memory (:meth:`VolumeContext.track`) instead of slice by slice.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from records.units import PlannedVolume
from tasks.models.base import Geometry, Prompt
from tasks.protocols.base import RecordedVariants, object_seed

SlicePredict = Callable[[int, Prompt], tuple[np.ndarray, float]]
"""Slice index and prompt in; the slice's single mask (H, W) bool and the model's score out."""


class TrackedFrameLike(Protocol):
    """A tracked frame: its slice, the mask (H, W) bool, the model's object score there."""

    z: int
    mask: np.ndarray
    score: float


class VideoPassLike(Protocol):
    """One object tracked one way on its own state (``tasks.models.sam2_video.VideoPass``)."""

    def prompt(self, z: int, prompt: Prompt, correction: bool = False) -> None: ...

    def propagate(self, start: int) -> Iterable[TrackedFrameLike]: ...

    def close(self) -> None: ...


class VideoTracker(Protocol):
    """Memory propagation over the unit's case (``tasks.models.sam2_video.VideoSession``): one pass of
    one object per ``track``, frames yielded as tracked, or a pass to prompt, correct and propagate
    again (``open_pass``); its image encoder passes are counted."""

    encoder_calls: int
    encode_s: float

    def track(self, z: int, prompt: Prompt, low: int, high: int, reverse: bool = False) -> Iterable[TrackedFrameLike]: ...

    def open_pass(self, low: int, high: int, reverse: bool = False, keep_outputs: bool | None = None) -> VideoPassLike: ...


@dataclass(frozen=True)
class StepActivity:
    """What one step did: the slices it prompted (in order, repeats kept), its decoder calls and scores."""

    visited: tuple[int, ...]
    scores: tuple[float, ...]

    @property
    def decoder_calls(self) -> int:
        return len(self.visited)

    @property
    def distinct_slices(self) -> tuple[int, ...]:
        """The prompted slices in the order of their first prompt in the step."""
        return tuple(dict.fromkeys(self.visited))

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")


@dataclass
class VolumeContext:
    """What a volumetric protocol may use for one object: its GT volume and row, the model's geometry
    and box rule, a slice predictor, and an RNG seeded from the object's key and the protocol."""

    gt: np.ndarray  # (Z, H, W) bool
    target: PlannedVolume
    geometry: Geometry
    box_shift: int
    rng: np.random.Generator
    slice_predict: SlicePredict
    video: VideoTracker | None = None
    _visited: list[int] = field(default_factory=list)
    _scores: list[float] = field(default_factory=list)

    def predict(self, z: int, prompt: Prompt) -> np.ndarray:
        """The model's mask on slice ``z`` for ``prompt``; the call is recorded for the step's activity."""
        mask, score = self.slice_predict(z, prompt)
        self._visited.append(int(z))
        self._scores.append(float(score))
        return mask

    def track(self, z: int, prompt: Prompt, low: int, high: int, reverse: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """One video-mode pass: ``prompt`` on slice ``z``, carried to ``high`` (or down to ``low``) by the
        model's memory; yields (slice, mask) as tracked, each recorded as a visit with SAM 2's object score."""
        yield from self.record(self.tracker().track(z, prompt, low, high, reverse))

    def tracker(self) -> VideoTracker:
        """The unit's video tracker; a ValueError where the model has none."""
        if self.video is None:
            raise ValueError("this protocol needs a video-capable model (SAM 2 video mode); the unit has none")
        return self.video

    def record(self, frames: Iterable[TrackedFrameLike]) -> Iterator[tuple[int, np.ndarray]]:
        """Tracked frames as (slice, mask), each recorded as a visit with the model's object score."""
        for frame in frames:
            self._visited.append(int(frame.z))
            self._scores.append(float(frame.score))
            yield frame.z, frame.mask

    def take_activity(self) -> StepActivity:
        """The activity since the last call (one step's), and a fresh record for the next step."""
        activity = StepActivity(tuple(self._visited), tuple(self._scores))
        self._visited, self._scores = [], []
        return activity

    def empty(self) -> np.ndarray:
        """An all-background prediction volume of the case's shape."""
        return np.zeros(self.gt.shape, dtype=bool)


@dataclass(frozen=True)
class VolumeStep:
    """One step's outcome: the spec name it belongs to, the step number, what was sent (a JSON-able
    description: the box and its slice, or the click), and the predicted volume (Z, H, W) bool."""

    protocol: str
    step: int
    prompt: dict[str, Any]
    mask: np.ndarray

    def prompt_json(self) -> str:
        return json.dumps(self.prompt, separators=(",", ":"))


class VolumeProtocol(RecordedVariants):
    """A named, published way of prompting a whole object through a volume; ``specs`` are the variants.

    As for :class:`~tasks.protocols.base.PromptProtocol`, every variant is its own spec; ``run`` yields
    the steps of at least the ``wanted`` variant names (variants share the unit's embeddings).
    """

    scope = "volume"
    needs_video = False  # True: run only with a video-capable model, through VolumeContext.track

    @abstractmethod
    def run(self, ctx: VolumeContext, wanted: frozenset[str]) -> Iterator[VolumeStep]:
        """Prompt the model for one volume object; yield the steps in order."""


def volume_seed(dataset: str, case_id: str, label: int, protocol: str) -> int:
    """A seed from the volume object's key and the protocol (slice -1: the whole volume), independent
    of file or run order; the same scheme as slice objects' ``object_seed``."""
    return object_seed(dataset, case_id, -1, label, protocol)
