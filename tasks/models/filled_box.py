"""The filled-box baseline: answer every box prompt with the box itself.

A promptable model is only useful where it beats this; it costs no encoder time.
"""

from __future__ import annotations

import numpy as np

from tasks.models.base import Embedding, Geometry, Prompt, SegmentationModel


class FilledBox(SegmentationModel):
    """Predicts the filled prompt box (geometry and box expansion as LiteMedSAM's, to compare alike)."""

    name = "filled-box"
    input_size = 256
    box_shift = 5
    sha256 = "none"

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry.longest_side(height, width, self.input_size)

    def encode(self, image: np.ndarray) -> Embedding:
        return Embedding(self.geometry(*image.shape[:2]), None)

    def decode(self, embedding: Embedding, prompt: Prompt, multimask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if prompt.box is None:
            raise ValueError("the filled-box baseline answers box prompts only")
        g = embedding.geometry
        x0, y0, x1, y1 = prompt.box
        ys = np.arange(g.height)[:, None] + 0.5
        xs = np.arange(g.width)[None, :] + 0.5
        mask = (xs >= x0) & (xs <= x1 + 1) & (ys >= y0) & (ys <= y1 + 1)
        return mask[None], np.ones(1)
