"""A tiny model plugin package, written to a folder and pip-installed into this venv for the tests.

It registers three entry points under ``samatlas.models``:
- ``bright-box``: a thresholding model (no checkpoint) that predicts the pixels inside the prompt
  box brighter than the box's mean grey value, with its own identity ``BRIGHT_BOX_SHA256``;
- ``bright-box-file``: the same, with the threshold's offset read from a checkpoint file it needs;
- ``broken-model``: an entry point to a plain function, which samatlas must list as broken.

Synthetic: it tests the plugin plumbing, not segmentation quality.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE = "samatlas-test-model-plugin"
VERSION = "0.3.1"
MODULE = "samatlas_test_model_plugin"
BRIGHT_BOX_SHA256 = hashlib.sha256(b"bright-box: inside the box, above the box mean, v1").hexdigest()

PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{PACKAGE}"
version = "{VERSION}"

[project.entry-points."samatlas.models"]
bright-box = "{MODULE}:BrightBox"
bright-box-file = "{MODULE}:BrightBoxFile"
broken-model = "{MODULE}:not_a_model"

[tool.setuptools]
py-modules = ["{MODULE}"]
"""

SOURCE = '''\
"""Thresholding models: the bright pixels inside the prompt box (a samatlas plugin for its tests)."""

import hashlib

import numpy as np

from tasks.models.base import Embedding, Geometry, Prompt, SegmentationModel


class BrightBox(SegmentationModel):
    name = "bright-box"
    input_size = 256
    box_shift = 5
    needs_checkpoint = False
    sha256 = hashlib.sha256(b"bright-box: inside the box, above the box mean, v1").hexdigest()
    offset = 0.0

    def __init__(self, checkpoint=None, device="cpu"):
        self.device = device

    def geometry(self, height, width):
        return Geometry.longest_side(height, width, self.input_size)

    def encode(self, image):
        return Embedding(self.geometry(*image.shape[:2]), image.astype(np.float64).mean(axis=2))

    def decode(self, embedding, prompt, multimask=False):
        if prompt.box is None:
            raise ValueError("bright-box answers box prompts only")
        grey = embedding.features
        x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
        inside = np.zeros(grey.shape, bool)
        inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
        mask = inside & (grey > grey[inside].mean() + self.offset)
        return mask[None], np.array([mask.sum() / max(inside.sum(), 1)])


class BrightBoxFile(BrightBox):
    name = "bright-box-file"
    needs_checkpoint = True
    sha256 = "set by samatlas from the checkpoint file"

    def __init__(self, checkpoint, device="cpu"):
        super().__init__(checkpoint, device)
        self.offset = float(open(checkpoint).read())


def not_a_model():
    return "a function, not a model class"
'''


def write_package(root: Path) -> Path:
    """The package's source folder under ``root``."""
    folder = root / PACKAGE
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / f"{MODULE}.py").write_text(SOURCE)
    return folder


def forget_discovery() -> None:
    """Make this process see the venv's plugins afresh (discovery and import caches are per process)."""
    from tasks.model_plugins import find_plugin, registrations
    from tasks.models import load_model

    importlib.invalidate_caches()
    sys.modules.pop(MODULE, None)
    registrations.cache_clear()
    find_plugin.cache_clear()
    load_model.cache_clear()


@contextmanager
def installed_plugin_package(root: Path) -> Iterator[Path]:
    """Install the package from a folder under ``root`` into this venv (no registry: a local path, no
    dependencies, no build isolation) for the block, and uninstall it after, even on failure."""
    folder = write_package(root)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    try:
        done = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(folder)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {folder} failed:\n{done.stdout}{done.stderr}")
        forget_discovery()
        yield folder
    finally:
        subprocess.run([*pip, "uninstall", "-y", PACKAGE], capture_output=True, text=True, timeout=300)
        shutil.rmtree(folder / "build", ignore_errors=True)
        forget_discovery()
