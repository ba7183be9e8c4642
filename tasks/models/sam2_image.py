"""SAM 2.1 (Hiera t/s/b+/l) and MedSAM2 in image mode through the ``sam2`` package: one encoder pass per
slice, any number of prompts decoded on it, with user-supplied checkpoints.

Image mode is what ``SAM2ImagePredictor`` does (sam2 1.1.0, ``sam2_image_predictor.py``): no memory,
no propagation; each slice stands alone. The network is built and its checkpoint checked by
:mod:`tasks.models.sam2_build` with :data:`~tasks.models.sam2_build.IMAGE_OVERRIDES`, i.e. as
``build_sam2`` builds it for the predictor (a single-mask output that is unstable falls back to the
best of the three multimask outputs, ``dynamic_multimask_via_stability``).

``sam2.1_hiera_t`` / ``_s`` / ``_b+`` / ``_l`` (1024 px), as ``SAM2ImagePredictor.set_image`` + ``SAM2Transforms``
    The uint8 slice goes through the package's own ``SAM2Transforms``: ``ToTensor`` (/255), then
    ``Resize((1024, 1024))`` (torchvision bilinear, antialiased) -- both sides to 1024, the aspect
    ratio is NOT kept and nothing is padded -- then ImageNet mean/std. Prompts: ``transform_coords``
    (x / W, y / H, times 1024), a box as its two corners with point labels 2 and 3 placed before the
    points (``SAM2ImagePredictor._predict``). Masks: the low-res logits (256x256) are upsampled
    bilinearly straight to (H, W) (``SAM2Transforms.postprocess_masks``; no hole filling, the
    predictor's default ``max_hole_area=0``) and thresholded at logit > 0; the low-res logits are
    returned clamped to [-32, 32], as ``predict`` returns them. ``multimask=True`` returns the three
    multimask outputs and their predicted IoUs, ``False`` the single output (with the stability
    fallback above). ``box_shift`` 20 px at 1024: the medsam-box margin used for SAM 1 and MedSAM at
    the same input size.

``medsam2`` (bowang-lab/MedSAM2, ``medsam2_infer_3D_CT.py``; SAM2.1 Hiera-tiny fine-tuned at 512)
    MedSAM2's own preprocessing, restated: the uint8 slice (already windowed, RGB) is resized to
    512x512 by PIL's ``Image.resize`` (its default filter, bicubic), divided by 255 and normalised
    with the ImageNet mean/std (in float32 here; MedSAM2's script computes in float64 before its
    bf16 autocast). Prompts, masks and multimask handling as for SAM 2.1 at 512 (128x128 low-res
    logits, the stride-16 grid 32x32). ``box_shift`` 10 px at 512: the same margin as 20 px at 1024,
    the same fraction (~2 %) of the model input.

``Embedding.features`` holds :class:`Sam2Features`: the stride-16 image embedding with the
``no_mem_embed`` added (``directly_add_no_mem_embed``, as ``set_image`` does) and the two
high-resolution feature maps already projected by the mask decoder's ``conv_s0``/``conv_s1``
(``forward_image``). Their grid sizes are read from the encoder's output rather than from the
predictor's hard-coded ``_bb_feat_sizes`` (256/128/64, which only fit 1024 px), so 512 px works.

GPU options, off by default: ``bf16=True`` runs encoder and decoder under CUDA bf16 autocast (as
MedSAM2's scripts and SAM 2's notebooks do; outputs are cast back to float32), ``compile_encoder=True``
wraps the image encoder's forward in ``torch.compile`` as ``SAM2Base(compile_image_encoder=True)``
does (the package notes Hiera-tiny did not support compilation). Both need a CUDA device and are
refused on others; neither path has been exercised here (no GPU in this session), and rows made with
them may differ slightly from float32 rows of the same checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sam2.utils.transforms import SAM2Transforms

from tasks.fetch import sha256_file
from tasks.models.base import (
    Decoded, DecodeRequest, Embedding, Geometry, MaskInputModel, Prepared, Prompt, batch_rows, bf16_autocast,
    refuse_off_cuda,
)
from tasks.models.identity import precision_key
from tasks.models.sam2_build import CONFIGS, IMAGE_OVERRIDES, load_sam2
from tasks.models.sam2_video import Sam2VideoMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # SAM2Transforms and MedSAM2's scripts
IMAGENET_STD = (0.229, 0.224, 0.225)
LOW_RES_CLAMP = 32.0  # SAM2ImagePredictor._predict clamps the returned low-res logits to +-32
BOX_LABELS = (2, 3)  # SAM 2's point labels for a box's top-left and bottom-right corners


@dataclass(frozen=True)
class Sam2Features:
    """What SAM 2's mask decoder needs from one slice's encoder pass (batch of one)."""

    image_embed: torch.Tensor  # (1, 256, s/16, s/16), no_mem_embed added
    high_res_feats: tuple[torch.Tensor, ...]  # (1, 32, s/4, s/4), (1, 64, s/8, s/8), projected


class Sam2Image(Sam2VideoMode, MaskInputModel):
    """A SAM 2.1 size or MedSAM2 from a checkpoint file, in image mode; square input, aspect ratio not kept.
    Also in video mode (:class:`~tasks.models.sam2_video.Sam2VideoMode`: ``video_session``)."""

    batches_slices = True  # decode_batch stacks the embeddings of several slices (repeat_image off)

    def __init__(self, name: str, checkpoint: str | Path, device: str = "cpu", bf16: bool = False,
                 compile_encoder: bool = False):
        if name not in CONFIGS:
            raise ValueError(f"unknown SAM 2 model {name!r}; choose from {', '.join(CONFIGS)}")
        self.device = torch.device(device)
        refuse_off_cuda(name, self.device, bf16=bf16, compile_encoder=compile_encoder)
        self.name = name
        self.recipe = "medsam2" if name == "medsam2" else "sam2"
        self.input_size = CONFIGS[name].image_size
        self.box_shift = 10 if self.recipe == "medsam2" else 20  # px at the input size (module docstring)
        self.checkpoint = Path(checkpoint)
        self.bf16 = bf16
        self.net = load_sam2(name, self.checkpoint, self.device, IMAGE_OVERRIDES)
        if compile_encoder:  # SAM2Base(compile_image_encoder=True)
            self.net.image_encoder.forward = torch.compile(
                self.net.image_encoder.forward, mode="max-autotune", fullgraph=True, dynamic=False
            )
        self.sha256 = precision_key(sha256_file(self.checkpoint), bf16)
        with warnings.catch_warnings():  # SAM2Transforms scripts its resize; torch 2.9 warns that jit is deprecated
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            self._transforms = SAM2Transforms(resolution=self.input_size, mask_threshold=0.0)

    @property
    def batches_decoding(self) -> bool:
        return self.device.type != "cpu"

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry.stretch(height, width, self.input_size)

    def prepare(self, image: np.ndarray) -> Prepared:
        """(H, W, 3) uint8 -> (1, 3, s, s) float32 encoder input, on the CPU."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.name} expects a uint8 (H, W, 3) slice, got {image.dtype} {image.shape}")
        if self.recipe == "medsam2":  # medsam2_infer_3D_CT.resize_grayscale_to_rgb_and_resize, then /255, mean/std
            resized = np.array(Image.fromarray(image).resize((self.input_size, self.input_size)))
            tensor = torch.from_numpy(resized).permute(2, 0, 1).float() / 255.0
            mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
            std = torch.tensor(IMAGENET_STD)[:, None, None]
            tensor = (tensor - mean) / std
        else:  # SAM2ImagePredictor.set_image
            tensor = self._transforms(image)
        return Prepared(tensor[None], self.geometry(*image.shape[:2]))

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> Embedding:
        return self.encode_batch([image])[0]

    @torch.inference_mode()
    def encode_prepared(self, prepared: Sequence[Prepared]) -> list[Embedding]:
        """One backbone pass over the stacked slices (as ``SAM2ImagePredictor.set_image_batch``)."""
        tensor = torch.cat([p.input for p in prepared]).to(self.device)
        with bf16_autocast(self.bf16):  # SAM2ImagePredictor.set_image from forward_image on
            backbone_out = self.net.forward_image(tensor)
            _, vision_feats, _, feat_sizes = self.net._prepare_backbone_features(backbone_out)
            if self.net.directly_add_no_mem_embed:
                vision_feats[-1] = vision_feats[-1] + self.net.no_mem_embed
        maps = [batch_rows(feat.permute(1, 2, 0).reshape(len(prepared), -1, *size).float())
                for feat, size in zip(vision_feats, feat_sizes)]
        return [Embedding(p.geometry, Sam2Features(rows[-1], tuple(rows[:-1]))) for p, rows in zip(prepared, zip(*maps))]

    def prompt_points(self, prompt: Prompt, geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """(coords (1, n, 2) float32, labels (1, n) int32) in input pixels: box corners (labels 2, 3) first,
        then the points, as ``SAM2ImagePredictor._prep_prompts`` + ``_predict`` merge them."""
        orig_hw = (geometry.height, geometry.width)
        coords, labels = [], []
        if prompt.box is not None:
            box = torch.as_tensor(prompt.box, dtype=torch.float, device=self.device)
            coords.append(self._transforms.transform_boxes(box, normalize=True, orig_hw=orig_hw))
            labels.append(torch.tensor([BOX_LABELS], dtype=torch.int, device=self.device))
        if prompt.points:
            points = torch.as_tensor(prompt.points, dtype=torch.float, device=self.device)
            coords.append(self._transforms.transform_coords(points, normalize=True, orig_hw=orig_hw)[None])
            labels.append(torch.as_tensor([prompt.point_labels], dtype=torch.int, device=self.device))
        return torch.cat(coords, dim=1), torch.cat(labels, dim=1)

    @torch.inference_mode()
    def decode_batch(self, embeddings: Sequence[Embedding], requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """Each prompt embedded on its own, then one decoder pass per group of prompts with the same
        number of points (box corners included) and multimask choice, as ``SAM2ImagePredictor._predict``
        decodes a batch of prompts: on one slice its image embedding is repeated per prompt
        (``repeat_image``), on several slices the group's embeddings and high-res maps are stacked."""
        if len(embeddings) != len(requests):
            raise ValueError(f"{len(requests)} requests need as many embeddings, got {len(embeddings)}")
        prompt_encoder = self.net.sam_prompt_encoder
        groups: dict[tuple[int, bool], list[int]] = {}
        sparse_of, dense_of = [], []
        with bf16_autocast(self.bf16):
            for i, (embedding, request) in enumerate(zip(embeddings, requests)):
                masks_in = None
                if request.mask_input is not None:
                    expected = tuple(prompt_encoder.mask_input_size)
                    if tuple(request.mask_input.shape) != expected:
                        raise ValueError(f"mask input must be {expected} ({self.name}'s low-res mask size), got {tuple(request.mask_input.shape)}")
                    masks_in = torch.as_tensor(np.asarray(request.mask_input, dtype=np.float32)[None, None], device=self.device)
                sparse, dense = prompt_encoder(points=self.prompt_points(request.prompt, embedding.geometry), boxes=None, masks=masks_in)
                sparse_of.append(sparse)
                dense_of.append(dense)
                groups.setdefault((sparse.shape[1], request.multimask), []).append(i)
            decoded: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(requests)  # type: ignore[list-item]
            image_pe = prompt_encoder.get_dense_pe()
            for (_, multimask), members in groups.items():
                features: list[Sam2Features] = [embeddings[i].features for i in members]
                one_slice = all(embeddings[i] is embeddings[members[0]] for i in members)
                if one_slice:
                    image, high_res = features[0].image_embed, list(features[0].high_res_feats)
                else:
                    image = torch.cat([f.image_embed for f in features])
                    high_res = [torch.cat(maps) for maps in zip(*(f.high_res_feats for f in features))]
                low_res, scores, _, _ = self.net.sam_mask_decoder(
                    image_embeddings=image, image_pe=image_pe,
                    sparse_prompt_embeddings=torch.cat([sparse_of[i] for i in members]),
                    dense_prompt_embeddings=torch.cat([dense_of[i] for i in members]), multimask_output=multimask,
                    repeat_image=one_slice and len(members) > 1, high_res_features=high_res,
                )
                for j, i in enumerate(members):
                    decoded[i] = (low_res[j : j + 1], scores[j : j + 1])
        out = []
        for embedding, (low_res, scores) in zip(embeddings, decoded):
            geometry = embedding.geometry
            logits = self._transforms.postprocess_masks(low_res.float(), (geometry.height, geometry.width))
            low_res = torch.clamp(low_res.float(), -LOW_RES_CLAMP, LOW_RES_CLAMP)
            out.append(Decoded((logits[0] > 0.0).cpu().numpy(), scores[0].float().cpu().numpy(), low_res[0].cpu().numpy()))
        return out
