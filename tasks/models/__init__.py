"""Promptable segmentation models behind one interface, loaded once per worker process."""

from __future__ import annotations

import os
from functools import lru_cache

from tasks.model_plugins import build_plugin_model, check_plugin_args
from tasks.models.base import Embedding, Geometry, Prompt, SegmentationModel

BUILT_IN = ("litemedsam", "filled-box")
SAM_FAMILY = ("sam_vit_b", "sam_vit_l", "sam_vit_h", "medsam_vit_b")  # tasks.models.sam
SAM2_FAMILY = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l", "medsam2")  # tasks.models.sam2_image
NEEDS_CHECKPOINT = SAM_FAMILY + SAM2_FAMILY
MODEL_NAMES = BUILT_IN + NEEDS_CHECKPOINT
VIDEO_MODELS = SAM2_FAMILY
"""The models with a video mode: the SAM 2 family (``tasks.models.sam2_video.Sam2VideoMode``)."""
BF16_MODELS = ("litemedsam",) + SAM_FAMILY + SAM2_FAMILY
"""The models whose image encoder can run under CUDA bf16 autocast (``--bf16``)."""


def no_video_mode(model: str, protocols: list[str]) -> str:
    """Why ``model`` cannot run ``protocols`` (which propagate with SAM 2's memory), naming the models that can."""
    return (f"{', '.join(protocols)}: propagation by SAM 2's video memory needs a video-capable model; "
            f"{model} has no video mode (video-capable models: {', '.join(VIDEO_MODELS)})")


def checkpoint_unused(name: str) -> str:
    """The message for ``--checkpoint`` given to a built-in model, which would silently ignore it."""
    return (f"model {name} does not take --checkpoint (its weights ship with samatlas); "
            "--checkpoint is for the SAM and SAM 2 families (sam_vit_*, medsam_vit_b, sam2.1_hiera_*, medsam2)")


def check_model_args(name: str, checkpoint: str | os.PathLike | None, bf16: bool = False) -> None:
    """Refuse an unknown model, a checkpoint for a built-in model (whose weights ship with samatlas;
    ignoring it would be silent), a SAM- or SAM 2-family model without one and bf16 for a model without
    a bf16 encoder. A name that is no built-in model's is looked up among the installed plugins
    (tasks/model_plugins.py), checked alike."""
    if bf16 and name not in BF16_MODELS:
        raise ValueError(f"model {name} has no bf16 encoder; bf16 is for {', '.join(BF16_MODELS)}")
    if name not in MODEL_NAMES:
        check_plugin_args(name, checkpoint)
        return
    if name in BUILT_IN and checkpoint is not None:
        raise ValueError(checkpoint_unused(name))
    if name in NEEDS_CHECKPOINT and checkpoint is None:
        raise ValueError(f"model {name} needs --checkpoint PATH (the official .pth/.pt file)")


@lru_cache(maxsize=4)
def load_model(name: str, checkpoint: str | None = None, device: str = "cpu", bf16: bool = False) -> SegmentationModel:
    """Build ``name`` once per process: a Dask worker keeps it between work units (the cache key is
    (name, checkpoint, device, bf16)). The arguments are checked by :func:`check_model_args`. A plugin
    model is imported here by its entry point, from its name: the flow never sends its class."""
    check_model_args(name, checkpoint, bf16)
    if name not in MODEL_NAMES:
        return build_plugin_model(name, checkpoint, device)
    if name == "litemedsam":
        from tasks.models.litemedsam import LiteMedSAM

        return LiteMedSAM(device=device, bf16=bf16)
    if name == "filled-box":
        from tasks.models.filled_box import FilledBox

        return FilledBox()
    if name in SAM2_FAMILY:
        from tasks.models.sam2_image import Sam2Image

        return Sam2Image(name, checkpoint, device=device, bf16=bf16)
    from tasks.models.sam import SamFamily

    return SamFamily(name, checkpoint, device=device, bf16=bf16)


__all__ = ["Embedding", "Geometry", "Prompt", "SegmentationModel", "check_model_args", "load_model", "MODEL_NAMES",
           "BF16_MODELS"]


def worker_model(name: str, checkpoint: str | None, device: str, threads: int, bf16: bool = False) -> SegmentationModel:
    """The model a worker process runs its units with, on ``threads`` torch (and ONNX Runtime) threads.

    The thread count is set before the model is first built, as ONNX Runtime sessions take theirs
    when they are made. Called by each unit, and by a local cluster's warm-up before the first unit. A
    worker process that calls it ends at once when its worker closes (:mod:`tasks.process_exit`).
    """
    import torch

    from tasks.process_exit import end_quickly_after_close

    end_quickly_after_close()
    torch.set_num_threads(threads)
    return load_model(name, checkpoint, device, bf16)

