"""SAM 2 video mode over one stored case: the slices are the frames, SAM 2's memory carries a prompt through them.

Frames (``sam2.utils.misc`` of sam2 1.1.0, ``load_video_frames_from_jpg_images``, the path
``init_state`` takes): the RGB uint8 frame is resized to ``image_size`` x ``image_size`` with PIL's
default filter (bicubic; the aspect ratio is not kept), divided by 255, stored as float32 and
normalised with the ImageNet mean/std. Here the frames come from the store in memory (the package
reads a folder of JPEG files, whose compression would change the pixels) and are made one at a time
when the package asks for one (:class:`LazyFrames`): none is held by the container, and the package
keeps the one it is encoding in its one-frame feature cache (``inference_state["cached_features"]``,
which also holds that frame's backbone output). ``init_state`` would instead hold every frame as
float32 at ``image_size`` (12 MiB each at 1024: 3.5 GiB for 300 slices) and encode frame 0 to warm up.

The inference state is made here (:func:`inference_state`, the dictionary ``init_state`` builds, with
the lazy frames as ``"images"``: the package only indexes it, ``images[frame_idx]``, on a feature-cache
miss, and takes its ``len``) and the package's own ``add_new_points_or_box``, ``propagate_in_video``
and ``reset_state`` do the rest, so the masks are the package's. ``num_frames`` is the case's depth,
whatever part of it is tracked: the package scales the temporal encoding of its object pointers by
``min(num_frames, max_obj_ptrs_in_encoder)``.

Memory bank: each tracked frame attends to the prompted (conditioning) frames and to the outputs of
the ``num_maskmem - 1`` frames before it (``num_maskmem = 7`` in every SAM 2.1 config, stride 1), and
to the object pointers of up to ``max_obj_ptrs_in_encoder - 1 = 15`` frames before it. The package
keeps every tracked frame's output (bf16 memory features 64 x (S/16)^2, float32 low-res logits
(S/4)^2: 0.75 MiB a frame at 1024) until ``reset_state``; a :class:`VideoSession` drops the outputs
of frames further behind the propagation front than that reach (:func:`memory_reach`), which the
package never reads again during the pass, so between frames at most ``reach`` outputs (``reach + 1``
while a frame is added) plus the conditioning frame's are held, and the masks are unchanged.
Passes that take correction clicks afterwards (:meth:`VideoSession.open_pass` with ``keep_outputs``)
keep every output instead: a click on a tracked frame starts from that frame's last prediction and
the propagation after it reads the memory of the frames before it.

Encoder calls (image encoder passes, counted by a forward hook on the network's image encoder while
the session is open, so one session at a time per network: samatlas's workers run one unit per
process, one thread each): the package re-encodes a frame whenever it is not the last one encoded.
Per tracked pass that is once per frame, the prompted frame included; the second pass of an object starts on the frame the first pass
was prompted on, long evicted from the package's cache, so the session keeps that frame's features
(one frame's backbone output, ~100 MiB at 1024 with its positional encodings) and puts them back:
each frame of an object's range is encoded once per object. Frames are not shared between objects
(each ``track`` pass encodes its frames again, as the package would).

Models: every SAM 2 model samatlas builds (:data:`tasks.models.VIDEO_MODELS`, ``tasks.models.sam2_image.Sam2Image``)
has a video mode through :class:`Sam2VideoMode`: the package's ``SAM2VideoPredictor`` built from the
same config with the video builder's overrides (:data:`VIDEO_OVERRIDES`), sharing the image-mode
network's weight tensors (no second copy).

Video frames are preprocessed as the package's video loader does (PIL bicubic), not as its image
predictor does (``SAM2Transforms``: torchvision bilinear, antialiased), so a slice's video-mode and
image-mode inputs differ slightly for the SAM 2.1 sizes (for ``medsam2`` both follow MedSAM2's PIL
resize). No bf16 autocast or compiled encoder in video mode: float32 on any device.

The package's default video post-processing (``build_sam2_video_predictor``) fills holes of up to 8
low-res pixels with its CUDA extension; samatlas installs sam2 without it (``SAM2_BUILD_CUDA=0``), so
the package warns and skips that step, on the CPU and the GPU alike.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from tasks.models.base import Prompt

VIDEO_MEAN = (0.485, 0.456, 0.406)  # load_video_frames' img_mean / img_std
VIDEO_STD = (0.229, 0.224, 0.225)
VIDEO_OVERRIDES = (  # what sam2.build_sam.build_sam2_video_predictor(apply_postprocessing=True) asks of Hydra
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)
OBJECT_ID = 1  # one object per session pass
SliceImage = Callable[[int], np.ndarray]
"""Slice index in; that slice as the (H, W, 3) uint8 image the model sees out."""


def video_frame(image: np.ndarray, image_size: int) -> torch.Tensor:
    """One (H, W, 3) uint8 slice as the package's video frame: (3, S, S) float32, resized with PIL's
    default (bicubic) filter to S x S, / 255, minus the ImageNet mean, over the ImageNet std."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a SAM 2 video frame must be a uint8 (H, W, 3) slice, got {image.dtype} {image.shape}")
    resized = np.array(Image.fromarray(image).convert("RGB").resize((image_size, image_size)))
    frame = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
    frame -= torch.tensor(VIDEO_MEAN, dtype=torch.float32)[:, None, None]
    frame /= torch.tensor(VIDEO_STD, dtype=torch.float32)[:, None, None]
    return frame


class LazyFrames:
    """A case's frames as the package indexes them (``len`` and ``[z]``), each made from the store when
    asked for and not kept: memory holds no frame of its own, whatever the case's depth."""

    def __init__(self, slice_image: SliceImage, depth: int, image_size: int):
        self.slice_image, self.depth, self.image_size = slice_image, depth, image_size
        self.loads: list[int] = []  # the frames made, in order

    def __len__(self) -> int:
        return self.depth

    def __getitem__(self, z: int) -> torch.Tensor:
        if not 0 <= z < self.depth:
            raise IndexError(f"frame {z} outside a case of {self.depth} slices")
        self.loads.append(int(z))
        return video_frame(self.slice_image(int(z)), self.image_size)


def inference_state(predictor: torch.nn.Module, frames: LazyFrames, height: int, width: int) -> dict:
    """The package's inference state (the dictionary ``SAM2VideoPredictor.init_state`` builds) over
    ``frames``, on the predictor's device, without ``init_state``'s warm-up encoding of frame 0."""
    device = predictor.device
    return {
        "images": frames, "num_frames": len(frames), "offload_video_to_cpu": False, "offload_state_to_cpu": False,
        "video_height": height, "video_width": width, "device": device, "storage_device": device,
        "point_inputs_per_obj": {}, "mask_inputs_per_obj": {}, "cached_features": {}, "constants": {},
        "obj_id_to_idx": OrderedDict(), "obj_idx_to_id": OrderedDict(), "obj_ids": [],
        "output_dict_per_obj": {}, "temp_output_dict_per_obj": {}, "frames_tracked_per_obj": {},
    }


def memory_reach(predictor: torch.nn.Module) -> int:
    """How many frames behind the current one a propagation step reads outputs from: its memory frames
    (``num_maskmem - 1`` at the eval stride) and its object pointers (``max_obj_ptrs_in_encoder - 1``)."""
    stride = predictor.memory_temporal_stride_for_eval
    pointers = predictor.max_obj_ptrs_in_encoder - 1 if predictor.use_obj_ptrs_in_encoder else 0
    return max((predictor.num_maskmem - 1) * stride, pointers)


@dataclass(frozen=True)
class TrackedFrame:
    """One frame of a pass: its index, the mask at the case's resolution (H, W) bool, and SAM 2's
    object-presence probability there (sigmoid of its object score logit)."""

    z: int
    mask: np.ndarray
    score: float


class VideoSession:
    """SAM 2 video propagation over one case for one video predictor; a context manager (the encoder
    hooks are removed on close). :meth:`track` is one pass of one object: a fresh state, one frame
    prompted, propagation one way through a bounded range. :meth:`open_pass` gives a pass that can
    also take correction clicks and propagate again (interactive protocols)."""

    def __init__(self, predictor: torch.nn.Module, slice_image: SliceImage, depth: int, height: int, width: int,
                 trim: bool = True):
        self.predictor, self.height, self.width = predictor, height, width
        self.frames = LazyFrames(slice_image, depth, predictor.image_size)
        self.trim, self.reach = trim, memory_reach(predictor)
        self.encoder_calls, self.encode_s = 0, 0.0
        self.peak_outputs = 0  # most non-conditioning outputs a pass held at once
        self._prompted: tuple[int, tuple] | None = None  # (frame, cached features) of the last prompt
        self._started = 0.0
        self._hooks = [predictor.image_encoder.register_forward_pre_hook(self._encoder_starts),
                       predictor.image_encoder.register_forward_hook(self._encoder_ends)]

    def __enter__(self) -> VideoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _encoder_starts(self, *_: object) -> None:
        self._started = time.perf_counter()

    def _encoder_ends(self, *_: object) -> None:
        self.encoder_calls += 1
        self.encode_s += time.perf_counter() - self._started

    def open_pass(self, low: int, high: int, reverse: bool = False, keep_outputs: bool | None = None) -> VideoPass:
        """A pass over ``low..high`` in one direction on its own inference state; ``keep_outputs`` (default:
        not the session's ``trim``) keeps every tracked frame's output, which corrections need."""
        return VideoPass(self, low, high, reverse, (not self.trim) if keep_outputs is None else keep_outputs)

    def track(self, z: int, prompt: Prompt, low: int, high: int, reverse: bool = False) -> Iterator[TrackedFrame]:
        """Prompt frame ``z`` on a fresh state, then propagate to ``high`` (or, ``reverse``, down to
        ``low``), yielding each frame as it is tracked, ``z`` first. The package yields nothing in
        reverse from frame 0."""
        video_pass = self.open_pass(low, high, reverse)
        video_pass.prompt(z, prompt)
        yield from video_pass.propagate(z)
        video_pass.close()

    def restore_features(self, state: dict, z: int) -> None:
        """Give ``state`` the kept features of frame ``z`` when the last prompt was on ``z``."""
        if self._prompted is not None and self._prompted[0] == z:
            state["cached_features"] = {z: self._prompted[1]}

    def keep_features(self, state: dict, z: int) -> None:
        """Keep the features of the frame just prompted (one frame's, replacing the last kept)."""
        self._prompted = (z, state["cached_features"][z])

    def close(self) -> None:
        """Remove the encoder hooks and drop the kept features."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._prompted = None


@contextmanager
def corrections_as_conditioning(predictor: torch.nn.Module) -> Iterator[None]:
    """While inside, a click on an already tracked frame makes it a conditioning frame (the package's
    ``add_all_frames_to_correct_as_cond``, as SAM 2's and MedSAM2's training configs set it): with the
    1.1.0 predictor's default (off) the corrected frame is stored as an ordinary tracked frame and the
    next propagation through it overwrites the correction."""
    # The flag only changes where a click on an already tracked frame is stored; a first prompt on a
    # frame is a conditioning frame either way, so another pass prompting meanwhile is unaffected.
    before = predictor.add_all_frames_to_correct_as_cond
    predictor.add_all_frames_to_correct_as_cond = True
    try:
        yield
    finally:
        predictor.add_all_frames_to_correct_as_cond = before


class VideoPass:
    """One object tracked one way over ``low..high`` on its own inference state: prompted on a frame,
    propagated away from it; corrected with clicks (:meth:`prompt` with ``correction``) and propagated
    again from the corrected frame."""

    def __init__(self, session: VideoSession, low: int, high: int, reverse: bool, keep_outputs: bool):
        self.session, self.low, self.high, self.reverse, self.keep_outputs = session, low, high, reverse, keep_outputs
        self.predictor = session.predictor
        self.state = inference_state(self.predictor, session.frames, session.height, session.width)

    def prompt(self, z: int, prompt: Prompt, correction: bool = False) -> None:
        """The package's ``add_new_points_or_box`` on frame ``z`` (original pixels; the package scales
        them to its input). A ``correction`` adds its points to the frame's earlier inputs (box and
        clicks) on top of the frame's last prediction and makes the frame a conditioning frame."""
        if not self.low <= z <= self.high:
            raise ValueError(f"prompted frame {z} outside the tracked range {self.low}..{self.high}")
        if correction and prompt.box is not None:
            raise ValueError("a correction adds points only (SAM 2 takes a box only as a frame's first input)")
        self.session.restore_features(self.state, z)
        points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2) if prompt.points else None
        labels = np.asarray(prompt.point_labels, dtype=np.int32) if prompt.points else None
        box = None if prompt.box is None else np.asarray(prompt.box, np.float32)
        with corrections_as_conditioning(self.predictor) if correction else nullcontext():
            self.predictor.add_new_points_or_box(self.state, frame_idx=z, obj_id=OBJECT_ID, points=points, labels=labels,
                                                 box=box, clear_old_points=not correction)
        self.session.keep_features(self.state, z)

    def propagate(self, start: int) -> Iterator[TrackedFrame]:
        """Track from ``start`` to the end of the range in the pass's direction, ``start`` first."""
        steps = start - self.low if self.reverse else self.high - start
        for frame, _, masks in self.predictor.propagate_in_video(self.state, start_frame_idx=start,
                                                                 max_frame_num_to_track=steps, reverse=self.reverse):
            yield TrackedFrame(int(frame), (masks[0, 0] > 0.0).cpu().numpy(), self._score(frame))
            if not self.keep_outputs:
                self._drop_behind(frame)
        self.state["cached_features"] = {}  # a later click re-encodes its frame; nothing else reads these

    def outputs(self) -> dict:
        """The package's stored outputs of this pass's object (``cond_frame_outputs``, ``non_cond_frame_outputs``)."""
        return self.state["output_dict_per_obj"][0]

    def _score(self, frame: int) -> float:
        outputs = self.outputs()
        out = outputs["cond_frame_outputs"].get(frame) or outputs["non_cond_frame_outputs"][frame]
        return float(torch.sigmoid(out["object_score_logits"].float()).flatten()[0])

    def _drop_behind(self, frame: int) -> None:
        """Drop the stored outputs the next frame will not read: those ``reach`` or more frames behind
        ``frame`` in the direction of travel (the next frame reads ``frame`` and the ``reach - 1`` before it)."""
        held = self.outputs()["non_cond_frame_outputs"]
        self.session.peak_outputs = max(self.session.peak_outputs, len(held))
        for t in [t for t in held if (t - frame if self.reverse else frame - t) >= self.session.reach]:
            del held[t]

    def close(self) -> None:
        """Drop the pass's outputs and cached features."""
        self.predictor.reset_state(self.state)
        self.state["cached_features"] = {}


def video_predictor(name: str, net: torch.nn.Module) -> torch.nn.Module:
    """The package's ``SAM2VideoPredictor`` for model ``name`` holding ``net``'s weight tensors (the
    image-mode network, already loaded and checked): built from the model's config with
    :data:`VIDEO_OVERRIDES` (random initial weights, replaced at once), in eval mode on ``net``'s device."""
    from hydra.utils import instantiate

    from tasks.models.sam2_build import compose_config

    video = instantiate(compose_config(name, VIDEO_OVERRIDES).model, _recursive_=True)
    video.load_state_dict(net.state_dict(), strict=True, assign=True)
    device = next(net.parameters()).device
    return video.to(device).eval().requires_grad_(False)


class Sam2VideoMode:
    """The video capability of a SAM 2 model class (mixed into it): ``supports_video`` and
    :meth:`video_session`. The class provides ``name`` and ``net`` (its loaded ``SAM2Base``)."""

    supports_video = True
    name: str
    net: torch.nn.Module
    _video: torch.nn.Module | None = None

    def video_predictor(self) -> torch.nn.Module:
        """The model's video predictor, built on first use and kept with the model."""
        if self._video is None:
            self._video = video_predictor(self.name, self.net)
        return self._video

    def video_session(self, slice_image: SliceImage, depth: int, height: int, width: int) -> VideoSession:
        """A :class:`VideoSession` over one case of ``depth`` (height, width) slices."""
        return VideoSession(self.video_predictor(), slice_image, depth, height, width)
