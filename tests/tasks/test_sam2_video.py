"""SAM 2 video mode (``tasks.models.sam2_video``) and the ``sam2-propagation`` protocols.

The protocols' rules (prompt, passes, range, union, largest component, refusal of 2D models) are
checked with a scripted tracker whose answers are known by construction; the real network checks the
session and one protocol run end to end.

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
from hydra.utils import instantiate
from records.units import PlannedVolume
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tasks.evaluate_volume import _video_session
from tasks.models.base import Geometry, Prompt
from tasks.models import VIDEO_MODELS
from tasks.models.filled_box import FilledBox
from tasks.models.sam2_build import CONFIGS, IMAGE_OVERRIDES, compose_config
from tasks.models.sam2_video import (
    VIDEO_MEAN, VIDEO_STD, TrackedFrame, VideoSession, memory_reach, video_frame, video_predictor,
)
from tasks.protocols import get_protocol
from tasks.protocols.clicks3d import next_click
from tasks.protocols.sam2_propagation import keep_largest_component
from tasks.protocols.volumetric import VolumeContext

DEPTH, HEIGHT, WIDTH = 6, 48, 64  # non-square: masks must come back at (48, 64)
IMAGE_SIZE = 512  # MedSAM2's sam2.1_hiera_t512: the tiny config at 512 px
KEY, LOW, HIGH = 2, 1, 4
BOX = (20.0, 14.0, 41.0, 33.0)  # x0, y0, x1, y1 in original pixels


def random_tiny(seed: int = 0, size: int = IMAGE_SIZE) -> torch.nn.Module:
    """The SAM 2.1 tiny video predictor at ``size`` px with seeded random weights (no checkpoint),
    built by the package's own ``build_sam2_video_predictor``."""
    torch.manual_seed(seed)
    grid = size // 16
    overrides = [f"++model.image_size={size}", f"++model.memory_attention.layer.self_attention.feat_sizes=[{grid},{grid}]",
                 f"++model.memory_attention.layer.cross_attention.feat_sizes=[{grid},{grid}]"]
    return build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", hydra_overrides_extra=overrides)


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
            video_pass = session.open_pass(LOW, HIGH)
            video_pass.prompt(KEY, Prompt(box=BOX, points=((30.0, 24.0),), point_labels=(1,)))
            inputs = video_pass.state["point_inputs_per_obj"][0][KEY]
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
    """With a memory reach of 2 frames (num_maskmem 3, 3 object pointers; at 256 px, to be quick), a
    forward pass over frames 0..5 drops the outputs behind the reach and still equals the package,
    which keeps them all."""
    small = random_tiny(seed=1, size=256)
    small.num_maskmem, small.max_obj_ptrs_in_encoder = 3, 3
    assert memory_reach(small) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(small, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            video_pass = session.open_pass(0, DEPTH - 1)
            video_pass.prompt(0, Prompt(box=BOX))
            ours = [(f.z, f.mask) for f in video_pass.propagate(0)]
            held = set(video_pass.outputs()["non_cond_frame_outputs"])
            peak = session.peak_outputs
        (pkg, _), _ = package_passes(small, volume, tmp_path, monkeypatch, z=0, low=0, high=DEPTH - 1)
    assert held == {4, 5} and peak == 3  # the reach (2 frames), and the frame just tracked before the drop
    assert [z for z, _ in ours] == [z for z, _ in pkg] == list(range(DEPTH))
    for (_, a), (_, b) in zip(ours, pkg):
        assert np.array_equal(a, b)


def test_video_predictor_shares_the_image_networks_weights():
    """The video predictor of ``medsam2`` is the package's SAM2VideoPredictor at 512 px holding the very
    tensors of the image-mode network (random weights here), with the video builder's post-processing."""
    torch.manual_seed(0)
    net = instantiate(compose_config("medsam2", IMAGE_OVERRIDES).model, _recursive_=True).eval()
    video = video_predictor("medsam2", net)
    assert isinstance(video, SAM2VideoPredictor) and video.image_size == 512 and video.fill_hole_area == 8
    name = "image_encoder.trunk.patch_embed.proj.weight"
    assert video.state_dict()[name].data_ptr() == net.state_dict()[name].data_ptr()
    assert memory_reach(video) == 15  # max(num_maskmem 7 - 1, 16 object pointers - 1)
    assert VIDEO_MODELS == tuple(CONFIGS)


# --- the protocols, with a scripted tracker -------------------------------------------------------

PSHAPE = (20, 40, 40)


class ScriptedTracker:
    """A stand-in video session: every pass records its call and yields, for each frame it tracks, the
    GT slice (forward passes also a stray 2x2 speck on slice ``speck`` far from the object)."""

    encoder_calls, encode_s = 0, 0.0

    def __init__(self, gt: np.ndarray, speck: int | None = None):
        self.gt, self.speck, self.calls = gt, speck, []

    def track(self, z, prompt, low, high, reverse=False):
        self.calls.append((z, prompt, low, high, reverse))
        for frame in (range(z, low - 1, -1) if reverse else range(z, high + 1)):
            mask = self.gt[frame].copy()
            if frame == self.speck and not reverse:
                mask[0:2, 0:2] = True
            yield TrackedFrame(frame, mask, 0.5)


def object_gt(z0=6, z1=12) -> np.ndarray:
    """A box-shaped object through slices z0..z1, wider on slice 9 (the key slice's box is known)."""
    gt = np.zeros(PSHAPE, bool)
    gt[z0:z1 + 1, 15:25, 12:22] = True
    gt[9, 13:27, 10:24] = True
    return gt


def scripted_run(name: str, gt: np.ndarray, tracker, **options):
    zs = np.nonzero(gt)[0]
    ys, xs = np.nonzero(gt.any(axis=0))
    target = PlannedVolume(1, "blob", "CT", "abdomen", (int(zs.min()), int(ys.min()), int(xs.min()), int(zs.max()),
                                                          int(ys.max()), int(xs.max())), 9, ())
    ctx = VolumeContext(gt, target, Geometry.stretch(*PSHAPE[1:], IMAGE_SIZE), 10, np.random.default_rng(0),
                        lambda z, p: (_ for _ in ()).throw(AssertionError("no slice-wise decoding")), tracker)
    protocol = get_protocol(name, **options)
    steps = [(step, ctx.take_activity()) for step in protocol.run(ctx, frozenset({name}))]
    return protocol, steps


def test_box_on_the_key_slice_forward_then_reverse_over_the_range_plus_margin():
    gt = object_gt()
    tracker = ScriptedTracker(gt)
    protocol, [(step, activity)] = scripted_run("sam2-propagation", gt, tracker)
    box = (10.0, 13.0, 23.0, 26.0)  # slice 9's tight box, x0 y0 x1 y1
    assert [(z, p.box, lo, hi, rev) for z, p, lo, hi, rev in tracker.calls] == [(9, box, 3, 15, False), (9, box, 3, 15, True)]
    assert activity.visited == (*range(9, 16), *range(9, 2, -1))
    assert step.step == 1 and step.prompt == {"box": list(box), "z": 9, "z_range": [3, 15]}
    assert np.array_equal(step.mask, gt)
    assert protocol.specs[0].params["margin_slices"] == 3 and protocol.specs[0].steps == 1


def test_margin_is_clipped_to_the_volume_and_recorded():
    gt = object_gt(z0=1, z1=17)
    tracker = ScriptedTracker(gt)
    protocol, [(step, _)] = scripted_run("sam2-propagation", gt, tracker, margin_slices=5)
    assert {(lo, hi) for _, _, lo, hi, _ in tracker.calls} == {(0, 19)}
    assert protocol.specs[0].params["margin_slices"] == 5 and step.prompt["z_range"] == [0, 19]
    with pytest.raises(ValueError, match="margin_slices"):
        get_protocol("sam2-propagation", margin_slices=-1)


def test_union_of_passes_keeps_only_the_largest_component():
    """A speck predicted on slice 4 (inside the tracked range, away from the object) is dropped."""
    gt = object_gt()
    _, [(step, _)] = scripted_run("sam2-propagation", gt, ScriptedTracker(gt, speck=4))
    assert np.array_equal(step.mask, gt)


def test_point_variant_clicks_the_deepest_voxel_on_its_own_slice():
    gt = object_gt()
    tracker = ScriptedTracker(gt)
    _, [(step, activity)] = scripted_run("sam2-propagation-point", gt, tracker)
    click = next_click(np.zeros_like(gt), gt, np.random.default_rng(0))  # the generator the run used, fresh
    (z, prompt, lo, hi, _), _ = tracker.calls
    assert click.foreground and (z, prompt.points, prompt.point_labels, prompt.box) == (click.z, ((click.x, click.y),), (1,), None)
    assert (lo, hi) == (3, 15) and step.prompt == {**click.to_json(), "z_range": [3, 15]}
    assert activity.visited[0] == click.z


def test_keep_largest_component_on_a_constructed_volume():
    """Three pieces: 8 voxels, 27 voxels plus one touching them only by a corner (26-connected: 28),
    and 12 voxels; the 28-voxel piece is kept whole."""
    volume = np.zeros((10, 10, 10), bool)
    volume[0:2, 0:2, 0:2] = True  # 8
    volume[4:7, 4:7, 4:7] = True  # 27
    volume[7, 7, 7] = True  # corner contact with (6, 6, 6)
    volume[0:1, 7:10, 6:10] = True  # 12
    kept = keep_largest_component(volume)
    assert kept.sum() == 28 and kept[7, 7, 7] and kept[5, 5, 5] and not kept[0, 0, 0] and not kept[0, 8, 8]
    assert not keep_largest_component(np.zeros((3, 3, 3), bool)).any()


def test_a_2d_only_model_is_refused_naming_the_video_models():
    with pytest.raises(ValueError, match="filled-box has no video mode.*medsam2"):
        _video_session(FilledBox(), [get_protocol("sam2-propagation")], None, (4, 8, 8), None)
    assert _video_session(FilledBox(), [get_protocol("cvpr24-box3d")], None, (4, 8, 8), None).__enter__() is None


def test_protocol_end_to_end_with_the_real_network(ours, predictor, volume):
    """sam2-propagation (margin 1) through a real session on the synthetic volume: the passes of the
    session tests, their union and largest component; one encoder pass per frame of the range."""
    gt = np.zeros(volume.shape[:3], bool)
    gt[2:4, 16:32, 22:40] = True  # slices 2..3: with the margin, the session tests' range 1..4
    gt[2, 14:34, 20:42] = True  # key slice 2, its tight box = BOX
    target = PlannedVolume(1, "blob", "CT", "abdomen", (2, 14, 20, 3, 33, 41), KEY, ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(predictor, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            ctx = VolumeContext(gt, target, Geometry.stretch(HEIGHT, WIDTH, IMAGE_SIZE), 10, np.random.default_rng(0),
                                None, session)
            [step] = get_protocol("sam2-propagation", margin_slices=1).run(ctx)
            calls = session.encoder_calls
    assert step.prompt["box"] == list(BOX) and step.prompt["z_range"] == [LOW, HIGH]
    assert ctx.take_activity().visited == (2, 3, 4, 2, 1)
    union = np.zeros(gt.shape, bool)
    for z, mask in ours[0] + ours[1]:
        union[z] |= mask
    assert step.mask.shape == (DEPTH, HEIGHT, WIDTH) and np.array_equal(step.mask, keep_largest_component(union))
    assert calls == HIGH - LOW + 1


# --- cvpr25-interactive-sam2 ----------------------------------------------------------------------

class ScriptedPass:
    """A stand-in pass: predicts the GT slice, except a 4x4 hole on slice ``hole`` until that slice
    gets a correction in this pass; records its prompts."""

    def __init__(self, tracker, low, high, reverse):
        self.tracker, self.low, self.high, self.reverse, self.corrected = tracker, low, high, reverse, set()

    def prompt(self, z, prompt, correction=False):
        self.tracker.prompts.append((self.reverse, z, prompt, correction))
        if correction:
            self.corrected.add(z)

    def propagate(self, start):
        for frame in (range(start, self.low - 1, -1) if self.reverse else range(start, self.high + 1)):
            mask = self.tracker.gt[frame].copy()
            if frame == self.tracker.hole and frame not in self.corrected:
                mask[16:20, 14:18] = False
            yield TrackedFrame(frame, mask, 0.5)

    def close(self):
        self.tracker.closed += 1


class ScriptedPasses(ScriptedTracker):
    def __init__(self, gt, hole):
        super().__init__(gt)
        self.hole, self.prompts, self.closed = hole, [], 0

    def open_pass(self, low, high, reverse=False, keep_outputs=None):
        assert keep_outputs
        return ScriptedPass(self, low, high, reverse)


def test_interactive_box_both_ways_then_a_click_corrects_its_pass_from_its_slice():
    gt = object_gt()  # slices 6..12, key 9
    tracker = ScriptedPasses(gt, hole=11)
    _, steps = scripted_run("cvpr25-interactive-sam2", gt, tracker)
    assert [s.step for s, _ in steps] == [1, 2, 3, 4, 5, 6]
    (first, a1), (second, a2), (third, _) = steps[:3]
    assert a1.visited == (*range(9, 13), *range(9, 5, -1))
    assert first.mask.sum() == gt.sum() - 16 and not first.mask[11, 16:20, 14:18].any()
    assert second.prompt["click"][2] == 11 and second.prompt["label"] == 1
    assert a2.visited == (11, 12)  # the forward pass, from the click to z_max
    reverse, z, prompt, correction = tracker.prompts[-1]
    assert (reverse, z, correction, prompt.box, prompt.point_labels) == (False, 11, True, None, (1,))
    assert np.array_equal(second.mask, gt)
    assert third.prompt == {"click": None} and all(np.array_equal(s.mask, gt) for s, _ in steps[2:])
    assert tracker.closed == 2


def test_interactive_click_on_the_key_slice_corrects_both_passes():
    gt = object_gt()
    tracker = ScriptedPasses(gt, hole=9)
    _, steps = scripted_run("cvpr25-interactive-sam2", gt, tracker)
    _, activity = steps[1]
    assert activity.visited == (*range(9, 13), *range(9, 5, -1))
    assert [(rev, z, corr) for rev, z, _, corr in tracker.prompts] == [(False, 9, False), (True, 9, False), (False, 9, True), (True, 9, True)]
    assert tracker.prompts[0][2].box is not None
    assert np.array_equal(steps[1][0].mask, gt)


def test_interactive_with_the_real_network_runs_six_steps(volume):
    """Plumbing only (random weights, 256 px to be quick): six steps at the case's resolution, each
    click's step visiting from its slice to the pass's end of the range, clicks kept as conditioning frames."""
    small = random_tiny(seed=2, size=256)
    gt = np.zeros(volume.shape[:3], bool)
    gt[1:4, 16:32, 22:40] = True
    target = PlannedVolume(1, "blob", "CT", "abdomen", (1, 16, 22, 3, 31, 39), KEY, ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(small, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            ctx = VolumeContext(gt, target, Geometry.stretch(HEIGHT, WIDTH, 256), 5, np.random.default_rng(0), None, session)
            steps = []
            for step in get_protocol("cvpr25-interactive-sam2").run(ctx):
                steps.append((step, ctx.take_activity()))
    assert [s.step for s, _ in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0][1].visited == (2, 3, 2, 1)
    for step, activity in steps:
        assert step.mask.shape == (DEPTH, HEIGHT, WIDTH)
        if step.step > 1 and step.prompt["click"] is not None:
            z = step.prompt["click"][2]
            ends = {2: (2, 3, 2, 1), 3: (3,), 1: (1,)}
            assert activity.visited == ends[z]
    assert small.add_all_frames_to_correct_as_cond is False  # set only while a correction is added
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoSession(small, lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
            video_pass = session.open_pass(LOW, HIGH, keep_outputs=True)
            video_pass.prompt(KEY, Prompt(box=BOX))
            list(video_pass.propagate(KEY))
            for z in (HIGH, KEY):
                video_pass.prompt(z, Prompt(points=((30.0, 24.0),), point_labels=(0,)), correction=True)
            labels = {z: video_pass.state["point_inputs_per_obj"][0][z]["point_labels"][0].tolist() for z in (KEY, HIGH)}
            assert labels == {KEY: [2, 3, 0], HIGH: [0]}  # the key slice keeps its box
            assert [f.z for f in video_pass.propagate(HIGH)] == [HIGH]  # moves the corrections into the outputs
            assert set(video_pass.outputs()["cond_frame_outputs"]) == {KEY, HIGH}


def test_sam2_image_models_have_a_video_mode_on_the_same_weights(tmp_path, volume):
    """``Sam2Image`` (a random tiny checkpoint file, loaded as medsam2) supports video; its session's
    predictor holds the image network's tensors; a runner gives it a session for sam2-propagation."""
    from tasks.models.sam2_image import Sam2Image

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    torch.save({"model": instantiate(compose_config("sam2.1_hiera_t").model).state_dict()}, path)
    model = Sam2Image("medsam2", path)
    assert model.supports_video and not FilledBox().supports_video
    with model.video_session(lambda i: volume[i], DEPTH, HEIGHT, WIDTH) as session:
        assert session.predictor.image_size == 512 and session.frames.depth == DEPTH
        name = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
        assert session.predictor.state_dict()[name].data_ptr() == model.net.state_dict()[name].data_ptr()
    assert model.video_predictor() is session.predictor  # built once per model
