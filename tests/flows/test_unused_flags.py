"""A flag the chosen model does not use is an error (exit code 2, one line), not silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_samatlas


@pytest.mark.parametrize("model", ["litemedsam", "filled-box"])
def test_checkpoint_for_a_built_in_model_is_an_error(data_root: Path, tmp_path: Path, model: str):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not used")
    done = run_samatlas(data_root, "evaluate", "--model", model, "--checkpoint", weights, "--dry-run", timeout=120)
    assert done.exit_code == 2, done.output
    assert f"model {model} does not take --checkpoint" in done.output
    assert len(done.output.strip().splitlines()) == 1, done.output
    assert "Traceback" not in done.output


def test_load_model_refuses_a_checkpoint_for_a_built_in_model():
    from tasks.models import load_model

    with pytest.raises(ValueError, match="does not take --checkpoint"):
        load_model("filled-box", "/some/weights.pth")


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "litemedsam", "--bf16"], "--bf16 runs the encoder under CUDA autocast; it needs --device cuda (the device is cpu)"),
    (["--model", "filled-box", "--bf16"], "model filled-box has no bf16 encoder"),
    (["--model", "sam2.1_hiera_t", "--checkpoint", "never-read.pt", "--protocol", "sam2-propagation", "--bf16"],
     "sam2-propagation: SAM 2's video mode runs in float32; evaluate them without --bf16"),
])
def test_bf16_where_it_cannot_run_is_an_error(data_root: Path, args: list[str], message: str):
    done = run_samatlas(data_root, "evaluate", *args, "--dry-run", timeout=120)
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert len(done.output.strip().splitlines()) == 1, done.output
