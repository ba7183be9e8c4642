"""Measurement (not a test): how near LiteMedSAM's image encoder runs to this CPU's limit, and what is faster.

The encoder is the one cost evaluate cannot drop (one pass per slice), so its speed is the speed of an
evaluation on a CPU. On a few slices of an ingested case (default ``sample-radiomics/lung2``, the
chest CT ``bench/evaluate.py`` ingests into ``<data root>/bench``; without it, random uint8 512x512x3
images, and the figures say so), this measures in one process, against one baseline:

``flops``       the encoder's FLOPs per slice (``torch.utils.flop_counter.FlopCounterMode``: matrix
                products and convolutions) on one preprocessed (1, 3, 256, 256) input;
``matmul``      this machine's dense fp32 matrix product speed (``torch.mm``, 2048 x 2048), on the
                encoder's thread count, measured in every round beside the encoder;
``efficiency``  (FLOPs / seconds per slice) / matmul FLOP/s (issue 13: >= 0.6) of the encoder samatlas
                runs by default (``onnxruntime`` on a CPU), of the torch baseline and of each variant,
                against the matmul on its thread count (one thread measured too);
``variants``    each timed over the same slices (preprocessing included, as ``encode`` does it) after
                a warm-up, and compared with the baseline's embedding (max abs difference <= 1e-3 is
                "equal"): ``channels_last`` weights and input; one thread instead of the default;
                the slices stacked in one batch; ``torch.compile`` (inductor; its compile time apart, far
                shorter where inductor's on-disk cache holds an earlier run's kernels);
                ONNX Runtime on the CPU (the package's export, ``tasks/models/onnx_runtime.py``), on the
                default thread count and on one; bf16 autocast (reported, never kept: it is not equal);
``onnx ops``    where the ONNX Runtime encoder's time goes, by operator type (its profiler).

The baseline ``default`` is ``model.encode`` on the eager torch encoder (``runtime="torch"``), under
``torch.inference_mode`` (checked). Variants run in interleaved rounds and each keeps its fastest
round, as the machine may be busy with other work. Prints the figures, then ONE JSON line:
``encoder_efficiency`` (samatlas' encoder), the fastest equal variant and its speed ratio over the
baseline, and every variant's seconds per slice and difference.

    python bench/encoder_speed.py [--case lung2] [--slices 3] [--rounds 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.evaluate_unit import slice_rgb  # noqa: E402
from tasks.models.litemedsam import LiteMedSAM  # noqa: E402
from tasks.models.onnx_runtime import ExportKey, encoder_spec, export_keys, exported, use_onnxruntime  # noqa: E402
from tasks.settings import get_settings  # noqa: E402
from tasks.store import StoredCase  # noqa: E402

DATASET = "sample-radiomics"
TOLERANCE = 1e-3  # max abs difference of the embedding for a variant to count as equal
MATMUL_N = 2048

T = TypeVar("T")
Encoder = Callable[[Sequence[np.ndarray]], torch.Tensor]  # slices -> their embeddings (N, 256, 64, 64)


@dataclass(frozen=True)
class Variant:
    """One way of running the encoder: seconds per slice (fastest round), max abs difference of its
    embeddings from the default's, the threads it runs on and its one-off setup seconds (compile,
    export; 0 where none)."""

    name: str
    seconds_per_slice: float
    max_abs_diff: float
    threads: int
    setup_s: float = 0.0

    @property
    def equal(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


@dataclass(frozen=True)
class EncoderFigures:
    """The encoder's arithmetic against the machine's, and its variants against the default."""

    slices: int
    threads: int
    flops: int  # per slice
    matmul_gflops: float  # on ``threads``
    matmul_gflops_1_thread: float
    inference_mode: bool  # whether encode's embedding is an inference tensor
    default: Variant
    variants: tuple[Variant, ...]
    skipped: tuple[tuple[str, str], ...]  # (variant, why it was not measured)

    @property
    def encoder_gflops(self) -> float:
        return self.flops / self.default.seconds_per_slice / 1e9

    @property
    def efficiency(self) -> float:
        return self.variant_efficiency(self.default)

    def variant_efficiency(self, variant: Variant) -> float:
        """``variant``'s FLOP/s over the matmul FLOP/s on its thread count."""
        matmul = self.matmul_gflops_1_thread if variant.threads == 1 else self.matmul_gflops
        return self.flops / variant.seconds_per_slice / 1e9 / matmul

    @property
    def fastest(self) -> Variant:
        """The fastest variant equal to the default (the default itself where none is faster)."""
        return min([self.default, *(v for v in self.variants if v.equal)], key=lambda v: v.seconds_per_slice)

    def speedup(self, variant: Variant) -> float:
        return self.default.seconds_per_slice / variant.seconds_per_slice


def matmul_seconds(n: int = MATMUL_N, repeats: int = 5) -> float:
    """Seconds of one n x n fp32 ``torch.mm`` on the current torch threads (after a warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return (time.perf_counter() - start) / repeats


def count_flops(model: LiteMedSAM, image: np.ndarray) -> int:
    """FLOPs of one ``net.image_encoder`` forward on ``image`` preprocessed to (1, 3, 256, 256)."""
    from torch.utils.flop_counter import FlopCounterMode

    tensor, _ = model.preprocess(image)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.net.image_encoder(tensor)
    return counter.get_total_flops()


def inputs(model: LiteMedSAM, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Each slice preprocessed as ``encode`` does it: (1, 3, 256, 256) float."""
    return [model.preprocess(image)[0] for image in images]


def default_encoder(model: LiteMedSAM) -> Encoder:
    """``model.encode``, one slice at a time (``model`` is built on the torch runtime: the baseline)."""
    return lambda images: torch.cat([model.encode(image).features for image in images])


def per_slice(model: LiteMedSAM, forward: Callable[[torch.Tensor], torch.Tensor]) -> Encoder:
    """``forward`` on each preprocessed slice, under inference mode."""

    def run(images: Sequence[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([forward(x) for x in inputs(model, images)])

    return run


def channels_last_encoder(model: LiteMedSAM) -> Encoder:
    """A channels_last copy of the encoder fed channels_last input."""
    encoder = copy.deepcopy(model.net.image_encoder).to(memory_format=torch.channels_last)
    return per_slice(model, lambda x: encoder(x.contiguous(memory_format=torch.channels_last)))


def on_one_thread(run: Callable[[], T]) -> T:
    """``run()`` with ``torch.set_num_threads(1)`` (the thread count restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def one_thread_encoder(model: LiteMedSAM) -> Encoder:
    """The default on one torch thread."""
    base = default_encoder(model)
    return lambda images: on_one_thread(lambda: base(images))


def batched_encoder(model: LiteMedSAM) -> Encoder:
    """All the slices stacked into one (N, 3, 256, 256) forward."""

    def run(images: Sequence[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            return model.net.image_encoder(torch.cat(inputs(model, images)))

    return run


def bf16_encoder(model: LiteMedSAM) -> Encoder:
    """The default under CPU bf16 autocast, the embedding cast back to fp32."""
    base = default_encoder(model)

    def run(images: Sequence[np.ndarray]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return base(images).float()

    return run


def compiled_encoder(model: LiteMedSAM, image: np.ndarray) -> tuple[Encoder, float]:
    """``torch.compile`` (inductor) of a copy of the encoder, and the seconds its first call took."""
    encoder = torch.compile(copy.deepcopy(model.net.image_encoder))
    x = inputs(model, [image])[0]
    start = time.perf_counter()
    with torch.inference_mode():
        encoder(x)
    return per_slice(model, encoder), time.perf_counter() - start


def onnx_encoders(model: LiteMedSAM) -> dict[str, tuple[Encoder, float]]:
    """The package's ONNX Runtime encoder (``tasks/models/onnx_runtime.py``: what ``encode`` runs on a CPU
    by default) on the torch thread count (``onnxruntime``) and on one thread (``onnxruntime_threads_1``),
    each with the seconds its export (where the model cache lacked it) and session start took."""
    encoders: dict[str, tuple[Encoder, float]] = {}
    for name, threads in (("onnxruntime", torch.get_num_threads()), ("onnxruntime_threads_1", 1)):
        start = time.perf_counter()
        session = exported(encoder_spec(model.net.image_encoder, model.input_size), export_key(model),
                           get_settings().model_cache_root, threads)
        encoders[name] = (per_slice(model, session), time.perf_counter() - start)
    return encoders


def export_key(model: LiteMedSAM) -> ExportKey:
    return export_keys(model.name, model.sha256, model.input_size)[0]


def onnx_op_profile(model: LiteMedSAM, image: np.ndarray, runs: int = 3) -> dict[str, float]:
    """Milliseconds per encoder pass by ONNX operator type (ONNX Runtime's own profiler, which adds a
    little to every node), largest first: where the ONNX encoder's time goes."""
    import onnxruntime as ort

    path = get_settings().model_cache_root / export_key(model).filename
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="samatlas-ort-profile-") as tmp:
        options.profile_file_prefix = str(Path(tmp) / "encoder")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = inputs(model, [image])[0].numpy()
        for _ in range(runs + 1):
            session.run(None, {"image": x})
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    # the first run is the warm-up: skip each node's first kernel event
    seen: set[str] = set()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        if event["name"] not in seen:
            seen.add(event["name"])
            continue
        op = event["args"]["op_name"]
        by_op[op] = by_op.get(op, 0.0) + event["dur"] / 1e3 / runs
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def build_variants(model: LiteMedSAM, image: np.ndarray, compile_: bool
                   ) -> tuple[dict[str, tuple[Encoder, float]], list[tuple[str, str]]]:
    """The variants that could be built here (encoder, setup seconds) and why the others were not."""
    built: dict[str, tuple[Encoder, float]] = {
        "channels_last": (channels_last_encoder(model), 0.0),
        "batched": (batched_encoder(model), 0.0),
        "bf16_autocast": (bf16_encoder(model), 0.0),
    }
    skipped: list[tuple[str, str]] = []
    if torch.get_num_threads() > 1:
        built["threads_1"] = (one_thread_encoder(model), 0.0)
    else:
        skipped.append(("threads_1", "the default already runs on one thread"))
    builders: list[tuple[str, Callable[[], dict[str, tuple[Encoder, float]]]]] = [
        ("onnxruntime", lambda: onnx_encoders(model))]
    if compile_:
        builders.append(("torch_compile", lambda: {"torch_compile": compiled_encoder(model, image)}))
    else:
        skipped.append(("torch_compile", "--no-compile"))
    for name, build in builders:
        try:
            built |= build()
        except Exception as error:  # a variant that cannot be built is reported, not fatal
            skipped.append((name, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]))
    return built, skipped


def timed(encoder: Encoder, images: Sequence[np.ndarray]) -> tuple[float, torch.Tensor]:
    """Seconds per slice of ``encoder`` over ``images``, and its embeddings."""
    start = time.perf_counter()
    out = encoder(images)
    return (time.perf_counter() - start) / len(images), out


def encoder_figures(model: LiteMedSAM, images: Sequence[np.ndarray], rounds: int = 2,
                    compile_: bool = True) -> EncoderFigures:
    """The encoder's FLOPs, this machine's matmul FLOP/s and every variant over ``images`` (each warmed
    up on the first slice, then timed in ``rounds`` interleaved rounds, its fastest round kept)."""
    threads = torch.get_num_threads()
    flops = count_flops(model, images[0])
    inference = model.encode(images[0]).features.is_inference()
    built, skipped = build_variants(model, images[0], compile_)
    encoders = {"default": (default_encoder(model), 0.0), **built}
    for encoder, _ in encoders.values():
        encoder(images[:1])  # warm-up: lazy initialisation, allocator, oneDNN primitives
    best = {name: float("inf") for name in encoders}
    outputs: dict[str, torch.Tensor] = {}
    matmul_s = matmul_1_s = float("inf")
    for _ in range(rounds):
        matmul_s = min(matmul_s, matmul_seconds())
        matmul_1_s = min(matmul_1_s, on_one_thread(matmul_seconds))
        for name, (encoder, _) in encoders.items():
            seconds, outputs[name] = timed(encoder, images)
            best[name] = min(best[name], seconds)
    reference = outputs["default"]
    variants = {name: Variant(name, best[name], float((outputs[name].float() - reference).abs().max()),
                              1 if name.endswith("threads_1") else threads, setup_s)
                for name, (_, setup_s) in encoders.items()}
    return EncoderFigures(len(images), threads, flops, 2 * MATMUL_N**3 / matmul_s / 1e9,
                          2 * MATMUL_N**3 / matmul_1_s / 1e9, inference, variants.pop("default"),
                          tuple(variants.values()), tuple(skipped))


def case_slices(store: Path, case: str, n: int) -> list[np.ndarray] | None:
    """``n`` slices spread over the middle of the case's depth (30%..70%), or None without the case."""
    try:
        stored = StoredCase(store / DATASET / case)
    except FileNotFoundError:
        return None
    depth = stored.group["image"].shape[1]
    return [slice_rgb(stored, int(z)) for z in np.linspace(0.3 * (depth - 1), 0.7 * (depth - 1), n).round()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="lung2", help=f"a case of {DATASET} ingested by bench/evaluate.py")
    parser.add_argument("--store", type=Path, default=None, help="its store (default <data root>/bench/ingested/store)")
    parser.add_argument("--slices", type=int, default=3, help="slices timed per round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (the fastest kept)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (its compile takes minutes)")
    args = parser.parse_args()
    store = (args.store or get_settings().data_root / "bench" / "ingested" / "store").resolve()
    images = case_slices(store, args.case, args.slices)
    source = f"{DATASET}/{args.case}"
    if images is None:
        print(f"{store / DATASET / args.case}: no ingested case; random uint8 512x512x3 images instead", file=sys.stderr)
        images = list(np.random.default_rng(0).integers(0, 256, (args.slices, 512, 512, 3), dtype=np.uint8))
        source = "random-512x512x3"
    torch.set_num_threads(os.cpu_count() or 1)  # as the CLI's single worker does
    model = LiteMedSAM(runtime="torch")
    f = encoder_figures(model, images, args.rounds, not args.no_compile)
    fastest = f.fastest
    package = "onnxruntime" if use_onnxruntime(get_settings().model_runtime, "cpu", True) else "default"
    used = next((v for v in f.variants if v.name == package), f.default)
    ops = onnx_op_profile(model, images[0]) if any(v.name == "onnxruntime" for v in f.variants) else {}
    print(f"{source}: {f.slices} slices x {args.rounds} rounds, {f.threads} torch threads, "
          f"encode under inference_mode: {f.inference_mode}")
    print(f"  encoder arithmetic  {f.flops / 1e9:.2f} GFLOP/slice; fp32 matmul {f.matmul_gflops:.1f} GFLOP/s "
          f"({f.matmul_gflops_1_thread:.1f} on one thread)")
    print(f"  default (torch)     {f.default.seconds_per_slice:6.2f} s/slice = {f.encoder_gflops:.1f} GFLOP/s, "
          f"efficiency {f.efficiency:.2f}")
    for v in f.variants:
        setup = f", setup {v.setup_s:.1f} s" if v.setup_s else ""
        print(f"  {v.name:21} {v.seconds_per_slice:6.2f} s/slice = {f.speedup(v):.2f} x default, "
              f"efficiency {f.variant_efficiency(v):.2f}, "
              f"max diff {v.max_abs_diff:.1e} ({'equal' if v.equal else 'NOT equal'}{setup})")
    for name, why in f.skipped:
        print(f"  {name:21} not measured: {why}")
    print(f"  fastest equal: {fastest.name} ({f.speedup(fastest):.2f} x default); samatlas runs {used.name}: "
          f"efficiency {f.variant_efficiency(used):.2f}")
    if ops:
        total = sum(ops.values())
        print(f"  onnx ops (profiled, {total:.0f} ms/pass): " + ", ".join(
            f"{op} {ms:.0f} ms ({100 * ms / total:.0f}%)" for op, ms in list(ops.items())[:8]))
    print(json.dumps({
        "bench": "encoder_speed", "source": source, "slices": f.slices, "rounds": args.rounds, "torch_threads": f.threads,
        "inference_mode": f.inference_mode, "encoder_gflop_per_slice": round(f.flops / 1e9, 3),
        "encoder": used.name, "encoder_s_per_slice": round(used.seconds_per_slice, 3),
        "encoder_gflops": round(f.flops / used.seconds_per_slice / 1e9, 1),
        "matmul_gflops": round(f.matmul_gflops, 1), "matmul_gflops_1_thread": round(f.matmul_gflops_1_thread, 1),
        "encoder_efficiency": round(f.variant_efficiency(used), 3),
        "torch_s_per_slice": round(f.default.seconds_per_slice, 3), "torch_efficiency": round(f.efficiency, 3),
        "fastest_equal": fastest.name, "fastest_equal_speedup": round(f.speedup(fastest), 3),
        "variants": {v.name: {"s_per_slice": round(v.seconds_per_slice, 3), "speedup": round(f.speedup(v), 3),
                              "efficiency": round(f.variant_efficiency(v), 3), "threads": v.threads,
                              "max_abs_diff": float(f"{v.max_abs_diff:.3g}"), "equal": v.equal,
                              "setup_s": round(v.setup_s, 1)} for v in f.variants},
        "skipped": dict(f.skipped),
        "onnx_ops_ms": {op: round(ms, 1) for op, ms in ops.items()},
    }))


if __name__ == "__main__":
    main()
