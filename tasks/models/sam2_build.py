"""SAM 2.1 and MedSAM2 networks through the ``sam2`` package: config per model name, build, checkpoint load and check.

Shared by the image-mode models (``tasks.models.sam2_image``) and video-mode propagation: both need
the package's ``SAM2Base`` network built from its own Hydra config and filled from a user-supplied
checkpoint, and differ only in the ``_target_`` class and post-processing overrides they ask for.

Configs (sam2 1.1.0, ``sam2/configs/sam2.1/``): ``sam2.1_hiera_{t,s,b+,l}`` at 1024 px, and
``medsam2`` = the Hiera-tiny config at 512 px (bowang-lab/MedSAM2 fine-tuned SAM2.1 Hiera-tiny at
512: its ``sam2.1_hiera_t512.yaml`` differs from the tiny config by ``image_size: 512`` and the
memory-attention RoPE ``feat_sizes: [32, 32]``, the stride-16 grid at 512). The 512 variant is made
with Hydra overrides of the package's config, not a copied YAML, so it follows the installed package.

Building: the package's ``compose`` + ``instantiate``, as ``sam2.build_sam.build_sam2`` does, but
never with its ``ckpt_path`` (whose loader has no architecture check). Unlike segment-anything the
network cannot be built on the ``meta`` device (Hiera calls ``.item()`` on a tensor while it is
constructed, and RoPE attention moves a tensor it computes to CUDA when CUDA exists), so it is built
on the CPU with random initial weights (~1 s for tiny, ~2 s for large, 2 cores) and the checkpoint's
tensors are then assigned in place of them (``assign=True``): the large model briefly holds its
weights twice (~0.9 GB each in fp32).

Loading: the file is read by ``tasks.models.weights.load_state_dict`` (``weights_only=True``; SAM 2
checkpoints hold ``{"model": state_dict}``, which it unwraps) and compared key by key and shape by
shape with the built network; a wrong file fails with a ``CheckpointError`` naming the file, the
model, what differs, and what the file looks like: a SAM 1-family checkpoint (ViT or TinyViT image
encoder, no Hiera trunk), a SAM 2.0 checkpoint (SAM 2.1 added ``no_obj_embed_spatial`` and
``obj_ptr_tpos_proj``), or another SAM 2.1 size, recognised by its Hiera trunk's width and block
count read from the four configs. ``sam2.1_hiera_t`` and ``medsam2`` have identical keys and shapes
(image size changes no parameter), so one's file loads as the other; the recorded sha256 tells them
apart.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sam2  # noqa: F401  (initialises Hydra with the package's config module)
import torch
from hydra import compose
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from sam2.modeling.sam2_base import SAM2Base

from tasks.models.sam import VIT_WIDTH_KEY, VIT_WIDTHS
from tasks.models.weights import CheckpointError, load_state_dict, state_dict_mismatch


@dataclass(frozen=True)
class Sam2Config:
    """A samatlas SAM 2 model name: the package config it is built from, at which image size."""

    name: str
    config: str  # sam2 package config name
    image_size: int
    overrides: tuple[str, ...] = ()  # Hydra overrides of that config


_TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
CONFIGS: dict[str, Sam2Config] = {
    "sam2.1_hiera_t": Sam2Config("sam2.1_hiera_t", _TINY, 1024),
    "sam2.1_hiera_s": Sam2Config("sam2.1_hiera_s", "configs/sam2.1/sam2.1_hiera_s.yaml", 1024),
    "sam2.1_hiera_b+": Sam2Config("sam2.1_hiera_b+", "configs/sam2.1/sam2.1_hiera_b+.yaml", 1024),
    "sam2.1_hiera_l": Sam2Config("sam2.1_hiera_l", "configs/sam2.1/sam2.1_hiera_l.yaml", 1024),
    "medsam2": Sam2Config("medsam2", _TINY, 512, (
        "++model.image_size=512",
        "++model.memory_attention.layer.self_attention.feat_sizes=[32,32]",
        "++model.memory_attention.layer.cross_attention.feat_sizes=[32,32]",
    )),
}
# What ``build_sam2(apply_postprocessing=True)`` adds, i.e. the network ``SAM2ImagePredictor.from_pretrained``
# predicts with: a single-mask output that is unstable falls back to the best of the three multimask outputs.
IMAGE_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)

_TRUNK_WIDTH_KEY = "image_encoder.trunk.patch_embed.proj.weight"
_TRUNK_BLOCK = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")
_SAM21_ONLY = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")  # SAM 2.0 checkpoints lack these


def compose_config(name: str, extra_overrides: tuple[str, ...] = ()) -> DictConfig:
    """The resolved package config of model ``name`` with its own overrides, then ``extra_overrides``."""
    if name not in CONFIGS:
        raise ValueError(f"unknown SAM 2 model {name!r}; choose from {', '.join(CONFIGS)}")
    spec = CONFIGS[name]
    cfg = compose(config_name=spec.config, overrides=[*spec.overrides, *extra_overrides])
    OmegaConf.resolve(cfg)
    return cfg


def _trunk_signature_of(name: str) -> tuple[int, int]:
    """(Hiera width, block count) of model ``name``: its config's values, else the trunk class's
    defaults (the b+ config leaves ``stages`` at Hiera's default)."""
    trunk = compose_config(name).model.image_encoder.trunk
    defaults = inspect.signature(get_class(trunk._target_)).parameters
    width = trunk.get("embed_dim", defaults["embed_dim"].default)
    stages = trunk.get("stages", defaults["stages"].default)
    return int(width), int(sum(stages))


@lru_cache(maxsize=1)
def _trunk_signatures() -> dict[tuple[int, int], str]:
    """(Hiera width, block count) -> SAM 2.1 size, from the package's four configs."""
    return {_trunk_signature_of(name): name for name in CONFIGS if name.startswith("sam2.1_")}


def _trunk_signature(state: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """(Hiera width, block count) of a SAM 2 state dict; None without a Hiera trunk."""
    width = state.get(_TRUNK_WIDTH_KEY)
    blocks = {int(m.group(1)) for k in state if (m := _TRUNK_BLOCK.match(k))}
    if width is None or width.ndim < 1 or not blocks:
        return None
    return int(width.shape[0]), max(blocks) + 1


def looks_like(state: dict[str, torch.Tensor], name: str) -> str:
    """What a state dict that does not fit model ``name`` appears to be, as a clause; "" when unknown."""
    vit = state.get(VIT_WIDTH_KEY)
    if vit is not None and vit.ndim >= 1 and int(vit.shape[0]) in VIT_WIDTHS:
        return f"; the file looks like a SAM 1 {VIT_WIDTHS[int(vit.shape[0])]} checkpoint ({VIT_WIDTH_KEY}, no Hiera trunk)"
    if any(k.startswith("image_encoder.") for k in state) and not any(k.startswith("image_encoder.trunk.") for k in state):
        return "; the file looks like a SAM 1-family checkpoint (an image_encoder without a Hiera trunk)"
    signature = _trunk_signature(state)
    if signature is None:
        return ""
    if all(k not in state for k in _SAM21_ONLY):
        return f"; the file looks like a SAM 2.0 checkpoint (no {' or '.join(_SAM21_ONLY)}, which SAM 2.1 added)"
    width, depth = signature
    own = _trunk_signature_of(name)
    size = _trunk_signatures().get(signature)
    if size is not None and signature != own:
        return (f"; the file looks like a {size} checkpoint (Hiera width {width}, {depth} blocks), "
                f"not {name} (width {own[0]}, {own[1]} blocks)")
    return ""


def load_sam2(
    name: str, checkpoint: str | Path, device: str | torch.device = "cpu", extra_overrides: tuple[str, ...] = ()
) -> SAM2Base:
    """The package's network for model ``name`` with the weights of ``checkpoint``, in eval mode on ``device``.

    ``extra_overrides`` go to Hydra after the model's own: :data:`IMAGE_OVERRIDES` for image mode;
    video mode passes the ``_target_`` and post-processing of ``build_sam2_video_predictor``. A file
    whose keys or shapes differ from the network raises a :class:`CheckpointError` (module docstring).
    """
    path = Path(checkpoint)
    cfg = compose_config(name, extra_overrides)  # unknown names fail here, before the file is read
    state = load_state_dict(path, architecture=name)
    net: SAM2Base = instantiate(cfg.model, _recursive_=True)
    mismatch = state_dict_mismatch(state, net.state_dict())
    if mismatch:
        raise CheckpointError(f"{path}: not a state dict for {name}{looks_like(state, name)} ({mismatch})")
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # e.g. a dtype torch cannot assign; the key/shape check passed
        raise CheckpointError(f"{path}: cannot be loaded into {name} ({exc})") from exc
    del state
    return net.float().to(device).eval().requires_grad_(False)
