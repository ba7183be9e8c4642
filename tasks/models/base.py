"""The model interface: encode a slice once, then decode any number of prompts on that embedding."""

from __future__ import annotations

import json
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where a network runs: the flow process plans without it
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
    as its mask input (SAM's ``mask_input``); None from a model without a mask prompt branch."""

    masks: np.ndarray
    scores: np.ndarray
    low_res: np.ndarray | None


@dataclass(frozen=True)
class DecodeRequest:
    """One prompt to decode on an embedding: multimask output or not, and an optional low-res mask input."""

    prompt: Prompt
    multimask: bool = False
    mask_input: np.ndarray | None = None


def sam_decode_batch(
    prompt_encoder: torch.nn.Module, mask_decoder: torch.nn.Module, embeddings: Sequence[Embedding],
    requests: Sequence[DecodeRequest], device: torch.device, stacks_images: bool,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Low-resolution mask logits (1, k, h, w) and predicted IoUs (1, k) of each request, from a SAM-style
    prompt encoder and mask decoder, request ``i`` decoded on ``embeddings[i]``.

    Each prompt is embedded on its own (the prompt encoder is cheap), exactly as a single call embeds
    it; the mask decoder then runs once per group of requests with the same number of sparse tokens
    (points + pad, or points + 2 box corners) and the same multimask choice, the group's sparse and
    dense embeddings stacked along the batch. SAM's decoder repeats its image embedding once per
    prompt, so without ``stacks_images`` a group also shares one embedding; a decoder that takes one
    image embedding per prompt (``stacks_images``: LiteMedSAM's, which repeats only a single one)
    gets the group's embeddings stacked, so prompts of several slices share a batch.

    ``mask_input`` (h, w), the prompt encoder's mask input size (4x the embedding: 256x256 for SAM and
    LiteMedSAM), is embedded by the prompt encoder's mask branch as the dense prompt; without it the
    encoder's learned "no mask" embedding is used. LiteMedSAM and the SAM family share this decoder
    interface; only pre- and postprocessing differ. The outputs match one-prompt calls to float
    rounding (batched matrix products sum in another order: ~1e-6 in the logits). ``mask_decoder`` is
    the network's own or a module called alike (its ONNX Runtime export).
    """
    import torch

    if len(embeddings) != len(requests):
        raise ValueError(f"{len(requests)} requests need as many embeddings, got {len(embeddings)}")
    groups: dict[tuple, list[int]] = {}
    sparse_of, dense_of = [], []
    for i, (embedding, request) in enumerate(zip(embeddings, requests)):
        points, boxes = prompt_tensors(request.prompt, embedding.geometry, device)
        masks = None
        if request.mask_input is not None:
            expected = tuple(prompt_encoder.mask_input_size)
            if tuple(request.mask_input.shape) != expected:
                raise ValueError(f"mask input must be {expected} (the model's low-res mask size), got {tuple(request.mask_input.shape)}")
            masks = torch.as_tensor(np.asarray(request.mask_input, dtype=np.float32)[None, None], device=device)
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
        if masks is None:  # the no-mask embedding broadcast over the grid: its one vector, added alike
            dense = dense[:, :, :1, :1]
        sparse_of.append(sparse)
        dense_of.append(dense)
        key = (sparse.shape[1], request.multimask, None if stacks_images else id(embedding))
        groups.setdefault(key, []).append(i)
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(requests)
    image_pe = dense_pe(prompt_encoder)
    for (_, multimask, _), members in groups.items():
        images = {id(embeddings[i]): embeddings[i].features for i in members}
        features = next(iter(images.values())) if len(images) == 1 else torch.cat([embeddings[i].features for i in members])
        low_res, scores = mask_decoder(
            image_embeddings=features, image_pe=image_pe,
            sparse_prompt_embeddings=torch.cat([sparse_of[i] for i in members]),
            dense_prompt_embeddings=stacked_dense([dense_of[i] for i in members]), multimask_output=multimask,
        )
        for j, i in enumerate(members):
            out[i] = (low_res[j : j + 1], scores[j : j + 1])
    return out


def stacked_dense(dense: Sequence[torch.Tensor]) -> torch.Tensor:
    """Dense prompt embeddings (1, C, H, W), or (1, C, 1, 1) for the no-mask vector, stacked on the batch
    axis: the vectors stay vectors unless a mask embedding is among them."""
    import torch

    grids = {tuple(d.shape[2:]) for d in dense}
    if len(grids) > 1:
        grid = max(grids)
        dense = [d.expand(-1, -1, *grid) for d in dense]
    return torch.cat(list(dense))


_DENSE_PE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dense_pe(prompt_encoder: torch.nn.Module) -> torch.Tensor:
    """``prompt_encoder.get_dense_pe()``, the positional encoding of the image grid, computed once per
    prompt encoder and device: it depends on the weights only (loaded before the first decode), and
    costs 2 ms a call on a CPU. Made outside inference mode, so that calls with autograd on may use it."""
    import torch

    device = next(prompt_encoder.parameters()).device
    held = _DENSE_PE.get(prompt_encoder)
    if held is None or held.device != device:
        with torch.inference_mode(False), torch.no_grad():
            held = _DENSE_PE[prompt_encoder] = prompt_encoder.get_dense_pe()
    return held


@dataclass(frozen=True)
class Prepared:
    """One slice made ready on the CPU for a model's encoder (:meth:`SegmentationModel.prepare`): the
    encoder's input (a batch-of-one CPU tensor, or the image itself for a model without a CPU stage)
    and the slice's geometry."""

    input: Any
    geometry: Geometry


def refuse_off_cuda(name: str, device: torch.device, **options: bool) -> None:
    """Refuse (ValueError) the CUDA-only options asked for (bf16, a compiled encoder) on another device."""
    asked = [option for option, on in options.items() if on]
    if asked and device.type != "cuda":
        verb = "is a CUDA option" if len(asked) == 1 else "are CUDA options"
        raise ValueError(f"{name}: {' and '.join(asked)} {verb}, the device is {device}")


def bf16_autocast(enabled: bool) -> AbstractContextManager:
    """CUDA bf16 autocast where ``enabled`` (a model's ``--bf16``), else nothing."""
    if not enabled:
        return nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16)


def batch_rows(batch: torch.Tensor) -> list[torch.Tensor]:
    """A batched tensor's rows as batches of one; each its own copy where the batch holds several, so
    that one slice's embedding, held or spilled to disk, does not keep the whole batch's memory."""
    if len(batch) == 1:
        return [batch]
    return [batch[i : i + 1].clone() for i in range(len(batch))]


def prompt_tensors(prompt: Prompt, geometry: Geometry, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """(points, boxes) for a SAM-style prompt encoder, in model input coordinates, batch of one."""
    import torch

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
    batches_slices: bool = False  # True where one decode_batch pass takes prompts on several embeddings

    @property
    def batches_decoding(self) -> bool:
        """Whether decoding many prompts in one :meth:`decode_batch` pass pays: where the decoder runs on
        an accelerator. On a CPU a batch costs as much per prompt as single calls, or more (LiteMedSAM on
        2 cores: 68 ms per prompt alone, 75 ms in batches of 4, 110 ms in batches of 24: the decoder's
        work is per prompt, mostly matrix products over the 4096 image tokens), so by default no model
        batches; SAM-style models do on a GPU."""
        return False

    @abstractmethod
    def geometry(self, height: int, width: int) -> Geometry:
        """How this model maps an (H, W) slice onto its input."""

    @abstractmethod
    def encode(self, image: np.ndarray) -> Embedding:
        """Embed one uint8 slice of shape (H, W, 3)."""

    def prepare(self, image: np.ndarray) -> Prepared:
        """The CPU stage of encoding one uint8 (H, W, 3) slice (resizing, normalising), safe to run on
        another thread: ``run_unit`` runs it on its read-ahead thread, so that on a GPU the next slices
        are prepared while the encoder works on these. This default leaves everything to :meth:`encode`."""
        return Prepared(image, self.geometry(*np.shape(image)[:2]))

    def encode_prepared(self, prepared: Sequence[Prepared]) -> list[Embedding]:
        """Embed slices :meth:`prepare` made, ``encode_prepared([prepare(image)])[0]`` equal to
        ``encode(image)`` up to float rounding. This default encodes one at a time; a model whose encoder
        takes a batch overrides it with one pass, which pays on a GPU (a single slice leaves most of the
        chip idle), not on a CPU."""
        return [self.encode(p.input) for p in prepared]

    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Embedding]:
        """Embed several slices: :meth:`prepare` each, then :meth:`encode_prepared` them."""
        return self.encode_prepared([self.prepare(image) for image in images])

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

    def decode_batch(self, embeddings: Sequence[Embedding], requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """Every request decoded on its embedding (``requests[i]`` on ``embeddings[i]``), as
        :meth:`decode_with_mask` would decode it (:meth:`decode` for a model without mask input, whose
        outputs carry no low-res logits).

        This default makes one call per request; SAM-style models override it to decode many prompts
        in one decoder pass (:func:`sam_decode_batch`), equal to these calls up to float rounding.
        """
        if len(embeddings) != len(requests):
            raise ValueError(f"{len(requests)} requests need as many embeddings, got {len(embeddings)}")
        out = []
        for embedding, request in zip(embeddings, requests):
            if self.takes_mask_input or request.mask_input is not None:
                out.append(self.decode_with_mask(embedding, request.prompt, request.multimask, request.mask_input))
            else:
                masks, scores = self.decode(embedding, request.prompt, request.multimask)
                out.append(Decoded(masks, scores, None))
        return out


class MaskInputModel(SegmentationModel):
    """A model with SAM's mask prompt branch, decoding in batches: :meth:`decode_with_mask` is a batch
    of one, :meth:`decode` that without a mask; a subclass implements :meth:`decode_batch`."""

    takes_mask_input = True

    def decode(self, embedding: Embedding, prompt: Prompt, multimask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        out = self.decode_with_mask(embedding, prompt, multimask)
        return out.masks, out.scores

    def decode_with_mask(
        self, embedding: Embedding, prompt: Prompt, multimask: bool = False, mask_input: np.ndarray | None = None
    ) -> Decoded:
        """Masks and scores at the original resolution and the low-res logits, optionally from a low-res mask input."""
        return self.decode_batch([embedding], [DecodeRequest(prompt, multimask, mask_input)])[0]

    @abstractmethod
    def decode_batch(self, embeddings: Sequence[Embedding], requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """Every request decoded on its embedding, many prompts in one decoder pass (:func:`sam_decode_batch`)."""
