"""Work references that planning hands to workers: plain values, no arrays, no catalog handles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedObject:
    """An object to evaluate, the partition and target it belongs to, and the spec ids it lacks."""

    slice_index: int
    label: int
    target: str
    modality: str
    anatomy: str
    spec_ids: tuple[str, ...]
