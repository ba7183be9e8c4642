"""Decoding the requests of many protocol runs together: each lockstep round in as few decoder passes
as the model allows.

An evaluation unit runs every (object, protocol) of its slices as a generator
(:meth:`~tasks.protocols.base.PromptProtocol.steps`), each tied to its slice's embedding by
:func:`on_embedding`, and advances them in :func:`~tasks.protocols.base.lockstep`: every round, all
requests pending across objects, protocols and slices reach :class:`RoundDecoder` at once. It decodes
a request asked twice (same slice, prompt and multimask, no mask input) once, and hands the rest to
the model's :meth:`~tasks.models.base.SegmentationModel.decode_batch` (batched) or decodes them one
call each (``batched=False``, the one-at-a-time path the batched one is checked and measured against).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from tasks.models import SegmentationModel
from tasks.models.base import Decoded, DecodeRequest, Embedding, Prompt
from tasks.protocols.base import Steps


@dataclass(frozen=True)
class Ask:
    """A request of one protocol run, with the embedding it is decoded on and the run's decoder-time list."""

    embedding: Embedding
    request: DecodeRequest
    timer: list[float]


def on_embedding(run: Steps, embedding: Embedding, timer: list[float]) -> Generator[list[Ask], list[Decoded], Any]:
    """``run``'s requests as :class:`Ask` s on ``embedding`` (every round a list), its answers sent back
    as it asked them (one, or a list); returns what ``run`` returns."""
    try:
        asked = next(run)
        while True:
            many = isinstance(asked, list)
            answers = yield [Ask(embedding, r, timer) for r in (asked if many else [asked])]
            asked = run.send(answers if many else answers[0])
    except StopIteration as stop:
        return stop.value


@dataclass
class DecodeTally:
    """What a unit's decoding did: requests answered, prompts actually decoded (repeats answered once),
    and model decode calls (one per batch when batched, one per prompt when not)."""

    requests: int = 0
    decoded: int = 0
    calls: int = 0
    seconds: float = 0.0


@dataclass
class RoundDecoder:
    """Answers one lockstep round of :class:`Ask` s with ``model``, in batches unless ``batched`` is off."""

    model: SegmentationModel
    batched: bool = True
    tally: DecodeTally = field(default_factory=DecodeTally)

    def __call__(self, asks: list[Ask]) -> list[Decoded]:
        unique: list[Ask] = []
        slot: list[int] = []
        seen: dict[tuple[int, Prompt, bool], int] = {}
        for ask in asks:
            key = (id(ask.embedding), ask.request.prompt, ask.request.multimask)
            if ask.request.mask_input is None and key in seen:
                slot.append(seen[key])
                continue
            if ask.request.mask_input is None:
                seen[key] = len(unique)
            slot.append(len(unique))
            unique.append(ask)
        start = time.perf_counter()
        if self.batched:
            outs = self.model.decode_batch([a.embedding for a in unique], [a.request for a in unique])
            self.tally.calls += 1 if unique else 0
        else:  # one call per prompt, as SegmentationModel.decode_batch's default makes them
            outs = [SegmentationModel.decode_batch(self.model, [a.embedding], [a.request])[0] for a in unique]
            self.tally.calls += len(unique)
        seconds = time.perf_counter() - start
        self.tally.requests += len(asks)
        self.tally.decoded += len(unique)
        self.tally.seconds += seconds
        for ask in asks:  # each request's share of the round's decoder time
            ask.timer.append(seconds / max(len(unique), 1))
        return [outs[i] for i in slot]
