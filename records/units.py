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


@dataclass(frozen=True)
class PlannedVolume:
    """A volume object (one label through a 3D case) to evaluate, with what volumetric protocols need
    of its ``volume_objects`` row and the spec ids it lacks."""

    label: int
    target: str
    modality: str
    anatomy: str
    bbox: tuple[int, int, int, int, int, int]  # (z0, y0, x0, z1, y1, x1), inclusive
    key_slice: int
    spec_ids: tuple[str, ...]

    @property
    def first_slice(self) -> int:
        return self.bbox[0]

    @property
    def last_slice(self) -> int:
        return self.bbox[3]
