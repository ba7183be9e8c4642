"""Volumetric protocols on synthetic volumes whose answers are known by construction.

The volumes (a sphere, two blobs on separate slice ranges, an object touching the first slice, an
object with a gap in z) and the two test models are synthetic: they check the rules (boxes, key slice,
visit order, click placement, labels, determinism), not any model's quality. ``BrightInBox`` predicts
the bright pixels inside the prompt box (the volume's image is its GT), so a protocol that prompts a
slice with a box covering the object gets that slice exactly; ``ClickableBox`` predicts the filled box,
minus a disk around each background click and plus one around each foreground click.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from records.units import PlannedVolume
from tasks.embedding_cache import EmbeddingCache
from tasks.metrics import dice
from tasks.models.base import Embedding, Prompt
from tasks.models.filled_box import FilledBox
from tasks.protocols import get_protocol
from tasks.protocols.clicks3d import next_click
from tasks.protocols.cvpr25_interactive import challenge_box
from tasks.protocols.radioactive import interpolated_boxes, prompted_slices
from tasks.protocols.volumetric import VolumeContext

SHAPE = (24, 48, 48)


class BrightInBox(FilledBox):
    """The filled box intersected with the slice's bright pixels (the slice image is stored in the embedding)."""

    name = "bright-in-box"

    def encode(self, image: np.ndarray) -> Embedding:
        return Embedding(self.geometry(*image.shape[:2]), torch.as_tensor(image[..., 0] > 127))

    def decode(self, embedding, prompt, multimask=False):
        box, scores = super().decode(embedding, prompt, multimask)
        return box & embedding.features.numpy()[None], scores


class ClickableBox(FilledBox):
    """The filled box, with a disk of radius 3 removed around background clicks and added around foreground ones."""

    name = "clickable-box"

    def decode(self, embedding, prompt, multimask=False):
        masks, scores = super().decode(embedding, prompt, multimask)
        g = embedding.geometry
        ys, xs = np.mgrid[:g.height, :g.width]
        for (x, y), label in zip(prompt.points, prompt.point_labels):
            disk = (xs - x) ** 2 + (ys - y) ** 2 <= 9
            masks[0] = masks[0] | disk if label == 1 else masks[0] & ~disk
        return masks, scores


def planned(gt: np.ndarray) -> PlannedVolume:
    """The volume object's row fields as ingest computes them (key slice: voxel-weighted median)."""
    z, y, x = np.nonzero(gt)
    key = int(np.sort(z)[len(z) // 2])
    return PlannedVolume(1, "blob", "CT", "abdomen", (int(z.min()), int(y.min()), int(x.min()), int(z.max()), int(y.max()), int(x.max())), key, ())


def run(protocol_name: str, gt: np.ndarray, model=None, seed: int = 0, **options):
    """Run a protocol on ``gt`` (the image is the GT itself); return its steps with each step's activity and
    the cache's encoder calls."""
    model = model or BrightInBox()
    image = lambda z: np.repeat((gt[z] * 255).astype(np.uint8)[..., None], 3, axis=-1)  # noqa: E731
    protocol = get_protocol(protocol_name, **options)
    with EmbeddingCache(model, image, ram_slots=4) as cache:
        def predict(z, prompt):
            masks, scores = model.decode(cache.get(z), prompt)
            return masks[0], float(scores[0])

        ctx = VolumeContext(gt, planned(gt), model.geometry(*gt.shape[1:]), model.box_shift,
                            np.random.default_rng(seed), predict)
        steps = [(step, ctx.take_activity()) for step in protocol.run(ctx, frozenset(s.name for s in protocol.specs))]
        return steps, cache.encoder_calls


def sphere(center=(10, 24, 24), radius=5) -> np.ndarray:
    z, y, x = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    return (z - center[0]) ** 2 + (y - center[1]) ** 2 + (x - center[2]) ** 2 <= radius ** 2


def two_blobs() -> np.ndarray:
    """A large blob on slices 2..5 and a small one on slices 14..15, one label: a gap of 8 slices."""
    gt = np.zeros(SHAPE, bool)
    gt[2:6, 10:30, 10:30] = True
    gt[14:16, 30:36, 30:36] = True
    return gt


def test_cvpr24_box3d_walks_up_from_the_middle_of_the_range_then_down_and_covers_a_sphere():
    gt = sphere()
    [(step, activity)], calls = run("cvpr24-box3d", gt)
    assert activity.visited == (10, 11, 12, 13, 14, 15, 9, 8, 7, 6, 5)
    assert calls == 11
    assert step.prompt["z"] == 10 and step.prompt["box"] == [19.0, 19.0, 29.0, 29.0]
    assert dice(step.mask, gt) == 1.0


def test_cvpr24_box3d_reference_range_skips_the_first_and_last_slice_of_the_box():
    gt = sphere()
    [(step, activity)], _ = run("cvpr24-box3d", gt, z_range="reference")
    assert activity.visited == (10, 11, 12, 13, 14, 9, 8, 7, 6)
    assert not step.mask[5].any() and not step.mask[15].any()
    lost = gt[5].sum() + gt[15].sum()
    assert dice(step.mask, gt) == pytest.approx(2 * (gt.sum() - lost) / (2 * gt.sum() - lost))


def test_cvpr24_box3d_falls_back_to_the_3d_box_across_a_gap_and_reaches_the_second_blob():
    gt = two_blobs()
    [(step, activity)], _ = run("cvpr24-box3d", gt)
    assert activity.visited[0] == int((15 - 2) / 2 + 2) == 8  # an empty slice: the range's middle, not the key slice
    assert sorted(activity.visited) == list(range(2, 16))
    assert dice(step.mask, gt) == 1.0


def test_key_slice_is_the_voxel_weighted_median_not_the_middle_of_the_range():
    gt = two_blobs()
    assert planned(gt).key_slice == 4  # 1600 voxels on 2..5 against 72 on 14..15
    [(step, activity)], _ = run("radioactive-propagation", gt)
    assert activity.visited == (4, 5, 6, 3, 2, 1)  # stops past each end at the first empty prediction
    big = gt[:8].sum()
    assert dice(step.mask, gt) == pytest.approx(2 * big / (big + gt.sum()))  # the second blob is never reached


def test_an_object_touching_the_first_slice_is_predicted_on_it():
    gt = np.zeros(SHAPE, bool)
    gt[0:4, 5:15, 5:15] = True
    [(step, activity)], _ = run("cvpr24-box3d", gt)
    assert activity.visited == (1, 2, 3, 0)
    assert dice(step.mask, gt) == 1.0
    [(ref, _)], _ = run("cvpr24-box3d", gt, z_range="reference")
    assert not ref.mask[0].any() and not ref.mask[3].any()


def test_slicewise_box3d_prompts_only_the_slices_that_hold_the_object():
    gt = np.zeros(SHAPE, bool)
    gt[3:6, 10:20, 10:20] = True
    gt[8:10, 12:18, 12:18] = True
    [(step, activity)], calls = run("slicewise-box3d", gt)
    assert activity.visited == (3, 4, 5, 8, 9) and calls == 5
    assert dice(step.mask, gt) == 1.0
    [(prop, prop_activity)], _ = run("cvpr24-box3d", gt)
    assert sorted(prop_activity.visited) == list(range(3, 10))  # propagation walks through the gap


def test_radioactive_interpolation_spreads_its_prompts_and_interpolates_the_boxes():
    gt = np.zeros(SHAPE, bool)
    for z in range(2, 13):  # a box growing by one pixel per slice on each side
        gt[z, 20 - z:20 + z, 20 - z:20 + z] = True
    assert prompted_slices(gt, 2, 12, 3) == [2, 7, 12]
    assert prompted_slices(gt, 2, 12, 10) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    boxes = interpolated_boxes(gt, [2, 7, 12])
    assert boxes[4] == pytest.approx((16.0, 16.0, 23.0, 23.0))  # linear between (18, 21) and (13, 26)
    steps, calls = run("radioactive-interpolation", gt)
    assert [s.protocol for s, _ in steps] == ["radioactive-interpolation-3", "radioactive-interpolation-5",
                                              "radioactive-interpolation-10"]
    assert calls == 11  # the variants share the embeddings
    for step, activity in steps:
        assert activity.visited == tuple(range(2, 13))
        assert dice(step.mask, gt) == 1.0  # the growing box is exactly linear


def test_prompted_slices_move_to_the_nearest_slice_holding_the_object():
    gt = np.zeros(SHAPE, bool)
    gt[[2, 3, 9, 10], 5:9, 5:9] = True
    assert prompted_slices(gt, 2, 10, 3) == [2, 3, 10]  # 6 holds nothing; 3 and 9 are as near, the lower wins
    assert prompted_slices(gt, 2, 10, 2) == [2, 10]


def test_challenge_box_scales_the_shift_per_axis_and_clips():
    mask = np.zeros((512, 256), bool)
    mask[100:200, 3:50] = True
    assert challenge_box(mask, 6) == (0.0, 88.0, 55.0, 211.0)  # x: 6 * 256/256 = 6 (clipped at 0), y: 6 * 512/256 = 12


def test_next_click_is_at_the_deepest_voxel_of_the_largest_error_component():
    gt = np.zeros(SHAPE, bool)
    gt[5:16, 10:21, 10:21] = True  # an 11^3 cube
    click = next_click(np.zeros(SHAPE, bool), gt, np.random.default_rng(0))
    assert (click.z, click.y, click.x, click.foreground) == (10, 15, 15, True)
    pred = gt.copy()
    pred[18:23, 30:35, 30:35] = True  # a 5^3 false positive, the larger error
    pred[1:3, 40:42, 40:42] = True  # a 2^3 one
    click = next_click(pred, gt, np.random.default_rng(0))
    assert (click.z, click.y, click.x, click.foreground) == (20, 32, 32, False)
    assert next_click(gt, gt, np.random.default_rng(0)) is None


def test_next_click_breaks_ties_by_the_seeded_generator_among_the_deepest_voxels():
    gt = np.zeros(SHAPE, bool)
    gt[5:9, 10:14, 10:14] = True  # a 4^3 cube: eight equally deep centre voxels
    picks = {(c.z, c.y, c.x) for c in (next_click(np.zeros(SHAPE, bool), gt, np.random.default_rng(s)) for s in range(40))}
    assert picks <= {(z, y, x) for z in (6, 7) for y in (11, 12) for x in (11, 12)}
    assert len(picks) > 1
    assert next_click(np.zeros(SHAPE, bool), gt, np.random.default_rng(3)) == next_click(np.zeros(SHAPE, bool), gt, np.random.default_rng(3))


def test_cvpr25_interactive_records_six_steps_clicks_refine_and_runs_are_deterministic():
    gt = sphere(radius=7)
    steps, calls = run("cvpr25-interactive", gt, model=ClickableBox(), seed=11)
    assert [s.step for s, _ in steps] == [1, 2, 3, 4, 5, 6]
    first, first_activity = steps[0]
    assert first.prompt["z"] == 10 and 0 <= first.prompt["shift"] <= 6
    assert sorted(first_activity.visited) == list(range(3, 18))
    assert calls == 15  # clicks re-prompt slices already encoded
    dices = [dice(s.mask, gt) for s, _ in steps]
    assert all(b > a for a, b in zip(dices, dices[1:]))  # every background click removes false positives
    for step, activity in steps[1:]:
        x, y, z = step.prompt["click"]
        assert step.prompt["label"] == int(gt[z, y, x])
        assert activity.visited[0] == z  # the click's slice first, then outward
        assert all(3 <= v <= 17 for v in activity.visited)
    again, _ = run("cvpr25-interactive", gt, model=ClickableBox(), seed=11)
    assert [s.prompt for s, _ in again] == [s.prompt for s, _ in steps]
    assert all(np.array_equal(a.mask, b.mask) for (a, _), (b, _) in zip(again, steps))


def test_cvpr25_interactive_places_no_click_once_the_prediction_is_exact():
    gt = sphere()
    steps, _ = run("cvpr25-interactive", gt)  # BrightInBox gets the sphere exactly from the box
    assert dice(steps[0][0].mask, gt) == 1.0
    assert [s.prompt for s, _ in steps[1:]] == [{"click": None}] * 5
    assert all(a.visited == () for _, a in steps[1:])


def test_embedding_cache_encodes_each_slice_once_and_holds_at_most_its_slots():
    model = BrightInBox()
    images = {z: np.full((8, 8, 3), 40 * z, np.uint8) for z in range(5)}
    with EmbeddingCache(model, images.__getitem__, ram_slots=2) as cache:
        first = {z: cache.get(z).features.clone() for z in range(5)}
        again = {z: cache.get(z).features for z in (0, 4, 1, 3, 2, 0)}
        assert cache.encoder_calls == 5
        assert cache.peak_ram_slots == 2
        assert all(torch.equal(first[z], again[z]) for z in again)
        folder = cache._folder
        assert folder is not None and len(list(folder.iterdir())) >= 3
    assert not folder.exists()


def test_prompt_on_a_click_slice_carries_the_box_and_every_click():
    from tasks.protocols.propagation import box_and_clicks

    prompt = box_and_clicks((1.0, 2.0, 3.0, 4.0), [(5, 6, 1), (7, 8, 0)])
    assert prompt == Prompt(box=(1.0, 2.0, 3.0, 4.0), points=((5.0, 6.0), (7.0, 8.0)), point_labels=(1, 0))


def test_evaluate_help_names_every_protocol():
    from flows.cli import PROTOCOL_HELP
    from tasks.protocols import PROTOCOLS

    named = {p.strip() for part in PROTOCOL_HELP.split(":")[1:] for p in part.split(";")[0].split(",")}
    assert named == set(PROTOCOLS)
