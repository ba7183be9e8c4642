"""LiteMedSAM's preprocessing and decoding geometry (upstream inference: long side to 256, pad).

The pretrained model runs here on a synthetic image for shapes and geometry only; its quality is
checked on real patient slices in tests/flows/test_evaluate_samples.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks.models import load_model
from tasks.models.base import Prompt


@pytest.fixture(scope="module")
def lite():
    return load_model("litemedsam")


def _disc(height: int, width: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def test_long_side_resize_and_bottom_right_padding(lite):
    image = np.full((120, 45, 3), 40, np.uint8)
    image[10:30, 5:20] = 200
    tensor, geometry = lite.preprocess(image)
    assert tensor.shape == (1, 3, 256, 256)
    assert geometry.resized == (256, 96) and geometry.scale_x == geometry.scale_y == pytest.approx(256 / 120)
    assert float(tensor[..., :, 96:].abs().max()) == 0.0  # padding right of the resized image
    inside = tensor[..., :256, :96]
    assert float(inside.min()) == pytest.approx(0.0) and float(inside.max()) == pytest.approx(1.0)


def test_box_maps_by_one_scale_on_both_axes(lite):
    geometry = lite.geometry(120, 45)
    np.testing.assert_allclose(geometry.to_model([[45, 120]]), [[96, 256]])
    np.testing.assert_allclose(geometry.to_original(geometry.to_model([[7.5, 33.0]])), [[7.5, 33.0]])


def test_one_embedding_serves_many_prompts_at_the_original_size(lite):
    height, width = 96, 160  # not square: crop-then-upsample must land on the original grid
    target = _disc(height, width, (40, 110), 18)
    image = np.where(target, 210, 30).astype(np.uint8)[..., None].repeat(3, axis=2)
    calls = []
    hook = lite.encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        embedding = lite.encode(image)
        box_masks, box_scores = lite.decode(embedding, Prompt(box=(88, 18, 132, 62)))
        multi, scores = lite.decode(embedding, Prompt(points=((110, 40),), point_labels=(1,)), multimask=True)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert box_masks.shape == (1, height, width) and box_masks.dtype == bool and box_scores.shape == (1,)
    assert multi.shape == (3, height, width) and scores.shape == (3,)
    # A bright disc inside a tight box is the easiest possible case: the mask must sit on it.
    dice = 2 * (box_masks[0] & target).sum() / (box_masks[0].sum() + target.sum())
    assert dice > 0.8


def test_random_weights_are_a_different_model(lite):
    from tasks.models.litemedsam import LiteMedSAM

    torch.manual_seed(0)
    untrained = LiteMedSAM(pretrained=False)
    assert untrained.sha256 == "random-init" != lite.sha256
    trained_weight = dict(lite.net.named_parameters())["mask_decoder.iou_token.weight"]
    assert not torch.equal(trained_weight, dict(untrained.net.named_parameters())["mask_decoder.iou_token.weight"])


# ---------------------------------------------------------------- mask input (SAM-Med2D's iter_point)


@pytest.fixture(scope="module")
def lesion_slice(lite, tmp_path_factory):
    """One real lesion slice (pyradiomics brain1), its GT and its embedding: one encoder pass."""
    from tests.tasks.test_litemedsam_reference import sample_slices

    (z, image, gt), = sample_slices("brain1", tmp_path_factory.mktemp("brain1"), count=1)
    return gt, lite.encode(image)


def test_previous_low_res_mask_changes_the_decoder_output(lite, lesion_slice):
    from tasks.protocols.sammed2d import sigmoid

    gt, embedding = lesion_slice
    ys, xs = np.nonzero(gt)
    prompt = Prompt(points=((float(xs[len(xs) // 2]), float(ys[len(ys) // 2])),), point_labels=(1,))
    first = lite.decode_with_mask(embedding, prompt, multimask=True)
    assert first.low_res.shape == (3, 256, 256) and first.masks.shape == (3, *gt.shape)
    plain_masks, plain_scores = lite.decode(embedding, prompt, multimask=True)
    assert (plain_masks == first.masks).all() and np.allclose(plain_scores, first.scores)  # decode = no mask input
    best = int(np.argmax(first.scores))
    fed = lite.decode_with_mask(embedding, prompt, multimask=True, mask_input=sigmoid(first.low_res[best]))
    change = np.abs(fed.low_res - first.low_res)
    assert change.max() > 0.2 and change.mean() > 0.02  # a change of the logits, far above float noise (1e-5)
    with pytest.raises(ValueError, match="mask input must be"):
        lite.decode_with_mask(embedding, prompt, mask_input=np.zeros((64, 64)))


def test_sammed2d_iter_runs_on_litemedsam(lite, lesion_slice):
    from tasks.evaluate_unit import object_context
    from tasks.models import load_model
    from tasks.protocols import get_protocol

    gt, embedding = lesion_slice
    protocol = get_protocol("sammed2d-iter", iter_points=3)
    timer: list[float] = []
    steps = protocol.run(object_context(lite, embedding, gt, ("sample", "brain1", 0, 1), protocol, timer))
    assert [s.step for s in steps] == [1, 2, 3] and len(timer) == 3
    assert [len(s.prompt.points) for s in steps] == [1, 2, 3]
    box_only = load_model("filled-box")
    ctx = object_context(box_only, box_only.encode(np.zeros((*gt.shape, 3), np.uint8)), gt, ("s", "c", 0, 1), protocol, [])
    assert ctx.predict_with_mask is None
    with pytest.raises(ValueError, match="mask input"):
        protocol.run(ctx)
