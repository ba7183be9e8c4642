"""A model's networks in ONNX Runtime on a CPU: exported once per checkpoint, cached on disk, and kept
only when their outputs equal torch's.

Why: on this kind of machine (2 cores, fp32) the eager torch encoder of LiteMedSAM reaches about a
quarter of the machine's dense matmul speed and ONNX Runtime's CPU kernels nearly twice that
(``bench/encoder_speed.py``; embeddings equal to 3e-6). The mask decoder is exported in the order of
``tasks/models/cpu_decoder.py`` (the prompt folded into the cross attentions, the upscaling as matrix
products) and its threads sleep between runs: a whole decoder call (prompt encoding, decoder, mask
resizing) took a median 27 ms against 51 ms with the previous export (upscaling only re-laid out) and
79 ms in torch, in one interleaved run on a busy hour (on a quiet one: 26 ms before, 44 torch). An
export is deterministic for a checkpoint, an input size and a torch version, so its file is named by
them and made once per machine (seconds); every later worker process opens it in well under a second.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tasks.models.base import dense_pe
from tasks.models.cpu_decoder import CpuMaskDecoder

OPSET = 17
TOLERANCE = 1e-3  # the largest absolute difference in any output an export may have to be kept
RUNTIMES = ("auto", "torch", "onnxruntime")
DECODER_PART = "decoder-cpu"  # the mask decoder's export, as tasks/models/cpu_decoder.py orders it


class OnnxExportError(RuntimeError):
    """A network that could not be exported, or whose export computes something else."""


@dataclass(frozen=True)
class ExportKey:
    """What an exported file is the export of: a part (``encoder``, ``decoder``) of a checkpoint."""

    architecture: str
    part: str
    sha256: str
    input_size: int

    @property
    def filename(self) -> str:
        """``litemedsam-encoder-<sha16>-256-opset17-torch2.14.1.onnx``: a new torch or checkpoint, a new file."""
        torch_version = torch.__version__.split("+")[0]
        return f"{self.architecture}-{self.part}-{self.sha256[:16]}-{self.input_size}-opset{OPSET}-torch{torch_version}.onnx"


@dataclass(frozen=True)
class ExportSpec:
    """How to export a module: its input and output names, which axes vary (batch, tokens), the
    inputs its export is checked on (the first is traced) and what it is checked against (a module
    rewritten for export is checked against the network it rewrites)."""

    module: torch.nn.Module
    probes: tuple[tuple[torch.Tensor, ...], ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    reference: torch.nn.Module | None = None  # what the export must equal on the same inputs (None: module)


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` package imports here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def use_onnxruntime(runtime: str, device: str, pretrained: bool) -> bool:
    """Whether a model's networks run in ONNX Runtime: ``auto`` picks it on a CPU for a checkpoint
    (random weights have no checksum to cache an export by) when the package is installed; ``torch``
    never; ``onnxruntime`` always, refusing what it cannot do."""
    if runtime not in RUNTIMES:
        raise ValueError(f"model runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return False
    possible = torch.device(device).type == "cpu" and pretrained
    if runtime == "auto":
        return possible and onnxruntime_available()
    if not possible:
        raise ValueError(f"SAMATLAS_MODEL_RUNTIME=onnxruntime runs a checkpoint's networks on the CPU only "
                         f"(device {device}, {'checkpoint' if pretrained else 'random weights'}); "
                         "use auto or torch")
    if not onnxruntime_available():
        raise ValueError("SAMATLAS_MODEL_RUNTIME=onnxruntime needs the onnxruntime package (pip install onnxruntime)")
    return True


class OnnxSession(torch.nn.Module):
    """Calls an exported network: tensors in, its output tensor (or tuple of them) out. A module
    (without parameters) so that forward hooks count its passes as they count the torch network's."""

    def __init__(self, path: Path, threads: int, fixed_shapes: bool = False):
        """On ``threads`` threads that sleep between runs (see below). ``fixed_shapes``: the network's
        inputs have the same shapes on every call (an encoder of one slice), so ONNX Runtime's CPU
        memory arena and memory patterns hold one pass's buffers and reuse them: LiteMedSAM's encoder
        655 -> 561 ms a pass on 2 cores, for +280 MiB held (430 -> 706 MiB after 12 passes).
        Otherwise both are off: the arena keeps every buffer it ever grew, and a decoder's vary with
        the batch and the prompt's tokens (with both networks on the arena a LiteMedSAM worker peaked
        at 2.0 GiB, without it 1.3 GiB at the decoder's same speed)."""
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_cpu_mem_arena = fixed_shapes
        options.enable_mem_pattern = fixed_shapes
        # ONNX Runtime's threads spin for work after a run by default, on the cores torch's threads then
        # need: LiteMedSAM's decoder call (torch prompt encoding and mask resizing around the export)
        # took 33-36 ms with spinning and 23-25 without, its encoder pass the same either way.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        feed = {name: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                for name, t in zip(self.input_names, tensors)}
        out = tuple(torch.from_numpy(o) for o in self.session.run(None, feed))
        return out[0] if len(out) == 1 else out


def exported(spec: ExportSpec, key: ExportKey, cache: Path, threads: int) -> OnnxSession:
    """``spec.module`` (in eval mode) as an :class:`OnnxSession` on ``threads`` threads, exported into
    ``cache`` first where that export is not there yet; with fixed shapes where no axis of it varies."""
    path = cache / key.filename
    if not path.is_file():
        export_checked(spec, key, path, threads)
    return OnnxSession(path, threads, fixed_shapes=not spec.dynamic_axes)


def as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def export_checked(spec: ExportSpec, key: ExportKey, path: Path, threads: int) -> None:
    """Export ``spec.module`` to ``path``: written beside it under a temporary name, checked against
    torch on every probe, then renamed into place, so that the cache never holds a partial or wrong
    file (two workers exporting at once each rename a complete file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    name = f"{key.architecture} {key.part}"
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the tracer warns on shape asserts and branches: fixed by the axes given
            torch.onnx.export(spec.module, spec.probes[0], str(staging), input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes or None,
                              opset_version=OPSET, dynamo=False)
            expected = [as_tuple((spec.reference or spec.module)(*probe)) for probe in spec.probes]
        session = OnnxSession(staging, threads)
        for probe, want in zip(spec.probes, expected):
            got = as_tuple(session(*probe))
            shapes = [tuple(g.shape) for g in got], [tuple(w.shape) for w in want]
            if shapes[0] != shapes[1]:
                raise OnnxExportError(f"{name}: the ONNX export gives shapes {shapes[0]}, torch {shapes[1]}")
            diff = max(float((g - w).abs().max()) for g, w in zip(got, want))
            if not diff <= TOLERANCE:
                raise OnnxExportError(f"{name}: the ONNX export differs from torch by {diff:.2e} "
                                      f"(more than {TOLERANCE:g}); set SAMATLAS_MODEL_RUNTIME=torch")
        os.replace(staging, path)
    except OnnxExportError:
        raise
    except Exception as error:  # the exporter and ONNX Runtime raise many unrelated types
        raise OnnxExportError(f"{name}: exporting to {path} failed ({type(error).__name__}: {error})") from error
    finally:
        staging.unlink(missing_ok=True)


def probe_image(input_size: int) -> torch.Tensor:
    """A fixed image an encoder export is checked on: a smooth ramp with noise, in [0, 1] as
    preprocessed slices are."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, input_size)
    smooth = (ramp[None, :] + ramp[:, None]) / 2
    noise = torch.rand((3, input_size, input_size), generator=generator)
    return (0.7 * smooth + 0.3 * noise).clamp(0, 1)[None]


def encoder_spec(encoder: torch.nn.Module, input_size: int) -> ExportSpec:
    """An image encoder of one fixed-size image."""
    return ExportSpec(encoder, ((probe_image(input_size),),), ("image",), ("embedding",))


class MaskDecoderCore(torch.nn.Module):
    """A SAM-style mask decoder's own ``predict_masks`` with the image's positional encoding bound:
    what its export (:class:`CpuMaskDecoder`) must equal, taking the same inputs."""

    def __init__(self, mask_decoder: torch.nn.Module, image_pe: torch.Tensor):
        super().__init__()
        self.mask_decoder, self.image_pe = mask_decoder, image_pe

    def forward(self, image_embeddings, sparse, dense):
        return self.mask_decoder.predict_masks(image_embeddings, self.image_pe, sparse, dense)


def decoder_spec(mask_decoder: torch.nn.Module, image_pe: torch.Tensor) -> ExportSpec:
    """:class:`CpuMaskDecoder` (every mask and IoU, one image embedding per prompt; the output
    choice stays in torch) with the batch, the sparse token count and the dense prompt's grid (the
    full grid, or one vector) free; checked against the decoder's own ``predict_masks`` on a batch of
    two 3-token prompts (a box and its padding point) with mask inputs and a batch of one 6-token
    prompt (clicks) with the no-mask vector."""
    generator = torch.Generator().manual_seed(0)
    _, channels, height, width = image_pe.shape

    def probe(batch: int, tokens: int, grid: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        return (torch.randn((batch, channels, height, width), generator=generator),
                torch.randn((batch, tokens, channels), generator=generator),
                0.1 * torch.randn((batch, channels, *grid), generator=generator))

    batch = {0: "batch"}
    return ExportSpec(CpuMaskDecoder(mask_decoder, image_pe).eval(),
                      (probe(2, 3, (height, width)), probe(1, 6, (1, 1))),
                      ("image_embeddings", "sparse", "dense"), ("masks", "iou"),
                      {"image_embeddings": batch, "sparse": {0: "batch", 1: "tokens"},
                       "dense": {0: "batch", 2: "dense_height", 3: "dense_width"}, "masks": batch, "iou": batch},
                      reference=MaskDecoderCore(mask_decoder, image_pe).eval())


class OnnxMaskDecoder(torch.nn.Module):
    """An exported :class:`CpuMaskDecoder` called as the torch mask decoder is: the image embedding
    repeated per prompt where one serves several, then SAM's output choice (masks 1..3 for multimask
    output, else mask 0). ``image_pe`` is taken and not used: the export holds the checkpoint's own."""

    def __init__(self, core: OnnxSession):
        super().__init__()
        self.core = core

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output):
        prompts = sparse_prompt_embeddings.shape[0]
        if image_embeddings.shape[0] != prompts:
            image_embeddings = torch.repeat_interleave(image_embeddings, prompts, dim=0)
        masks, iou = self.core(image_embeddings, sparse_prompt_embeddings, dense_prompt_embeddings)
        chosen = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, chosen], iou[:, chosen]


@dataclass
class Networks:
    """The encoder and mask decoder a SAM-style model calls, and the runtime they run on."""

    encoder: torch.nn.Module
    mask_decoder: torch.nn.Module
    runtime: str  # torch | onnxruntime


def export_keys(architecture: str, sha256: str, input_size: int) -> tuple[ExportKey, ExportKey]:
    """The keys of a checkpoint's two exports: its image encoder's and its mask decoder's."""
    return (ExportKey(architecture, "encoder", sha256, input_size),
            ExportKey(architecture, DECODER_PART, sha256, input_size))


def cached_exports(architecture: str, sha256: str, input_size: int, cache: Path, threads: int) -> Networks | None:
    """The ONNX Runtime networks of checkpoint ``sha256`` where both its exports are in ``cache``
    already (None otherwise), opened without the torch network: each file was checked against torch
    when it was made (:func:`export_checked`). The encoder with fixed shapes, the decoder without, as
    :func:`exported` opens them (:func:`encoder_spec` has no free axis, :func:`decoder_spec` has)."""
    encoder, decoder = (cache / key.filename for key in export_keys(architecture, sha256, input_size))
    if not (encoder.is_file() and decoder.is_file()):
        return None
    return Networks(OnnxSession(encoder, threads, fixed_shapes=True), OnnxMaskDecoder(OnnxSession(decoder, threads)),
                    "onnxruntime")


def fast_networks(net: torch.nn.Module, architecture: str, sha256: str, input_size: int, device: str,
                  pretrained: bool, runtime: str, cache: Path) -> Networks:
    """``net``'s image encoder and mask decoder where ``runtime`` asks them to run
    (:func:`use_onnxruntime`). Under ``auto`` an export that fails or differs leaves both in torch,
    with a warning that says why; asked for by name it raises."""
    torch_networks = Networks(net.image_encoder, net.mask_decoder, "torch")
    if not use_onnxruntime(runtime, device, pretrained):
        return torch_networks
    threads = torch.get_num_threads()
    try:
        encoder_key, decoder_key = export_keys(architecture, sha256, input_size)
        encoder = exported(encoder_spec(net.image_encoder, input_size), encoder_key, cache, threads)
        core = exported(decoder_spec(net.mask_decoder, dense_pe(net.prompt_encoder)), decoder_key, cache, threads)
    except OnnxExportError as error:
        if runtime == "onnxruntime":
            raise
        warnings.warn(f"{error}; torch is used instead", RuntimeWarning, stacklevel=2)
        return torch_networks
    return Networks(encoder, OnnxMaskDecoder(core), "onnxruntime")
