"""SAM 2 video mode (``tasks.models.sam2_video``) and the ``sam2-propagation`` protocols.

The network is the real SAM 2.1 Hiera-tiny architecture at 512 px (MedSAM2's configuration) with
RANDOMLY INITIALISED weights seeded with ``torch.manual_seed(0)``: its masks mean nothing, so these
tests check shapes and plumbing only (frames, prompt placement, visit order, memory trimming, encoder
calls, determinism) and that samatlas's session gives exactly the package's own
``SAM2VideoPredictor`` output on the same frames. The package is fed those frames through its own
loader (``load_video_frames`` over a folder of empty ``<n>.jpg`` placeholders) with ``PIL.Image.open``
patched to hand back the in-memory slices, so its own resize and normalisation run on the same pixels
and no JPEG is written.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sam2.utils.misc as sam2_misc
from sam2.build_sam import build_sam2_video_predictor
from tasks.models.base import Prompt
from tasks.models.sam2_video import VIDEO_MEAN, VIDEO_STD, VideoSession, memory_reach, video_frame

DEPTH, HEIGHT, WIDTH = 6, 48, 64  # non-square: masks must come back at (48, 64)
IMAGE_SIZE = 512
TINY_512 = (  # MedSAM2's sam2.1_hiera_t512: the tiny config at 512 px
    f"++model.image_size={IMAGE_SIZE}",
    "++model.memory_attention.layer.self_attention.feat_sizes=[32,32]",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[32,32]",
)
KEY, LOW, HIGH = 2, 1, 4
BOX = (20.0, 14.0, 41.0, 33.0)  # x0, y0, x1, y1 in original pixels


def random_tiny(seed: int = 0) -> torch.nn.Module:
    """The SAM 2.1 tiny video predictor at 512 px with seeded random weights (no checkpoint)."""
    torch.manual_seed(seed)
    return build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                                      hydra_overrides_extra=list(TINY_512))


def synthetic_volume() -> np.ndarray:
    """(DEPTH, H, W, 3) uint8 slices: seeded noise with a bright rectangle on slices 1..3."""
    rng = np.random.default_rng(7)
    volume = rng.integers(0, 90, size=(DEPTH, HEIGHT, WIDTH), dtype=np.uint8)
    volume[1:4, 16:32, 22:40] = 220
    return np.repeat(volume[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def predictor() -> torch.nn.Module:
    return random_tiny()


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return synthetic_volume()


def session_passes(predictor, volume, z=KEY, low=LOW, high=HIGH, prompt=Prompt(box=BOX), trim=True):
    """Forward then reverse pass of one object through a samatlas session: frames, masks, encoder calls."""
    with VideoSession(predictor, lambda i: volume[i], DEPTH, HEIGHT, WIDTH, trim=trim) as session:
        forward = [(f.z, f.mask) for f in session.track(z, prompt, low, high)]
        reverse = [(f.z, f.mask) for f in session.track(z, prompt, low, high, reverse=True)]
        return forward, reverse, session.encoder_calls, list(session.frames.loads), session.peak_outputs


def package_passes(predictor, volume, folder: Path, monkeypatch, z=KEY, low=LOW, high=HIGH, box=BOX):
    """The same two passes with the package's own ``init_state`` and JPEG-folder loader, its
    ``Image.open`` patched to return the in-memory slices by frame number."""
    for i in range(DEPTH):
        (folder / f"{i}.jpg").touch()
    monkeypatch.setattr(sam2_misc.Image, "open", lambda path: Image.fromarray(volume[int(Path(path).stem)]))
    state = predictor.init_state(str(folder))
    passes = []
    for reverse in (False, True):
        predictor.reset_state(state)
        predictor.add_new_points_or_box(state, frame_idx=z, obj_id=1, box=np.asarray(box, np.float32))
        steps = z - low if reverse else high - z
        passes.append([(int(f), (m[0, 0] > 0.0).numpy())
                       for f, _, m in predictor.propagate_in_video(state, start_frame_idx=z, max_frame_num_to_track=steps,
                                                                   reverse=reverse)])
    return passes, state


@pytest.fixture(scope="module")
def ours(predictor, volume):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's "no CUDA extension: hole filling skipped"
        return session_passes(predictor, volume)


def test_frames_are_the_packages_preprocessing(volume, tmp_path, monkeypatch):
    """A frame made in memory equals what the package's loader makes of the same slice."""
    for i in range(DEPTH):
        (tmp_path / f"{i}.jpg").touch()
    monkeypatch.setattr(sam2_misc.Image, "open", lambda path: Image.fromarray(volume[int(Path(path).stem)]))
    frames, height, width = sam2_misc.load_video_frames(str(tmp_path), IMAGE_SIZE, True, compute_device=torch.device("cpu"))
    assert (height, width) == (HEIGHT, WIDTH)
    for z in range(DEPTH):
        assert torch.equal(video_frame(volume[z], IMAGE_SIZE), frames[z])
    ones = video_frame(np.full((4, 4, 3), 255, np.uint8), 8)  # white: (1 - mean) / std per channel
    assert ones.shape == (3, 8, 8)
    assert np.allclose(ones[:, 0, 0].numpy(), (1 - np.array(VIDEO_MEAN)) / np.array(VIDEO_STD), atol=1e-6)


def test_passes_visit_exactly_the_range(ours):
    forward, reverse, _, _, _ = ours
    assert [z for z, _ in forward] == [KEY, *range(KEY + 1, HIGH + 1)]
    assert [z for z, _ in reverse] == list(range(KEY, LOW - 1, -1))


def test_masks_at_the_original_resolution(ours):
    forward, reverse, _, _, _ = ours
    for _, mask in forward + reverse:
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == bool


def test_each_frame_encoded_once(ours):
    """Frames 1..4: one encoder pass each (the key frame's features are kept for the second pass)."""
    _, _, calls, loads, _ = ours
    assert calls == HIGH - LOW + 1
    assert sorted(loads) == list(range(LOW, HIGH + 1))


def test_prompt_placed_in_input_coordinates(predictor, volume):
    """The box reaches the model scaled per axis to its 512 px input (x by 512/64, y by 512/48), as
    point labels 2 and 3 (SAM 2's box corners); a click keeps label 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(predictor, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            session._prompt(KEY, Prompt(box=BOX, points=((30.0, 24.0),), point_labels=(1,)))
            inputs = session.state["point_inputs_per_obj"][0][KEY]
    sx, sy = IMAGE_SIZE / WIDTH, IMAGE_SIZE / HEIGHT
    expected = [[BOX[0] * sx, BOX[1] * sy], [BOX[2] * sx, BOX[3] * sy], [30.0 * sx, 24.0 * sy]]
    assert np.allclose(inputs["point_coords"][0].numpy(), expected, atol=1e-3)
    assert inputs["point_labels"][0].tolist() == [2, 3, 1]


def test_session_equals_the_package(ours, predictor, volume, tmp_path, monkeypatch):
    """Same frames, same box: the masks of both passes equal the package's, frame for frame; the
    package encodes more (frame 0 to warm up, the key frame again in the second pass)."""
    forward, reverse, calls, _, _ = ours
    before = []
    hook = predictor.image_encoder.register_forward_hook(lambda *_: before.append(1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (pkg_forward, pkg_reverse), _ = package_passes(predictor, volume, tmp_path, monkeypatch)
    finally:
        hook.remove()
    assert [z for z, _ in pkg_forward] == [z for z, _ in forward]
    assert [z for z, _ in pkg_reverse] == [z for z, _ in reverse]
    for (_, ours_mask), (_, pkg_mask) in zip(forward + reverse, pkg_forward + pkg_reverse):
        assert np.array_equal(ours_mask, pkg_mask)
    assert len(before) == calls + 2


def test_deterministic(ours, predictor, volume):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = session_passes(predictor, volume)
    for (z1, m1), (z2, m2) in zip(ours[0] + ours[1], again[0] + again[1]):
        assert z1 == z2 and np.array_equal(m1, m2)


def test_dropping_outputs_behind_the_reach_changes_nothing(volume, tmp_path, monkeypatch):
    """With a memory reach of 2 frames (num_maskmem 3, 3 object pointers), a forward pass over frames
    0..5 drops the outputs behind the reach and still equals the package, which keeps them all."""
    small = random_tiny(seed=1)
    small.num_maskmem, small.max_obj_ptrs_in_encoder = 3, 3
    assert memory_reach(small) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(small, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            ours = [(f.z, f.mask) for f in session.track(0, Prompt(box=BOX), 0, DEPTH - 1)]
            held = set(session._outputs()["non_cond_frame_outputs"])
            peak = session.peak_outputs
        (pkg, _), _ = package_passes(small, volume, tmp_path, monkeypatch, z=0, low=0, high=DEPTH - 1)
    assert held == {4, 5} and peak == 3  # the reach (2 frames), and the frame just tracked before the drop
    assert [z for z, _ in ours] == [z for z, _ in pkg] == list(range(DEPTH))
    for (_, a), (_, b) in zip(ours, pkg):
        assert np.array_equal(a, b)
