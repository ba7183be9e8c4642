"""A work unit's slice embeddings: each slice encoded at most once, at most ``ram_slots`` held in memory.

Volumetric protocols walk through a case's slices and come back to them (a refinement click re-prompts
its slice and the ones around it), so a unit needs a slice's embedding more than once, while a 600-slice
CT cannot hold 600 of them (LiteMedSAM's and SAM's are 256x64x64 float32, 4 MiB each: 2.4 GiB). The
cache keeps the ``ram_slots`` most recently used embeddings in memory and spills the others to a
private folder on local disk (``torch.save``; reading 4 MiB back costs milliseconds, encoding it again
seconds), so memory stays bounded by ``ram_slots`` embeddings and the encoder runs once per slice.
The folder is removed when the cache is closed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasks.models.base import Embedding, SegmentationModel

RAM_SLOTS = 16
"""Embeddings held in memory per unit: 64 MiB for LiteMedSAM or SAM (4 MiB each), whatever the case's depth."""


class EmbeddingCache:
    """Embeddings of one case's slices for one model, encoded on first use; a context manager."""

    def __init__(self, model: SegmentationModel, slice_image: Callable[[int], np.ndarray], ram_slots: int = RAM_SLOTS):
        if ram_slots < 1:
            raise ValueError("the embedding cache needs at least one slot in memory")
        self.model, self.slice_image, self.ram_slots = model, slice_image, ram_slots
        self._ram: OrderedDict[int, Embedding] = OrderedDict()
        self._spilled: set[int] = set()
        self._folder: Path | None = None
        self.encoder_calls = 0
        self.encode_s = 0.0
        self.peak_ram_slots = 0

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, z: int) -> Embedding:
        """The embedding of slice ``z``: from memory, from the spill folder, or encoded now."""
        if z in self._ram:
            self._ram.move_to_end(z)
            return self._ram[z]
        if z in self._spilled:
            import torch  # here, not at the top: the flow process imports this module and plans without torch

            embedding = torch.load(self._path(z), weights_only=False)
        else:
            start = time.perf_counter()
            embedding = self.model.encode(self.slice_image(z))
            self.encode_s += time.perf_counter() - start
            self.encoder_calls += 1
        while len(self._ram) >= self.ram_slots:
            self._spill(*self._ram.popitem(last=False))
        self._ram[z] = embedding
        self.peak_ram_slots = max(self.peak_ram_slots, len(self._ram))
        return embedding

    def _spill(self, z: int, embedding: Embedding) -> None:
        if z not in self._spilled:  # an embedding's bytes never change: write once, read many times
            import torch

            torch.save(embedding, self._path(z))
            self._spilled.add(z)

    def _path(self, z: int) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="samatlas-embeddings-"))
        return self._folder / f"{z}.pt"

    def close(self) -> None:
        """Drop every embedding and remove the spill folder."""
        self._ram.clear()
        self._spilled.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
