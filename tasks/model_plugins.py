"""Model plugins: models that installed packages register under the ``samatlas.models`` entry point group.

A package adds a model without editing samatlas by declaring, in its ``pyproject.toml``::

    [project.entry-points."samatlas.models"]
    my-model = "my_package.model:MyModel"

The entry point's name is the model's name (``--model my-model``); its object is the model class.
The class contract (checked by :func:`validate`, before any model is built):

- a concrete subclass of :class:`tasks.models.base.SegmentationModel` (or ``MaskInputModel``), whose
  ``name`` class attribute equals the entry point's name, with ``input_size`` (int > 0) and
  ``box_shift`` (int >= 0) as class attributes;
- ``needs_checkpoint: bool`` (class attribute, default False): whether ``--checkpoint PATH`` is
  required (True) or refused (False), as for the built-in models;
- built as ``cls(checkpoint=PATH_OR_NONE, device="cpu"|"cuda")``, once per worker process;
- its identity, the ``sha256`` its result rows carry and re-evaluation keys on, is the checkpoint
  file's sha256 when it takes one; otherwise the class attribute ``sha256``, a non-empty string the
  plugin changes whenever its outputs change. samatlas sets ``sha256`` on the built instance to that
  value, so the rows always carry what the flow planned with (the flow never builds the model).

Built-in models are listed explicitly in :mod:`tasks.models`, never registered this way; a plugin
of a built-in model's name is refused. A broken plugin (its import fails, its object is not a model
class, it breaks the contract, or two packages register its name) never breaks samatlas: it is
listed with its reason and refused by name when asked for.

This module imports neither torch nor the model interface until a plugin is validated, so the
command line can name the installed plugins in its help cheaply (entry point metadata only).
Discovery is cached per process; a Dask worker imports a plugin by its entry point, from its name.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.models.base import SegmentationModel

GROUP = "samatlas.models"


@dataclass(frozen=True)
class Registration:
    """One installed entry point of the group, as its package's metadata declares it (nothing imported)."""

    name: str
    target: str  # "module:attribute"
    package: str
    version: str


@lru_cache(maxsize=1)
def registrations() -> tuple[Registration, ...]:
    """The installed plugins' entry points, by name (read from package metadata, once per process)."""
    found = []
    for point in entry_points(group=GROUP):
        dist = point.dist
        package = dist.metadata["Name"] if dist is not None else ""
        version = dist.version if dist is not None else ""
        found.append(Registration(point.name, point.value, package or "", version or ""))
    return tuple(sorted(found, key=lambda r: (r.name, r.package)))


def plugin_names() -> tuple[str, ...]:
    """The names of the installed plugins, broken ones included (cheap: no plugin is imported)."""
    return tuple(dict.fromkeys(r.name for r in registrations()))


@dataclass(frozen=True)
class Plugin:
    """An installed plugin after validation: its class when it follows the contract, else the problem.

    The class stays in this process: the flow passes model names to workers, never this record.
    """

    registration: Registration
    model_class: type | None = field(default=None, repr=False, compare=False)
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.registration.name

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def status(self) -> str:
        """``ok``, or ``broken: <reason>``."""
        return "ok" if self.ok else f"broken: {self.problem}"

    @property
    def needs_checkpoint(self) -> bool | None:
        return None if self.model_class is None else needs_checkpoint(self.model_class)

    @property
    def input_size(self) -> int | None:
        return None if self.model_class is None else self.model_class.input_size

    def describe(self) -> str:
        """The plugin as an error message names it: model, package, version and entry point."""
        r = self.registration
        return f"model plugin {r.name!r} ({r.package} {r.version}, entry point {r.target})"


def needs_checkpoint(cls: type) -> bool:
    """A plugin class's ``needs_checkpoint`` (False where it does not say)."""
    return getattr(cls, "needs_checkpoint", False)


def contract_problem(cls: object, name: str) -> str | None:
    """What keeps ``cls`` from being the model class of the plugin ``name``, or None if nothing does."""
    from tasks.models.base import SegmentationModel

    if not (isinstance(cls, type) and issubclass(cls, SegmentationModel)):
        what = f"class {cls.__qualname__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        return f"its object is {what}, not a SegmentationModel subclass"
    if inspect.isabstract(cls):
        return f"{cls.__name__} does not implement {', '.join(sorted(cls.__abstractmethods__))}"
    if getattr(cls, "name", None) != name:
        return f"{cls.__name__}.name is {getattr(cls, 'name', None)!r}, not the entry point's name {name!r}"
    for attribute, low in (("input_size", 1), ("box_shift", 0)):
        value = getattr(cls, attribute, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            return f"{cls.__name__}.{attribute} must be an int >= {low} class attribute, not {value!r}"
    if not isinstance(needs_checkpoint(cls), bool):
        return f"{cls.__name__}.needs_checkpoint must be True or False, not {needs_checkpoint(cls)!r}"
    if not needs_checkpoint(cls):
        sha256 = getattr(cls, "sha256", None)
        if not isinstance(sha256, str) or not sha256:
            return (f"{cls.__name__} takes no checkpoint, so it needs a sha256 class attribute "
                    f"(its identity in the results), not {sha256!r}")
    try:
        inspect.signature(cls).bind(checkpoint=None, device="cpu")
    except (TypeError, ValueError) as exc:
        return f"{cls.__name__} cannot be built as {cls.__name__}(checkpoint=..., device=...): {exc}"
    return None


def validate(registration: Registration) -> Plugin:
    """Import the plugin's entry point and check its class against the contract; never raises."""
    from tasks.models import MODEL_NAMES

    if registration.name in MODEL_NAMES:
        return Plugin(registration, problem=f"{registration.name!r} is a built-in model's name")
    others = [r.package for r in registrations() if r.name == registration.name and r != registration]
    if others:
        return Plugin(registration, problem=f"{registration.name!r} is also registered by {', '.join(others)}")
    try:
        cls = EntryPoint(registration.name, registration.target, GROUP).load()
    except Exception as exc:  # noqa: BLE001 (any failure of a plugin's import is that plugin's problem)
        return Plugin(registration, problem=f"import of {registration.target} failed: {type(exc).__name__}: {exc}")
    problem = contract_problem(cls, registration.name)
    return Plugin(registration, None if problem else cls, problem)


@lru_cache(maxsize=None)
def find_plugin(name: str) -> Plugin | None:
    """The validated plugin ``name`` (the first package's where several register it), or None if
    no installed package registers it. Cached per process."""
    for registration in registrations():
        if registration.name == name:
            return validate(registration)
    return None


def plugins() -> tuple[Plugin, ...]:
    """Every installed plugin, validated (so every plugin's module is imported)."""
    return tuple(validate(r) for r in registrations())


def usable_plugin(name: str) -> Plugin:
    """The plugin ``name``; a ValueError naming the choices (the built-in models and the installed
    plugins) if there is none, or naming the plugin's problem if it is broken."""
    from tasks.models import MODEL_NAMES

    plugin = find_plugin(name)
    if plugin is None:
        plugins_named = f"; installed plugins: {', '.join(plugin_names())}" if plugin_names() else ""
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}{plugins_named}")
    if not plugin.ok:
        raise ValueError(f"{plugin.describe()} is broken: {plugin.problem}")
    return plugin


def check_plugin_args(name: str, checkpoint: str | os.PathLike | None) -> Plugin:
    """The usable plugin ``name``, given a checkpoint exactly when it needs one (ValueError otherwise)."""
    plugin = usable_plugin(name)
    if plugin.needs_checkpoint and checkpoint is None:
        raise ValueError(f"model {name} needs --checkpoint PATH ({plugin.describe()})")
    if not plugin.needs_checkpoint and checkpoint is not None:
        raise ValueError(f"model {name} does not take --checkpoint ({plugin.describe()} has no checkpoint)")
    return plugin


def build_plugin_model(name: str, checkpoint: str | None, device: str) -> SegmentationModel:
    """Build the plugin model ``name`` and set its ``sha256`` to its identity (see the module docstring)."""
    from tasks.models.identity import model_sha256

    plugin = check_plugin_args(name, checkpoint)
    identity = model_sha256(name, checkpoint)  # a checkpoint file that is not there fails here, before the build
    model = plugin.model_class(checkpoint=checkpoint, device=device)
    model.sha256 = identity
    return model
