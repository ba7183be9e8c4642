"""The model interface: encode a slice once, then decode any number of prompts on that embedding."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Prompt:
    """What is sent to a model, in original pixel coordinates (x right, y down).

    ``box`` is (x0, y0, x1, y1); ``points`` are (x, y) with ``point_labels`` 1 (foreground) or 0, or
    -1: SAM's "not a point" label, whose point is ignored (SAM-Med2D sends one when a prediction has
    no error left to click on).
    """

    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.points) != len(self.point_labels):
            raise ValueError("each point needs exactly one label")
        if self.box is None and not self.points:
            raise ValueError("a prompt needs a box or at least one point")

    def to_json(self) -> str:
        """The prompt as recorded in the results table."""
        out: dict[str, Any] = {}
        if self.box is not None:
            out["box"] = [round(float(v), 2) for v in self.box]
        if self.points:
            out["points"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.points]
            out["labels"] = [int(v) for v in self.point_labels]
        return json.dumps(out, separators=(",", ":"))


@dataclass(frozen=True)
class Geometry:
    """How a model maps an original (H, W) slice onto its square input: scale per axis, then pad."""

    height: int
    width: int
    input_size: int
    scale_y: float
    scale_x: float

    @classmethod
    def longest_side(cls, height: int, width: int, input_size: int) -> Geometry:
        """Resize the longest side to ``input_size`` keeping the aspect ratio, pad bottom/right."""
        scale = input_size / max(height, width)
        return cls(height, width, input_size, scale, scale)

    @classmethod
    def stretch(cls, height: int, width: int, input_size: int) -> Geometry:
        """Resize both sides to ``input_size`` (MedSAM's recipe; aspect ratio not kept)."""
        return cls(height, width, input_size, input_size / height, input_size / width)

    @property
    def resized(self) -> tuple[int, int]:
        """(h, w) of the image inside the model input, before padding."""
        return int(round(self.height * self.scale_y)), int(round(self.width * self.scale_x))

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Original (x, y) coordinates to model input coordinates."""
        return np.asarray(xy, dtype=np.float64) * np.array([self.scale_x, self.scale_y])

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Model input (x, y) coordinates to original coordinates."""
        return np.asarray(xy, dtype=np.float64) / np.array([self.scale_x, self.scale_y])


@dataclass
class Embedding:
    """A slice's image embedding, with the geometry needed to place prompts and masks."""

    geometry: Geometry
    features: Any = field(repr=False)


@dataclass(frozen=True)
class Decoded:
    """A decoder call's outputs: masks (k, H, W) bool at the original resolution, scores (k,), and the
    low-resolution mask logits (k, h, w) in the model's input frame, which a later call can take back
    as its mask input (SAM's ``mask_input``)."""

    masks: np.ndarray
    scores: np.ndarray
    low_res: np.ndarray


def sam_decode(
    net: torch.nn.Module, embedding: Embedding, prompt: Prompt, multimask: bool, device: torch.device,
    mask_input: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-resolution mask logits and predicted IoUs from a SAM-style prompt encoder and mask decoder.

    ``mask_input`` (h, w), the prompt encoder's mask input size (4x the embedding: 256x256 for SAM and
    LiteMedSAM), is embedded by the prompt encoder's mask branch as the dense prompt; without it the
    encoder's learned "no mask" embedding is used. LiteMedSAM and the SAM family share this decoder
    interface; only pre- and postprocessing differ.
    """
    points, boxes = prompt_tensors(prompt, embedding.geometry, device)
    masks = None
    if mask_input is not None:
        expected = tuple(net.prompt_encoder.mask_input_size)
        if tuple(mask_input.shape) != expected:
            raise ValueError(f"mask input must be {expected} (the model's low-res mask size), got {tuple(mask_input.shape)}")
        masks = torch.as_tensor(np.asarray(mask_input, dtype=np.float32)[None, None], device=device)
    sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=masks)
    return net.mask_decoder(
        image_embeddings=embedding.features, image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
    )


def prompt_tensors(prompt: Prompt, geometry: Geometry, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """(points, boxes) for a SAM-style prompt encoder, in model input coordinates, batch of one."""
    boxes = points = None
    if prompt.box is not None:
        corners = geometry.to_model(np.reshape(prompt.box, (2, 2))).reshape(1, 1, 4)
        boxes = torch.as_tensor(corners, dtype=torch.float32, device=device)
    if prompt.points:
        coords = torch.as_tensor(geometry.to_model(prompt.points)[None], dtype=torch.float32, device=device)
        labels = torch.as_tensor([prompt.point_labels], dtype=torch.int64, device=device)
        points = (coords, labels)
    return points, boxes


class SegmentationModel(ABC):
    """A promptable segmentation model. Each model owns its preprocessing and multimask handling."""

    name: str
    input_size: int
    box_shift: int  # medsam-box expansion, in model input pixels
    sha256: str
    takes_mask_input: bool = False  # True where decode_with_mask is implemented
    supports_video: bool = False
    """True for models with a video mode (SAM 2): they also have ``video_session(slice_image, depth,
    height, width)``, a ``tasks.models.sam2_video.VideoSession`` over one case whose slices are the
    frames, for protocols that carry a prompt through a volume with the model's memory."""

    @abstractmethod
    def geometry(self, height: int, width: int) -> Geometry:
        """How this model maps an (H, W) slice onto its input."""

    @abstractmethod
    def encode(self, image: np.ndarray) -> Embedding:
        """Embed one uint8 slice of shape (H, W, 3)."""

    @abstractmethod
    def decode(self, embedding: Embedding, prompt: Prompt, multimask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Masks (k, H, W) bool at the original resolution and the model's scores (k,) for a prompt."""

    def decode_with_mask(
        self, embedding: Embedding, prompt: Prompt, multimask: bool = False, mask_input: np.ndarray | None = None
    ) -> Decoded:
        """As :meth:`decode`, with an optional low-res mask input, also returning the low-res logits.

        Only models with a SAM-style mask prompt branch have it; the others refuse by name.
        """
        raise NotImplementedError(f"model {self.name} takes no mask input (protocols that feed masks back need a SAM-style model)")


class MaskInputModel(SegmentationModel):
    """A model with SAM's mask prompt branch: :meth:`decode` is :meth:`decode_with_mask` without a mask."""

    takes_mask_input = True

    def decode(self, embedding: Embedding, prompt: Prompt, multimask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        out = self.decode_with_mask(embedding, prompt, multimask)
        return out.masks, out.scores

    @abstractmethod
    def decode_with_mask(
        self, embedding: Embedding, prompt: Prompt, multimask: bool = False, mask_input: np.ndarray | None = None
    ) -> Decoded:
        """Masks and scores at the original resolution and the low-res logits, optionally from a low-res mask input."""
