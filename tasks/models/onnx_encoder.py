"""A model's image encoder in ONNX Runtime on a CPU: exported once per checkpoint, cached on disk, and
kept only when its output equals the torch encoder's.

Why: on this kind of machine (2 cores, fp32) the eager torch encoder of LiteMedSAM reaches about a
quarter of the machine's dense matmul speed, ONNX Runtime's CPU kernels about four fifths
(``bench/encoder_speed.py``: 4-5x faster, embeddings equal to 3e-6). The export is deterministic for a
checkpoint, an input size and a torch version, so its file is named by them and made once per machine
(about 15 s); every later worker process opens it in well under a second.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

OPSET = 17
TOLERANCE = 1e-3  # the largest absolute difference in the embedding an export may have to be kept
RUNTIMES = ("auto", "torch", "onnxruntime")


class EncoderExportError(RuntimeError):
    """An encoder that could not be exported, or whose export computes something else."""


@dataclass(frozen=True)
class ExportKey:
    """What an exported encoder file is the export of."""

    architecture: str
    sha256: str
    input_size: int

    @property
    def filename(self) -> str:
        """``litemedsam-<sha16>-256-opset17-torch2.14.1.onnx``: a new torch or checkpoint makes a new file."""
        torch_version = torch.__version__.split("+")[0]
        return f"{self.architecture}-{self.sha256[:16]}-{self.input_size}-opset{OPSET}-torch{torch_version}.onnx"


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` package imports here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def use_onnxruntime(runtime: str, device: str, pretrained: bool) -> bool:
    """Whether a model's encoder runs in ONNX Runtime: ``auto`` picks it on a CPU for a checkpoint
    (random weights have no checksum to cache an export by) when the package is installed; ``torch``
    never; ``onnxruntime`` always, refusing what it cannot do."""
    if runtime not in RUNTIMES:
        raise ValueError(f"encoder runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return False
    possible = torch.device(device).type == "cpu" and pretrained
    if runtime == "auto":
        return possible and onnxruntime_available()
    if not possible:
        raise ValueError(f"SAMATLAS_ENCODER_RUNTIME=onnxruntime runs a checkpoint's encoder on the CPU only "
                         f"(device {device}, {'checkpoint' if pretrained else 'random weights'}); "
                         "use auto or torch")
    if not onnxruntime_available():
        raise ValueError("SAMATLAS_ENCODER_RUNTIME=onnxruntime needs the onnxruntime package (pip install onnxruntime)")
    return True


class OnnxEncoder(torch.nn.Module):
    """Calls an exported encoder: a (1, 3, S, S) float tensor in, its embedding tensor out. A module
    (without parameters) so that forward hooks count its passes as they count the torch encoder's."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(out[0])


def onnx_encoder(module: torch.nn.Module, key: ExportKey, cache: Path, threads: int) -> OnnxEncoder:
    """``module`` (an eval-mode encoder) as an :class:`OnnxEncoder` on ``threads`` threads, exported into
    ``cache`` first where that export is not there yet."""
    path = cache / key.filename
    if not path.is_file():
        export_checked(module, key, path, threads)
    return OnnxEncoder(path, threads)


def probe_input(input_size: int) -> torch.Tensor:
    """A fixed input the export is checked on: a smooth ramp with noise, in [0, 1] as preprocessed slices are."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, input_size)
    smooth = (ramp[None, :] + ramp[:, None]) / 2
    noise = torch.rand((3, input_size, input_size), generator=generator)
    return (0.7 * smooth + 0.3 * noise).clamp(0, 1)[None]


def export_checked(module: torch.nn.Module, key: ExportKey, path: Path, threads: int) -> None:
    """Export ``module`` to ``path``: written beside it under a temporary name, checked against torch on
    :func:`probe_input`, then renamed into place, so that the cache never holds a partial or wrong file
    (two workers exporting at once each rename a complete file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    x = probe_input(key.input_size)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the tracer warns on TinyViT's shape asserts: constant for a fixed input size
            torch.onnx.export(module, (x,), str(staging), input_names=["image"], output_names=["embedding"],
                              opset_version=OPSET, dynamo=False)
            expected = module(x)
        got = OnnxEncoder(staging, threads)(x)
        if got.shape != expected.shape:
            raise EncoderExportError(f"{key.architecture}: the ONNX export gives shape {tuple(got.shape)}, torch {tuple(expected.shape)}")
        diff = float((got - expected).abs().max())
        if not diff <= TOLERANCE:
            raise EncoderExportError(f"{key.architecture}: the ONNX export differs from torch by {diff:.2e} "
                                     f"(more than {TOLERANCE:g}); set SAMATLAS_ENCODER_RUNTIME=torch")
        os.replace(staging, path)
    except EncoderExportError:
        raise
    except Exception as error:  # the exporter and ONNX Runtime raise many unrelated types
        raise EncoderExportError(f"{key.architecture}: exporting the encoder to {path} failed ({type(error).__name__}: {error})") from error
    finally:
        staging.unlink(missing_ok=True)


def fast_encoder(module: torch.nn.Module, key: ExportKey, device: str, pretrained: bool,
                 runtime: str, cache: Path) -> tuple[torch.nn.Module, str]:
    """The encoder to call and the name of its runtime (``torch`` or ``onnxruntime``), as ``runtime``
    asks (:func:`use_onnxruntime`). Under ``auto`` an export that fails or differs leaves the torch
    encoder, with a warning that says why; asked for by name it raises."""
    if not use_onnxruntime(runtime, device, pretrained):
        return module, "torch"
    try:
        return onnx_encoder(module, key, cache, torch.get_num_threads()), "onnxruntime"
    except EncoderExportError as error:
        if runtime == "onnxruntime":
            raise
        warnings.warn(f"{error}; the torch encoder is used instead", RuntimeWarning, stacklevel=2)
        return module, "torch"
