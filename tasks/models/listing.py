"""The models as rows, for ``samatlas models``: the built-in ones, then the installed plugins.

Built-in models are listed by name in :mod:`tasks.models`; their classes are named here so the
listing reads ``input_size`` from the class without building a model (a test checks every built-in
name has one). Plugins come from tasks/model_plugins.py, each validated (its module imported).
"""

from __future__ import annotations

import importlib
from dataclasses import astuple, dataclass

from tasks.model_plugins import plugins
from tasks.models import MODEL_NAMES, NEEDS_CHECKPOINT, SAM2_FAMILY, SAM_FAMILY

COLUMNS = ("name", "kind", "package", "version", "needs_checkpoint", "input_size", "status")
BUILT_IN_CLASSES = {
    "litemedsam": "tasks.models.litemedsam:LiteMedSAM",
    "filled-box": "tasks.models.filled_box:FilledBox",
    **{name: "tasks.models.sam:SamFamily" for name in SAM_FAMILY},
    **{name: "tasks.models.sam2_image:Sam2Image" for name in SAM2_FAMILY},
}


@dataclass(frozen=True)
class ModelListing:
    """One row of ``samatlas models``; package and version are a plugin's distribution's."""

    name: str
    kind: str  # built-in | plugin
    package: str
    version: str
    needs_checkpoint: bool | None  # None: a broken plugin, whose class is unknown
    input_size: int | None
    status: str  # ok | broken: <reason>


def built_in_class(name: str) -> type:
    """The class that ``load_model(name)`` builds."""
    module, _, attribute = BUILT_IN_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def built_in_input_size(name: str) -> int:
    """The input size of built-in model ``name`` without building it (one class serves every SAM 2
    size, each with its config's image size)."""
    if name in SAM2_FAMILY:
        from tasks.models.sam2_build import CONFIGS

        return CONFIGS[name].image_size
    return built_in_class(name).input_size


def model_listings() -> list[ModelListing]:
    """Every model samatlas can evaluate or refuses by name: built-ins in their listed order, then plugins by name."""
    rows = [ModelListing(name, "built-in", "", "", name in NEEDS_CHECKPOINT, built_in_input_size(name), "ok")
            for name in MODEL_NAMES]
    for plugin in plugins():
        r = plugin.registration
        rows.append(ModelListing(r.name, "plugin", r.package, r.version, plugin.needs_checkpoint, plugin.input_size,
                                 plugin.status))
    return rows


def listing_rows() -> list[tuple]:
    """:func:`model_listings` as tuples in :data:`COLUMNS` order."""
    return [astuple(row) for row in model_listings()]
