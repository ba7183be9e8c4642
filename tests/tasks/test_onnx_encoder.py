"""The image encoder in ONNX Runtime: equal to the torch encoder on real slices, exported once per
checkpoint into the cache, and refused (never cached) where the export computes something else.

The equality test runs the real LiteMedSAM on real CT and MR lesion slices (the pyradiomics sample);
the cache and refusal tests use tiny stand-in modules, which test plumbing only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.models.base import DecodeRequest, Prompt
from tasks.models.litemedsam import LiteMedSAM
from tasks.models.onnx_encoder import (
    TOLERANCE, EncoderExportError, ExportKey, OnnxEncoder, fast_encoder, onnx_encoder, use_onnxruntime,
)
from tests.tasks.test_litemedsam_reference import sample_slices


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


@pytest.mark.parametrize("case_id", ["lung2", "brain1"])
def test_onnxruntime_encoder_equals_torch_on_real_slices(case_id: str, tmp_path: Path):
    on_torch, on_ort = LiteMedSAM(runtime="torch"), LiteMedSAM(runtime="onnxruntime")
    assert (on_torch.encoder_runtime, on_ort.encoder_runtime) == ("torch", "onnxruntime")
    assert isinstance(on_ort.encoder, OnnxEncoder)
    for _, image, gt in sample_slices(case_id, tmp_path, count=1):
        a, b = on_torch.encode(image), on_ort.encode(image)
        assert float((a.features - b.features).abs().max()) <= TOLERANCE
        assert float((a.features - b.features).abs().max()) > 0  # two runtimes really ran
        request = [DecodeRequest(Prompt(box=box_of(gt)))]
        da, db = on_torch.decode_batch([a], request)[0], on_ort.decode_batch([b], request)[0]
        assert float(np.abs(da.low_res - db.low_res).max()) <= TOLERANCE
        assert np.mean(da.masks != db.masks) <= 1e-4
        assert da.masks.sum() > 0.5 * gt.sum()  # the masks compared are the lesion's, not empty


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


KEY = ExportKey("stand-in", "ab" * 32, 16)


def test_an_export_is_made_once_and_named_by_what_it_exports(tmp_path: Path):
    module = Doubler().eval()
    first = onnx_encoder(module, KEY, tmp_path, threads=1)
    path = tmp_path / KEY.filename
    assert first.path == path and path.is_file()
    assert KEY.filename.startswith("stand-in-abababababababab-16-opset17-torch")
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY.filename]  # no staging file left
    stamp = path.stat().st_mtime_ns
    second = onnx_encoder(module, KEY, tmp_path, threads=1)
    assert path.stat().st_mtime_ns == stamp  # opened, not exported again
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        np.testing.assert_allclose(second(x).numpy(), module(x).numpy(), atol=1e-6)
    assert ExportKey("stand-in", "cd" * 32, 16).filename != KEY.filename  # another checkpoint, another file


def test_an_export_that_differs_is_refused_and_not_cached(tmp_path: Path):
    with pytest.raises(EncoderExportError, match=r"stand-in: the ONNX export differs from torch by .*SAMATLAS_ENCODER_RUNTIME=torch"):
        onnx_encoder(Drifting(), KEY, tmp_path, threads=1)
    assert list(tmp_path.iterdir()) == []  # neither the export nor its staging file


def test_auto_falls_back_to_torch_with_a_warning_and_onnxruntime_by_name_raises(tmp_path: Path):
    module = Drifting()
    with pytest.warns(RuntimeWarning, match="differs from torch.*the torch encoder is used instead"):
        encoder, runtime = fast_encoder(module, KEY, "cpu", True, "auto", tmp_path)
    assert encoder is module and runtime == "torch"
    with pytest.raises(EncoderExportError):
        fast_encoder(Drifting(), KEY, "cpu", True, "onnxruntime", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder, runtime = fast_encoder(Doubler().eval(), KEY, "cpu", True, "auto", tmp_path)
    assert runtime == "onnxruntime" and isinstance(encoder, OnnxEncoder)


def test_which_runtime_each_setting_picks():
    assert use_onnxruntime("auto", "cpu", pretrained=True)
    assert not use_onnxruntime("auto", "cpu", pretrained=False)  # random weights: no checksum to cache by
    assert not use_onnxruntime("auto", "cuda", pretrained=True)  # the GPU path stays torch (bf16 batches)
    assert not use_onnxruntime("torch", "cpu", pretrained=True)
    with pytest.raises(ValueError, match="CPU only"):
        use_onnxruntime("onnxruntime", "cuda", pretrained=True)
    with pytest.raises(ValueError, match="'fast' is not one of auto, torch, onnxruntime"):
        use_onnxruntime("fast", "cpu", pretrained=True)
