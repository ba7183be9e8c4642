"""tasks.models.sam2_image / sam2_build: SAM 2.1 and MedSAM2 in image mode on the REAL SAM2.1 Hiera-tiny
architecture with random weights.

The weights are randomly initialised (seeded) and saved as ``{"model": state_dict}`` like an official
SAM 2 checkpoint, so these tests check shapes and plumbing only (preprocessing, prompt placement, mask
post-processing, checkpoint loading and refusal), never segmentation quality.

The reference is the package itself: ``sam2.build_sam.build_sam2`` builds its own network from the
same file (its own loader), and ``SAM2ImagePredictor`` on it must give exactly samatlas's masks,
scores and low-res logits on a non-square 96x160 slice. A Hiera-tiny pass at 1024 takes ~7-14 s on
the 2 shared cores, so the slice is encoded ONCE per model (module fixtures) and the predictor's
``set_image`` replays that pass: its image encoder is replaced by a stand-in that returns the
recorded encoder output, and (for SAM 2.1) only for an input tensor EQUAL to the one samatlas fed
the encoder, which is what shows that samatlas's preprocessing is the package's. Everything after
the Hiera pass (FPN projections, ``no_mem_embed``, prompt encoder, mask decoder, post-processing)
runs in the package's own code on the package-built network, whose weights are checked equal to
samatlas's. MedSAM2's input is MedSAM2's own recipe (PIL bicubic resize, not the predictor's
transforms), so it is compared with that recipe restated, and its decoding with the predictor.
Wrong-architecture files hold zero-stride tensors of the right shapes (a few bytes each).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor
from segment_anything import build_sam_vit_b

from tasks.models.base import Embedding, Geometry, Prompt
from tasks.models.sam2_build import CONFIGS, compose_config, load_sam2
from tasks.models.sam2_image import Sam2Features, Sam2Image
from tasks.models.weights import CheckpointError

H, W = 96, 160  # non-square on purpose: SAM 2 stretches both sides to the input size
BOX = (20.0, 15.0, 90.0, 70.0)
PROMPTS = {
    "box": Prompt(box=BOX),
    "points": Prompt(points=((55.0, 40.0), (140.0, 10.0)), point_labels=(1, 0)),
    "box+points": Prompt(box=BOX, points=((55.0, 40.0),), point_labels=(1,)),
}


@dataclass
class Encoded:
    """One slice's embedding, every input the image encoder has seen and its first output."""

    embedding: Embedding
    encoder_inputs: list[torch.Tensor]
    encoder_output: dict


def _zero_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A network's keys and shapes with zero-stride tensors: a few bytes on disk."""
    return {k: torch.zeros(()).expand(v.shape) for k, v in net.state_dict().items()}


def _network(config: str) -> torch.nn.Module:
    cfg = compose(config_name=config)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    """A seeded, randomly initialised SAM2.1 Hiera-tiny checkpoint (~160 MB), laid out as the official ones."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": instantiate(compose_config("sam2.1_hiera_t").model).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 96x160 uint8 RGB slice: a bright blob on a gradient plus noise (grey, as windowed slices are)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    blob = 150 * np.exp(-(((yy - 45) / 18.0) ** 2 + ((xx - 55) / 25.0) ** 2))
    grey = np.clip(20 + 0.4 * xx + blob + rng.normal(0, 5, (H, W)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def sam2t(tiny_file) -> Sam2Image:
    return Sam2Image("sam2.1_hiera_t", tiny_file)


@pytest.fixture(scope="module")
def medsam2(tiny_file) -> Sam2Image:
    return Sam2Image("medsam2", tiny_file)  # same keys and shapes as tiny: the file loads as either


def _encode_once(model: Sam2Image, image: np.ndarray) -> Encoded:
    inputs: list[torch.Tensor] = []
    outputs: list[dict] = []

    def record(module, args, output):
        inputs.append(args[0].detach().clone())
        outputs.append({k: list(v) if isinstance(v, list) else v for k, v in output.items()})  # forward_image replaces list items

    # Kept for the module's lifetime: every later encoder call of samatlas's model is recorded too.
    model.net.image_encoder.register_forward_hook(record)
    embedding = model.encode(image)
    return Encoded(embedding, inputs, outputs[0])


@pytest.fixture(scope="module")
def sam2t_encoded(sam2t, image) -> Encoded:
    return _encode_once(sam2t, image)


@pytest.fixture(scope="module")
def medsam2_encoded(medsam2, image) -> Encoded:
    return _encode_once(medsam2, image)


@contextmanager
def replayed_encoder(net: torch.nn.Module, encoded: Encoded, same_input: bool):
    """``net``'s image encoder returns ``encoded``'s recorded output instead of running; with
    ``same_input`` only for an input equal to the one samatlas's model fed its encoder."""

    def replay(sample: torch.Tensor) -> dict:
        if same_input:
            assert torch.equal(sample, encoded.encoder_inputs[0]), "the package's encoder input differs from samatlas's"
        return {k: list(v) if isinstance(v, list) else v for k, v in encoded.encoder_output.items()}

    net.image_encoder.forward = replay
    try:
        yield
    finally:
        del net.image_encoder.forward


def _package_predictor(config: str, tiny_file: Path, overrides: tuple[str, ...], ours: torch.nn.Module) -> SAM2ImagePredictor:
    """``SAM2ImagePredictor`` on the package's own ``build_sam2`` of ``tiny_file`` (its own loader)."""
    net = build_sam2(config, ckpt_path=str(tiny_file), device="cpu", hydra_overrides_extra=list(overrides))
    theirs, mine = net.state_dict(), ours.state_dict()
    assert theirs.keys() == mine.keys() and all(torch.equal(theirs[k], mine[k]) for k in theirs)
    return SAM2ImagePredictor(net)


@pytest.fixture(scope="module")
def sam2t_predictor(sam2t, sam2t_encoded, tiny_file, image) -> SAM2ImagePredictor:
    predictor = _package_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", tiny_file, (), sam2t.net)
    with replayed_encoder(predictor.model, sam2t_encoded, same_input=True):
        predictor.set_image(image)
    return predictor


@pytest.fixture(scope="module")
def medsam2_predictor(medsam2, medsam2_encoded, tiny_file, image) -> SAM2ImagePredictor:
    predictor = _package_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", tiny_file, CONFIGS["medsam2"].overrides, medsam2.net)
    assert predictor.model.image_size == 512
    predictor._bb_feat_sizes = [(128, 128), (64, 64), (32, 32)]  # its hard-coded grid is 1024 px's
    with replayed_encoder(predictor.model, medsam2_encoded, same_input=False):  # MedSAM2's own preprocessing
        predictor.set_image(image)
    return predictor


def _predict(predictor: SAM2ImagePredictor, prompt: Prompt, multimask: bool, mask_input: np.ndarray | None = None):
    return predictor.predict(
        point_coords=np.array(prompt.points) if prompt.points else None,
        point_labels=np.array(prompt.point_labels) if prompt.points else None,
        box=np.array(prompt.box) if prompt.box is not None else None,
        mask_input=None if mask_input is None else mask_input[None],
        multimask_output=multimask,
    )


def _assert_decodes_like_predictor(model: Sam2Image, encoded: Encoded, predictor: SAM2ImagePredictor, low_res_size: int):
    fractions = []
    for label, prompt in PROMPTS.items():
        for multimask, k in ((True, 3), (False, 1)):
            out = model.decode_with_mask(encoded.embedding, prompt, multimask=multimask)
            assert out.masks.shape == (k, H, W) and out.masks.dtype == bool, label
            assert out.scores.shape == (k,) and out.low_res.shape == (k, low_res_size, low_res_size), label
            masks, scores, low_res = _predict(predictor, prompt, multimask)
            np.testing.assert_array_equal(out.masks, masks.astype(bool), err_msg=label)
            np.testing.assert_array_equal(out.scores, scores, err_msg=label)
            np.testing.assert_array_equal(out.low_res, low_res, err_msg=label)
            fractions.extend(out.masks.mean(axis=(1, 2)))
    assert any(0.05 < f < 0.95 for f in fractions)  # the comparison was not between empty (or full) masks
    # The previous step's low-res logits fed back (sammed2d-iter): still the predictor's outputs.
    first = model.decode_with_mask(encoded.embedding, PROMPTS["points"], multimask=True)
    feedback = 1 / (1 + np.exp(-first.low_res[int(np.argmax(first.scores))]))
    out = model.decode_with_mask(encoded.embedding, PROMPTS["box+points"], True, feedback)
    masks, scores, low_res = _predict(predictor, PROMPTS["box+points"], True, feedback)
    np.testing.assert_array_equal(out.masks, masks.astype(bool))
    np.testing.assert_array_equal(out.scores, scores)
    assert not np.array_equal(out.low_res, model.decode_with_mask(encoded.embedding, PROMPTS["box+points"], True).low_res)
    assert len(encoded.encoder_inputs) == 1  # decoding never re-ran samatlas's encoder


# --- names, building and loading -------------------------------------------------------------------


def test_names_are_registered_and_need_a_checkpoint(tiny_file):
    from tasks.models import NEEDS_CHECKPOINT, SAM2_FAMILY, check_model_args, checkpoint_unused, load_model
    from tasks.models.identity import model_sha256

    assert set(SAM2_FAMILY) == set(CONFIGS) and set(SAM2_FAMILY) <= set(NEEDS_CHECKPOINT)
    named = re.search(r"families \((.*)\)", checkpoint_unused("litemedsam")).group(1).split(", ")
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in named) for name in NEEDS_CHECKPOINT)  # the message's patterns cover every name
    with pytest.raises(ValueError, match="model medsam2 needs --checkpoint PATH"):
        check_model_args("medsam2", None)
    try:
        model = load_model("sam2.1_hiera_t", str(tiny_file))
        assert isinstance(model, Sam2Image) and model.name == "sam2.1_hiera_t" and model.takes_mask_input
    finally:
        load_model.cache_clear()
    digest = hashlib.sha256(tiny_file.read_bytes()).hexdigest()
    assert model.sha256 == digest and model_sha256("sam2.1_hiera_t", tiny_file) == digest


def test_configs_are_the_packages_with_medsam2_at_512():
    sizes = {name: (compose_config(name).model.image_size, spec.config) for name, spec in CONFIGS.items()}
    assert sizes == {
        "sam2.1_hiera_t": (1024, "configs/sam2.1/sam2.1_hiera_t.yaml"),
        "sam2.1_hiera_s": (1024, "configs/sam2.1/sam2.1_hiera_s.yaml"),
        "sam2.1_hiera_b+": (1024, "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        "sam2.1_hiera_l": (1024, "configs/sam2.1/sam2.1_hiera_l.yaml"),
        "medsam2": (512, "configs/sam2.1/sam2.1_hiera_t.yaml"),
    }
    attention = compose_config("medsam2").model.memory_attention.layer
    assert list(attention.self_attention.feat_sizes) == list(attention.cross_attention.feat_sizes) == [32, 32]


def test_models_state_their_input_geometry_and_box_shift(sam2t, medsam2):
    for model, size, shift in ((sam2t, 1024, 20), (medsam2, 512, 10)):
        assert (model.input_size, model.box_shift, model.net.image_size) == (size, shift, size)
        assert model.geometry(H, W) == Geometry.stretch(H, W, size)
        assert model.geometry(H, W).resized == (size, size)
        assert tuple(model.net.sam_prompt_encoder.mask_input_size) == (size // 4, size // 4)
        assert model.net.sam_mask_decoder.dynamic_multimask_via_stability  # as build_sam2 builds it for the predictor
    with pytest.raises(ValueError, match="sam2.1_hiera_t: bf16 is a CUDA option, the device is cpu"):
        Sam2Image("sam2.1_hiera_t", "unused.pt", bf16=True)
    with pytest.raises(ValueError, match="bf16 and compile_encoder are CUDA options, the device is cpu"):
        Sam2Image("sam2.1_hiera_t", "unused.pt", bf16=True, compile_encoder=True)


def test_sam2_1_hiera_s_checkpoint_given_as_tiny_is_named(tmp_path):
    path = tmp_path / "small.pt"
    torch.save({"model": _zero_state(_network("configs/sam2.1/sam2.1_hiera_s.yaml"))}, path)
    with pytest.raises(CheckpointError, match=(
        r"small\.pt: not a state dict for sam2\.1_hiera_t; the file looks like a sam2\.1_hiera_s checkpoint "
        r"\(Hiera width 96, 16 blocks\), not sam2\.1_hiera_t \(width 96, 12 blocks\) \(2 missing: .*unexpected: image_encoder\.trunk\.blocks\.12\.")):
        load_sam2("sam2.1_hiera_t", path)


def test_sam1_vit_b_checkpoint_is_named(tmp_path):
    with torch.device("meta"):
        vit_b = build_sam_vit_b()
    path = tmp_path / "sam_vit_b.pth"
    torch.save(_zero_state(vit_b), path)
    with pytest.raises(CheckpointError, match=(
        r"sam_vit_b\.pth: not a state dict for medsam2; the file looks like a SAM 1 ViT-B \(sam_vit_b / medsam_vit_b\) "
        r"checkpoint \(image_encoder\.patch_embed\.proj\.weight, no Hiera trunk\) \(\d+ missing: ")):
        Sam2Image("medsam2", path)


def test_sam2_0_checkpoint_is_named(tmp_path):
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": _zero_state(_network("configs/sam2/sam2_hiera_t.yaml"))}, path)
    with pytest.raises(CheckpointError, match=(
        r"sam2_hiera_tiny\.pt: not a state dict for sam2\.1_hiera_t; the file looks like a SAM 2\.0 checkpoint "
        r"\(no no_obj_embed_spatial or obj_ptr_tpos_proj\.weight, which SAM 2\.1 added\) \(3 missing: ")):
        load_sam2("sam2.1_hiera_t", path)


def test_bad_names_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown SAM 2 model 'sam2.1_hiera_x'"):
        load_sam2("sam2.1_hiera_x", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match=r"absent\.pt: checkpoint file not found \(for sam2\.1_hiera_l\)"):
        load_sam2("sam2.1_hiera_l", tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a loadable PyTorch state dict for medsam2"):
        load_sam2("medsam2", junk)


# --- one encoder pass per model, many decodes, against the package's predictor --------------------


@pytest.mark.slow
def test_sam2_encoder_input_and_features_are_the_predictors(sam2t_encoded, sam2t_predictor):
    """The replay asserted the package's encoder input equals samatlas's; the features match too."""
    features: Sam2Features = sam2t_encoded.embedding.features
    seen = sam2t_encoded.encoder_inputs[0]
    assert seen.shape == (1, 3, 1024, 1024) and seen.min() < 0 < seen.max()  # stretched, mean/std, no pad
    assert torch.equal(features.image_embed, sam2t_predictor._features["image_embed"])
    assert features.image_embed.shape == (1, 256, 64, 64)
    assert [tuple(f.shape) for f in features.high_res_feats] == [(1, 32, 256, 256), (1, 64, 128, 128)]
    for ours, theirs in zip(features.high_res_feats, sam2t_predictor._features["high_res_feats"], strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.slow
def test_sam2_prompts_are_placed_in_input_coordinates(sam2t, sam2t_encoded):
    seen = []
    handle = sam2t.net.sam_prompt_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["points"]), with_kwargs=True)
    try:
        sam2t.decode(sam2t_encoded.embedding, PROMPTS["box+points"])
    finally:
        handle.remove()
    (coords, labels), = seen
    sx, sy = 1024 / W, 1024 / H
    expected = [[20 * sx, 15 * sy], [90 * sx, 70 * sy], [55 * sx, 40 * sy]]
    np.testing.assert_allclose(coords[0].numpy(), expected, rtol=1e-6)
    assert labels.tolist() == [[2, 3, 1]]  # box corners first, labelled 2 and 3
    np.testing.assert_allclose(sam2t_encoded.embedding.geometry.to_model(np.array(expected) / [sx, sy]), expected)


@pytest.mark.slow
def test_sam2_decode_batch_equals_single_calls_on_one_and_two_slices(sam2t, sam2t_encoded):
    from tests.tasks.test_batched_decoding import batch_against_single, two_embeddings_mixed_requests

    embeddings, requests = two_embeddings_mixed_requests(sam2t_encoded.embedding, list(PROMPTS.values()), (256, 256))
    # box corners are points: (3 tokens | 4 tokens) x (multimask on | off), both slices' embeddings stacked
    assert batch_against_single(sam2t, sam2t.net.sam_mask_decoder, embeddings, requests, max_flipped=2) == 4
    n = len(requests) // 2  # one slice alone: its embedding repeated per prompt (repeat_image)
    assert batch_against_single(sam2t, sam2t.net.sam_mask_decoder, embeddings[:n], requests[:n], max_flipped=2) == 4


@pytest.mark.slow
def test_sam2_decodes_many_prompts_like_the_packages_predictor(sam2t, sam2t_encoded, sam2t_predictor):
    _assert_decodes_like_predictor(sam2t, sam2t_encoded, sam2t_predictor, 256)


@pytest.mark.slow
def test_sam2_decoding_is_deterministic(sam2t, sam2t_encoded):
    for prompt in PROMPTS.values():
        first = sam2t.decode_with_mask(sam2t_encoded.embedding, prompt, multimask=True)
        again = sam2t.decode_with_mask(sam2t_encoded.embedding, prompt, multimask=True)
        for a, b in zip((first.masks, first.scores, first.low_res), (again.masks, again.scores, again.low_res)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"mask input must be \(256, 256\)"):
        sam2t.decode_with_mask(sam2t_encoded.embedding, PROMPTS["box"], mask_input=np.zeros((128, 128)))


@pytest.mark.slow
def test_medsam2_encoder_input_is_medsam2s_recipe(medsam2, medsam2_encoded, image):
    """medsam2_infer_3D_CT.py: grey uint8 -> PIL RGB -> resize to 512 -> /255 -> ImageNet mean/std (restated)."""
    rgb = Image.fromarray(image[..., 0]).convert("RGB").resize((512, 512))
    reference = torch.from_numpy(np.array(rgb).transpose(2, 0, 1) / 255.0)
    reference = (reference - torch.tensor((0.485, 0.456, 0.406))[:, None, None]) / torch.tensor((0.229, 0.224, 0.225))[:, None, None]
    seen = medsam2_encoded.encoder_inputs[0]
    assert seen.shape == (1, 3, 512, 512) and seen.dtype == torch.float32
    torch.testing.assert_close(seen[0].double(), reference, rtol=0, atol=1e-6)  # float32 here, float64 there
    features: Sam2Features = medsam2_encoded.embedding.features
    assert features.image_embed.shape == (1, 256, 32, 32)
    assert [tuple(f.shape) for f in features.high_res_feats] == [(1, 32, 128, 128), (1, 64, 64, 64)]


@pytest.mark.slow
def test_medsam2_decodes_like_the_packages_predictor_at_512(medsam2, medsam2_encoded, medsam2_predictor):
    assert torch.equal(medsam2_encoded.embedding.features.image_embed, medsam2_predictor._features["image_embed"])
    _assert_decodes_like_predictor(medsam2, medsam2_encoded, medsam2_predictor, 128)


@pytest.mark.slow
def test_medsam2_encoding_is_deterministic(medsam2, medsam2_encoded, image):
    again = medsam2.encode(image).features
    assert torch.equal(again.image_embed, medsam2_encoded.embedding.features.image_embed)
    assert all(torch.equal(a, b) for a, b in zip(again.high_res_feats, medsam2_encoded.embedding.features.high_res_feats))
    assert len(medsam2_encoded.encoder_inputs) == 2


@pytest.mark.slow
def test_a_batch_of_slices_encodes_as_each_slice_alone(medsam2, medsam2_encoded, image):
    """``encode_batch`` (one backbone pass over two slices) gives each slice the features of its own
    pass, each in its own memory (a held embedding does not keep the whole batch's)."""
    flipped = np.ascontiguousarray(image[::-1])
    first, second = medsam2.encode_batch([image, flipped])
    alone = medsam2.encode(flipped)
    for batched, single in ((first, medsam2_encoded.embedding), (second, alone)):
        assert batched.geometry == single.geometry
        ours, theirs = batched.features, single.features
        for a, b in zip((ours.image_embed, *ours.high_res_feats), (theirs.image_embed, *theirs.high_res_feats), strict=True):
            assert a.shape == b.shape and a.shape[0] == 1
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
            assert a.untyped_storage().nbytes() == a.numel() * a.element_size()
    assert not torch.allclose(first.features.image_embed, second.features.image_embed)  # two slices, two answers
