"""SAM (ViT-B/L/H) and MedSAM (ViT-B) through the segment-anything package, with user-supplied checkpoints.

Both families share one architecture (image encoder -> prompt encoder -> mask decoder, 1024x1024
input, 64x64x256 embedding, 256x256 low-resolution mask logits) but were trained on differently
prepared images, so each gets the preprocessing and mask post-processing of its own reference code:

``sam_vit_b`` / ``sam_vit_l`` / ``sam_vit_h`` (Kirillov et al.; ``SamPredictor`` in
``segment_anything/predictor.py`` and ``utils/transforms.py`` of segment-anything 1.0, the package
run here)
    The uint8 slice's longest side is resized to 1024 keeping the aspect ratio with
    ``ResizeLongestSide.apply_image`` (PIL bilinear), normalised with SAM's ImageNet pixel mean/std
    and zero-padded bottom/right to 1024x1024 (``Sam.preprocess``). Prompts are scaled per axis by
    new/old size exactly as ``ResizeLongestSide.apply_coords`` does (the rounded resized extent, so
    x and y scales differ by under half a pixel from ``1024 / max(H, W)``). Masks: the low-res logits
    are upsampled to 1024, the padding is cropped and the result upsampled to (H, W)
    (``Sam.postprocess_masks``), then thresholded at ``Sam.mask_threshold`` (logit > 0).
    ``multimask=True`` returns SAM's three masks and predicted IoUs, ``False`` its single-mask output.
    Box expansion (``box_shift``): 20 px at 1024, as MedSAM's SAM-baseline scripts
    (``comparisons/SAM/infer_SAM_{2D,3D}_npz.py``).

``medsam_vit_b`` (Ma et al., Nat. Commun. 2024; ``bowang-lab/MedSAM@d71e8a1:MedSAM_Inference.py``)
    The ViT-B architecture with MedSAM's fine-tuned weights. The slice is stretched to 1024x1024
    without keeping the aspect ratio (``skimage.transform.resize``, order 3, anti-aliased, range
    preserved, cast back to uint8), min-max normalised to [0, 1] over the whole slice and passed to
    the encoder as is: no ImageNet mean/std and no padding, so ``Sam.preprocess`` is bypassed (MedSAM
    was fine-tuned on exactly that input). Prompts are scaled by 1024/W and 1024/H. Masks: sigmoid
    of the low-res logits, bilinear upsampling straight to (H, W), > 0.5. MedSAM was fine-tuned with
    a single mask output; ``multimask=True`` still returns the decoder's three multimask heads,
    which MedSAM's training never supervised. ``box_shift`` 20 px at 1024 (the fixed expansion of
    MedSAM's evaluation scripts; training drew 0-20 px at random).

Loading: the model is built on the ``meta`` device with the package's own builder (never with its
``checkpoint=`` argument, which calls ``torch.load`` without ``weights_only``), the file is read by
``tasks.models.weights.load_state_dict`` (``weights_only=True``) and checked key by key and shape
by shape against the architecture before its tensors are assigned to the model, so a wrong file
fails with a ``CheckpointError`` that names the file, the architecture and what differs, and a
ViT-H never holds two copies of its weights in memory.

One ``encode`` per slice (the expensive ViT pass); ``decode`` runs only the prompt encoder and the
mask decoder on the cached embedding, so every prompt of every object on a slice reuses it. On CUDA
the encoder can run under bf16 autocast (``bf16=True``); off by default so CPU and GPU rows agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from skimage.transform import resize as skimage_resize

from tasks.models.base import (
    Decoded, DecodeRequest, Embedding, Geometry, MaskInputModel, Prepared, batch_rows, bf16_autocast, refuse_off_cuda,
    sam_decode_batch,
)
from tasks.fetch import sha256_file
from tasks.models.identity import precision_key
from tasks.models.weights import CheckpointError, load_state_dict, state_dict_mismatch

# Our model name -> (segment-anything registry key, preprocessing recipe).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "sam_vit_b": ("vit_b", "sam"),
    "sam_vit_l": ("vit_l", "sam"),
    "sam_vit_h": ("vit_h", "sam"),
    "medsam_vit_b": ("vit_b", "medsam"),
}
# Image-encoder width of each ViT size, to say what a mismatching checkpoint looks like.
VIT_WIDTHS = {768: "ViT-B (sam_vit_b / medsam_vit_b)", 1024: "ViT-L (sam_vit_l)", 1280: "ViT-H (sam_vit_h)"}
VIT_WIDTH_KEY = "image_encoder.patch_embed.proj.weight"


def _check_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, path: Path, name: str) -> None:
    """Raise a ``CheckpointError`` unless ``state`` has exactly the model's keys and shapes."""
    mismatch = state_dict_mismatch(state, model.state_dict())
    if not mismatch:
        return
    hint = ""
    width_tensor = state.get(VIT_WIDTH_KEY)
    if width_tensor is not None and width_tensor.ndim >= 1:
        looks_like = VIT_WIDTHS.get(int(width_tensor.shape[0]))
        if looks_like:
            hint = f"; the file looks like a {looks_like} checkpoint"
    raise CheckpointError(f"{path}: not a state dict for {name}{hint} ({mismatch})")


class SamFamily(MaskInputModel):
    """SAM ViT-B/L/H or MedSAM ViT-B from an official checkpoint file; 1024x1024 input."""

    input_size = 1024
    box_shift = 20  # px at 1024: MedSAM's SAM-baseline scripts (bbox_shift=20) and MedSAM evaluation

    def __init__(self, name: str, checkpoint: str | Path, device: str = "cpu", bf16: bool = False):
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown SAM-family model {name!r}; choose from {', '.join(ARCHITECTURES)}")
        registry_key, self.recipe = ARCHITECTURES[name]
        self.name = name
        self.checkpoint = Path(checkpoint)
        self.device = torch.device(device)
        refuse_off_cuda(name, self.device, bf16=bf16)
        self.bf16 = bf16
        state = load_state_dict(self.checkpoint, architecture=name)
        with torch.device("meta"):  # shapes only: no random init, no second copy of the weights
            net: Sam = sam_model_registry[registry_key](checkpoint=None)
        _check_state_dict(state, net, self.checkpoint, name)
        try:
            net.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:  # e.g. a dtype torch cannot assign; the key/shape check passed
            raise CheckpointError(f"{self.checkpoint}: cannot be loaded into {name} ({exc})") from exc
        del state
        # Non-persistent buffers (pixel mean/std) are created on the CPU by the builder; fp16/bf16 files -> fp32.
        self.net = net.float().to(self.device).eval().requires_grad_(False)
        self.sha256 = precision_key(sha256_file(self.checkpoint), bf16)
        self._resize = ResizeLongestSide(self.input_size)

    @property
    def batches_decoding(self) -> bool:
        return self.device.type != "cpu"

    def geometry(self, height: int, width: int) -> Geometry:
        if self.recipe == "medsam":
            return Geometry.stretch(height, width, self.input_size)
        # ResizeLongestSide: resized extent int(side * 1024 / long + 0.5), coordinates scaled by new/old per axis.
        new_h, new_w = ResizeLongestSide.get_preprocess_shape(height, width, self.input_size)
        return Geometry(height, width, self.input_size, new_h / height, new_w / width)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Geometry]:
        """(H, W, 3) uint8 -> (1, 3, 1024, 1024) float32 encoder input on the model's device."""
        prepared = self.prepare(image)
        return self._on_device(prepared.input), prepared.geometry

    def prepare(self, image: np.ndarray) -> Prepared:
        """The CPU stage: MedSAM's stretched, min-max normalised (1, 3, 1024, 1024) float input, or SAM's
        resized (1, 3, h, w) uint8 slice (normalised and padded on the device by ``Sam.preprocess``)."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.name} expects a uint8 (H, W, 3) slice, got {image.dtype} {image.shape}")
        geometry = self.geometry(*image.shape[:2])
        if self.recipe == "medsam":  # MedSAM_Inference.py
            resized = skimage_resize(
                image, (self.input_size, self.input_size), order=3, preserve_range=True, anti_aliasing=True
            ).astype(np.uint8)
            low, high = resized.min(), resized.max()
            scaled = (resized - low) / np.clip(high - low, a_min=1e-8, a_max=None)
            return Prepared(torch.from_numpy(scaled).float().permute(2, 0, 1)[None], geometry)
        # SamPredictor.set_image: ResizeLongestSide.apply_image, then Sam.preprocess (mean/std, pad).
        resized = self._resize.apply_image(image)
        return Prepared(torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None], geometry)

    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A prepared input as the encoder takes it, on the model's device."""
        tensor = tensor.to(self.device)
        return tensor if self.recipe == "medsam" else self.net.preprocess(tensor.float())

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> Embedding:
        return self.encode_batch([image])[0]

    @torch.inference_mode()
    def encode_prepared(self, prepared: Sequence[Prepared]) -> list[Embedding]:
        """One image-encoder pass over the stacked slices."""
        batch = torch.cat([self._on_device(p.input) for p in prepared])
        with bf16_autocast(self.bf16):
            features = self.net.image_encoder(batch)
        return [Embedding(p.geometry, f) for p, f in zip(prepared, batch_rows(features.float()))]

    @torch.inference_mode()
    def decode_batch(self, embeddings: Sequence[Embedding], requests: Sequence[DecodeRequest]) -> list[Decoded]:
        # SAM's MaskDecoder repeats its one image embedding per prompt: a batch holds prompts of one slice.
        out = []
        decoded = sam_decode_batch(self.net.prompt_encoder, self.net.mask_decoder, embeddings, requests, self.device,
                                   stacks_images=False)
        for embedding, (low_res, scores) in zip(embeddings, decoded):
            geometry = embedding.geometry
            size = (geometry.height, geometry.width)
            if self.recipe == "medsam":  # MedSAM_Inference.medsam_inference
                probabilities = F.interpolate(torch.sigmoid(low_res), size=size, mode="bilinear", align_corners=False)
                masks = probabilities[0] > 0.5
            else:  # SamPredictor.predict
                logits = self.net.postprocess_masks(low_res, input_size=geometry.resized, original_size=size)
                masks = logits[0] > self.net.mask_threshold
            out.append(Decoded(masks.cpu().numpy(), scores[0].float().cpu().numpy(), low_res[0].float().cpu().numpy()))
        return out
