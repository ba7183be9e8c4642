"""What a work unit costs, so that the plan cuts units of about the same seconds on any model and device.

A Prefect task run costs about half a second of bookkeeping, so a unit should hold tens of seconds of
work (``UNIT_TARGET_S``: 30 s keeps it under 2 %), and not much more, so that a failed unit loses
little and many workers share a case. Slices alone are a poor measure: a slice is about 0.45 s of
LiteMedSAM on a CPU and 30 s of SAM ViT-B, and milliseconds of either on a GPU. A unit's cost is estimated
before any model is built (the flow process builds none) from each model's seconds per encoder pass
and per decoded prompt on the device, plus the rest of the pipeline per prompt (Zarr reads, prompts,
metrics, rows).

The figures are estimates for sizing only; they move no result. ``measured`` ones come from this
project's benches on its 2-core CPU machine (bench/evaluate.py, bench/encoder_speed.py,
bench/pipeline.py), ``given`` ones from the project's dependency notes, ``bench/gpu.py`` ones from one
H200 (fp32, 8 slices per encoder pass as by default, slices prepared ahead); the others are scaled from them by
encoder FLOPs or taken from the models' papers (GPU: A100 figures), and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT_TARGET_S = 30.0
PIPELINE_S_PER_PROMPT = 0.002  # measured: bench/pipeline.py, ~490 object-prompts/s per core beside a 1 ms model


@dataclass(frozen=True)
class ModelSpeed:
    """Seconds of one encoder pass (per slice) and of one decoded prompt, and where the figures come from."""

    encode_s: float
    decode_s: float
    source: str

    @property
    def prompt_s(self) -> float:
        """The estimated seconds of one prompt: its decoder call and the pipeline's share (reads, metrics, rows)."""
        return self.decode_s + PIPELINE_S_PER_PROMPT


CPU_DECODER_S = 0.045  # measured: LiteMedSAM's mask decoder in torch, 44 ms a call; SAM's has the same shape
SPEEDS: dict[tuple[str, str], ModelSpeed] = {
    ("litemedsam", "cpu"): ModelSpeed(0.45, 0.019, "measured: ONNX Runtime, 2 threads (0.38-0.45 s a pass, 0.86 on slower "
                                      "hosts; 19 ms a prompt: bench/evaluate.py's unit_decoder_s, 1.71 s for 91)"),
    ("filled-box", "cpu"): ModelSpeed(0.0, 0.0, "no network"),
    ("sam_vit_b", "cpu"): ModelSpeed(30.0, CPU_DECODER_S, "given: ~30 s for ViT-B at 1024 (not measured here)"),
    ("medsam_vit_b", "cpu"): ModelSpeed(30.0, CPU_DECODER_S, "given: ~30 s for ViT-B at 1024 (not measured here)"),
    ("sam_vit_l", "cpu"): ModelSpeed(90.0, CPU_DECODER_S, "estimate: ViT-B x 3 (encoder FLOPs)"),
    ("sam_vit_h", "cpu"): ModelSpeed(180.0, CPU_DECODER_S, "estimate: ViT-B x 6 (encoder FLOPs)"),
    ("sam2.1_hiera_t", "cpu"): ModelSpeed(6.0, CPU_DECODER_S, "estimate: ViT-B / 5 (encoder FLOPs)"),
    ("sam2.1_hiera_s", "cpu"): ModelSpeed(8.0, CPU_DECODER_S, "estimate: ViT-B / 4 (encoder FLOPs)"),
    ("sam2.1_hiera_b+", "cpu"): ModelSpeed(15.0, CPU_DECODER_S, "estimate: ViT-B / 2 (encoder FLOPs)"),
    ("sam2.1_hiera_l", "cpu"): ModelSpeed(40.0, CPU_DECODER_S, "estimate: ViT-B x 1.3 (encoder FLOPs)"),
    ("medsam2", "cpu"): ModelSpeed(1.5, CPU_DECODER_S, "estimate: Hiera-T at 512 (a quarter of 1024's pixels)"),
    ("litemedsam", "cuda"): ModelSpeed(0.005, 0.001, "bench/gpu.py, one H200, fp32: 205 slices/s, 1030 prompts/s"),
    ("filled-box", "cuda"): ModelSpeed(0.0, 0.0, "no network"),
    ("sam_vit_b", "cuda"): ModelSpeed(0.035, 0.005, "bench/gpu.py, one H200, fp32: 29 slices/s, 190 prompts/s"),
    ("medsam_vit_b", "cuda"): ModelSpeed(0.05, 0.005, "estimate: a third of ViT-H's 0.15 s (SAM paper, A100)"),
    ("sam_vit_l", "cuda"): ModelSpeed(0.1, 0.005, "estimate: two thirds of ViT-H's 0.15 s (SAM paper, A100)"),
    ("sam_vit_h", "cuda"): ModelSpeed(0.15, 0.005, "SAM paper: ~0.15 s per image on an A100"),
    ("sam2.1_hiera_t", "cuda"): ModelSpeed(0.013, 0.0011, "bench/gpu.py, one H200, fp32: 76 slices/s, 890 prompts/s"),
    ("sam2.1_hiera_s", "cuda"): ModelSpeed(0.012, 0.005, "SAM 2 paper: 85 FPS on an A100"),
    ("sam2.1_hiera_b+", "cuda"): ModelSpeed(0.016, 0.005, "SAM 2 paper: 64 FPS on an A100"),
    ("sam2.1_hiera_l", "cuda"): ModelSpeed(0.025, 0.005, "SAM 2 paper: 40 FPS on an A100"),
    ("medsam2", "cuda"): ModelSpeed(0.005, 0.005, "estimate: Hiera-T at 512"),
}
UNKNOWN = {  # a plugin model: between LiteMedSAM and SAM ViT-B
    "cpu": ModelSpeed(3.0, CPU_DECODER_S, "unknown model: a middle guess"),
    "cuda": ModelSpeed(0.02, 0.005, "unknown model: a middle guess"),
}


def model_speed(model: str, device: str) -> ModelSpeed:
    """``model``'s figures on ``device`` (``cuda:1`` counts as ``cuda``); a middle guess for a model not listed."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return SPEEDS.get((model, kind), UNKNOWN[kind])
