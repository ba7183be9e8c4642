"""Measurement (not a test): the SAM-family models on a CUDA GPU, batch 1 fp32 against the fast path.

Issue 13, item 7. For LiteMedSAM (its shipped weights), SAM ViT-B and SAM 2.1 tiny (random weights: the
freshly built network's state dict written to a temporary checkpoint file and loaded as a user's
checkpoint is; speed does not depend on the weights' values), on the same slices, in one process:

``encoder``    slices/s of ``encode``, one slice per pass in fp32 (the baseline), and of ``encode_batch``
               at each batch size of ``--batches``, in fp32 and in bf16 (the path ``samatlas evaluate
               --device cuda --bf16`` takes, ``SAMATLAS_ENCODER_BATCH`` slices per pass); CUDA
               synchronised, each the fastest of ``--rounds`` rounds after a warm-up pass. At the
               batch sizes of ``--pipelined``, also ``pipelined xT``: the slices prepared (the model's CPU
               stage) on T read-ahead threads (``--threads``; ``run_unit`` runs ``PREPARE_THREADS``)
               while the encoder runs, as ``run_unit`` does on a GPU; and ``network``: the encoder passes alone on slices prepared beforehand,
               the GPU's bound.
``decoder``    box prompts/s: one prompt per ``decode_batch`` call against every slice's prompt in one
               call (as ``run_unit`` decodes a round of a slice group on a GPU).
``agreement``  bf16 against fp32: the embeddings' max abs difference over fp32's max abs value, and the
               mean Dice of the box-prompted masks decoded on each. Meaningful for LiteMedSAM on the
               sample's real slices; with random weights (SAM, SAM 2.1) the masks are noise and the
               Dice only shows that the path runs.

Slices: ``--slices FILE.npz`` (``images`` (N, H, W, 3) uint8 and ``labels`` (N, H, W), written by
``--export-slices FILE.npz`` from the sample chest CT that bench/evaluate.py ingests); a slice's box is
its largest label's bounding box. Without a file, random uint8 images with a central box (the figures
say so). The slices are cycled to ``--count`` images so that the largest batch fills. Prints the figures,
then ONE JSON line ``{"bench": "gpu", ...}``. Without CUDA it says so and exits 2.

    python bench/gpu.py [--slices FILE.npz] [--count 64] [--batches 1,4,8,16,32] [--pipelined 8,16]
                        [--threads 4] [--rounds 2] [--models litemedsam,sam_vit_b,sam2.1_hiera_t]
    python bench/gpu.py --export-slices FILE.npz [--store DIR] [--case lung2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.models import load_model  # noqa: E402
from tasks.models.base import DecodeRequest, Embedding, Prompt, SegmentationModel  # noqa: E402
from tasks.prefetch import AHEAD, PREPARE_THREADS, prefetched  # noqa: E402

MODELS = ("litemedsam", "sam_vit_b", "sam2.1_hiera_t")


@dataclass(frozen=True)
class Slices:
    """The images measured, one box prompt each, and whether they are the real sample's."""

    images: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]
    real: bool


@dataclass(frozen=True)
class ModelFigures:
    """One model's figures (slices/s by "precision/batch", prompts/s, bf16 agreement)."""

    model: str
    weights: str
    encoder_slices_per_s: dict[str, float]
    baseline_slices_per_s: float
    fastest: str
    fastest_over_baseline: float
    decode_one_prompts_per_s: float
    decode_batched_prompts_per_s: float
    bf16_rel_diff: float
    bf16_mask_dice: float
    batch_rel_diff: float
    batched_decode_mask_dice: float


def box_of(label: np.ndarray) -> tuple[float, float, float, float]:
    """The bounding box (x0, y0, x1, y1) of the largest label of a slice, or its central half."""
    values, counts = np.unique(label[label > 0], return_counts=True)
    if not len(values):
        h, w = label.shape
        return (w / 4, h / 4, 3 * w / 4, 3 * h / 4)
    ys, xs = np.nonzero(label == values[np.argmax(counts)])
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def load_slices(path: Path | None, count: int) -> Slices:
    """``count`` images cycled from the exported sample, or random ones."""
    if path is None:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(min(count, 8))]
        labels = [np.zeros((512, 512), np.uint8)] * len(images)
    else:
        with np.load(path) as data:
            images, labels = list(data["images"]), list(data["labels"])
    picks = [i % len(images) for i in range(count)]
    return Slices([images[i] for i in picks], [box_of(labels[i]) for i in picks], path is not None)


def export_slices(out: Path, store: Path, case: str) -> None:
    """Write one ingested chest CT's labelled slices (windowed RGB, as evaluate reads them) and their
    label planes."""
    from tasks.evaluate_unit import slice_rgb
    from tasks.store import StoredCase

    stored = StoredCase(store / "sample-radiomics" / case)
    planes = {z: stored.mask_slice(z) for z in range(stored.group["image"].shape[1])}
    labelled = [z for z, plane in planes.items() if plane.any()]
    images = np.stack([slice_rgb(stored, z) for z in labelled])
    labels = np.stack([planes[z] for z in labelled])
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out}: {images.shape} images, {labels.shape} labels")


def seconds(run: Callable[[], object], rounds: int) -> float:
    """The fastest of ``rounds`` CUDA-synchronised runs, after one warm-up run."""
    import torch

    run()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def random_checkpoint(name: str, folder: Path) -> Path:
    """A randomly initialised checkpoint of ``name``, laid out as the official files are."""
    import torch

    torch.manual_seed(0)
    path = folder / f"{name}-random.pt"
    if name == "sam_vit_b":
        from segment_anything import sam_model_registry

        torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    else:
        from hydra.utils import instantiate

        from tasks.models.sam2_build import compose_config

        torch.save({"model": instantiate(compose_config(name).model).state_dict()}, path)
    return path


def build(name: str, checkpoint: Path | None, bf16: bool) -> SegmentationModel:
    return load_model(name, None if checkpoint is None else str(checkpoint), "cuda", bf16)


def encode_in_batches(model: SegmentationModel, images: Sequence[np.ndarray], batch: int) -> list[Embedding]:
    out = []
    for first in range(0, len(images), batch):
        out += model.encode_batch(images[first : first + batch])
    return out


def encode_pipelined(model: SegmentationModel, images: Sequence[np.ndarray], batch: int,
                     threads: int) -> list[Embedding]:
    """As ``run_unit`` encodes on a GPU: each slice prepared on ``threads`` read-ahead threads, ``batch``
    per pass."""
    reads = prefetched(range(len(images)), lambda i: model.prepare(images[i]), ahead=max(AHEAD, batch),
                       threads=threads)
    out = []
    with closing(reads):
        for first in range(0, len(images), batch):
            out += model.encode_prepared([p for _, p in itertools.islice(reads, len(images[first : first + batch]))])
    return out


def network_rate(model: SegmentationModel, images: Sequence[np.ndarray], batch: int, rounds: int) -> float:
    """Slices/s of the encoder passes alone, on slices prepared before the clock starts."""
    prepared = [model.prepare(image) for image in images]
    return len(images) / seconds(
        lambda: [model.encode_prepared(prepared[i : i + batch]) for i in range(0, len(prepared), batch)], rounds)


def features_of(embedding: Embedding):
    """The tensor that carries most of an embedding (SAM 2's image embedding; the others' features)."""
    features = embedding.features
    return getattr(features, "image_embed", features)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def measure(name: str, slices: Slices, batches: Sequence[int], pipelined: Sequence[int], threads: Sequence[int],
            rounds: int, folder: Path) -> ModelFigures:
    """Every figure of one model: an fp32 and a bf16 instance on the same checkpoint."""
    checkpoint = None if name == "litemedsam" else random_checkpoint(name, folder)
    fp32, bf16 = build(name, checkpoint, False), build(name, checkpoint, True)
    images = slices.images
    rates = {"fp32/1-encode": len(images) / seconds(lambda: [fp32.encode(i) for i in images], rounds)}
    for batch in batches:
        for label, model in (("fp32", fp32), ("bf16", bf16)):
            rates[f"{label}/{batch}"] = len(images) / seconds(lambda: encode_in_batches(model, images, batch), rounds)
    for batch in pipelined:
        for label, model in (("fp32", fp32), ("bf16", bf16)):
            for count in threads:
                rates[f"{label}/{batch} pipelined x{count}"] = len(images) / seconds(
                    lambda: encode_pipelined(model, images, batch, count), rounds)
            rates[f"{label}/{batch} network"] = network_rate(model, images, batch, rounds)
    fastest = max((key for key in rates if not key.endswith("network")), key=rates.get)
    few = images[: min(len(images), 16)]
    requests = [DecodeRequest(Prompt(box=box), False) for box in slices.boxes[: len(few)]]
    exact, quick = fp32.encode_batch(few), bf16.encode_batch(few)
    one = len(few) / seconds(lambda: [fp32.decode_batch([e], [r]) for e, r in zip(exact, requests)], rounds)
    batched = len(few) / seconds(lambda: fp32.decode_batch(exact, requests), rounds)
    batched_masks = fp32.decode_batch(exact, requests)
    single_masks = [fp32.decode_batch([e], [r])[0] for e, r in zip(exact, requests)]
    bf16_masks = fp32.decode_batch(quick, requests)
    return ModelFigures(
        name, "shipped" if checkpoint is None else "random", rates, rates["fp32/1-encode"], fastest,
        rates[fastest] / rates["fp32/1-encode"], one, batched,
        bf16_rel_diff=max(rel_diff(e, q) for e, q in zip(exact, quick)),
        bf16_mask_dice=mean_dice(batched_masks, bf16_masks),
        batch_rel_diff=max(rel_diff(fp32.encode(image), e) for image, e in zip(few, exact)),
        batched_decode_mask_dice=mean_dice(single_masks, batched_masks),
    )


def rel_diff(reference: Embedding, other: Embedding) -> float:
    """max |other - reference| / max |reference| over the embeddings' main tensors."""
    a, b = features_of(reference), features_of(other)
    return float((b - a).abs().max() / a.abs().max())


def mean_dice(a: Sequence, b: Sequence) -> float:
    """The mean Dice of two lists of decoded outputs' first masks."""
    return float(np.mean([dice(x.masks[0], y.masks[0]) for x, y in zip(a, b)]))


def report(figures: ModelFigures, real: bool) -> None:
    print(f"{figures.model} ({figures.weights} weights):")
    print(f"  encoder, batch 1 fp32 (baseline): {figures.baseline_slices_per_s:8.1f} slices/s")
    for key, rate in figures.encoder_slices_per_s.items():
        print(f"  encoder {key:>18}: {rate:8.1f} slices/s  ({rate / figures.baseline_slices_per_s:5.2f}x)")
    print(f"  fastest (network alone apart): {figures.fastest}, {figures.fastest_over_baseline:.2f}x the baseline")
    print(f"  decoder: {figures.decode_one_prompts_per_s:.0f} prompts/s one per call, "
          f"{figures.decode_batched_prompts_per_s:.0f} in one batch")
    where = "real slices" if real and figures.weights == "shipped" else "noise: random weights or images"
    print(f"  bf16 vs fp32: embedding max diff {figures.bf16_rel_diff:.2e} of its range, "
          f"mask Dice {figures.bf16_mask_dice:.4f} ({where})")
    print(f"  fp32 batch vs one slice per pass: embedding max diff {figures.batch_rel_diff:.2e} of its range; "
          f"batched vs one-per-call decoding: mask Dice {figures.batched_decode_mask_dice:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=Path, help="an .npz written by --export-slices (default: random images)")
    parser.add_argument("--export-slices", type=Path, help="write the ingested sample's slices to this .npz and stop")
    parser.add_argument("--store", type=Path, default=Path("samatlas-data/bench/ingested/store"),
                        help="with --export-slices: the store bench/evaluate.py ingests the sample into")
    parser.add_argument("--case", default="lung2", help="with --export-slices: the sample-radiomics case")
    parser.add_argument("--count", type=int, default=64, help="images per timed pass (the slices cycled)")
    parser.add_argument("--batches", default="1,4,8,16,32", help="encoder batch sizes")
    parser.add_argument("--pipelined", default="8,16", help="batch sizes also measured pipelined and network alone")
    parser.add_argument("--threads", default=str(PREPARE_THREADS), help="read-ahead thread counts of the pipelined runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    if args.export_slices:
        export_slices(args.export_slices, args.store, args.case)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: bench/gpu.py measures the GPU path and was not run")
        return 2
    slices = load_slices(args.slices, args.count)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {len(slices.images)} images "
          f"({'the sample chest CT, cycled' if slices.real else 'random uint8: no sample given'})")
    batches = [int(b) for b in args.batches.split(",")]
    results, failures = [], {}
    with tempfile.TemporaryDirectory(prefix="samatlas-gpu-") as folder:
        for name in args.models.split(","):
            try:
                figures = measure(name, slices, batches, [int(b) for b in args.pipelined.split(",") if b],
                                  [int(t) for t in args.threads.split(",")], args.rounds, Path(folder))
            except Exception as exc:  # one model's failure is reported; the others are still measured
                failures[name] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: FAILED {failures[name]}")
                continue
            finally:  # the models built (load_model keeps them) leave the GPU before the next one's
                load_model.cache_clear()
                torch.cuda.empty_cache()
            report(figures, slices.real)
            results.append(figures)
    print(json.dumps({"bench": "gpu", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "real_slices": slices.real, "images": len(slices.images),
                      "models": [asdict(f) for f in results], "failed": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
