"""Loading checkpoints safely: sha256 recorded, ``weights_only=True``, clear errors for wrong files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tasks.fetch import sha256_file

if TYPE_CHECKING:  # imported where a checkpoint is loaded: the flow process only reads CheckpointError
    import torch


SHOWN_PER_KIND = 5  # keys listed per kind of mismatch


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, or not a state dict for the model asked for."""


def state_dict_mismatch(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str:
    """What differs between a file's state dict and a model's, by key and shape; "" when nothing does.

    Each kind (missing, unexpected, shape mismatch) is counted and its first keys named, e.g.
    ``"12 missing: a, b, ... (10 more); 1 shape mismatch: c: file (2,) vs model (3,)"``.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f", ... ({len(items) - SHOWN_PER_KIND} more)" if len(items) > SHOWN_PER_KIND else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:SHOWN_PER_KIND])}{more}")
    return "; ".join(problems)


def load_state_dict(path: str | Path, architecture: str, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict without executing pickled code; unwrap ``model``/``state_dict`` containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found (for {architecture})")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise CheckpointError(f"{path}: sha256 does not match the expected {expected_sha256} for {architecture}")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for non-checkpoint files
        raise CheckpointError(f"{path}: not a loadable PyTorch state dict for {architecture} ({exc})") from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no tensor state dict for {architecture}")
    return state
