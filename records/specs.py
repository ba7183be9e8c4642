"""Protocol specs: a protocol's recorded name plus every parameter that changes what is sent or scored.

A spec is a value. Its canonical form is the JSON of ``{"name", "params"}`` with sorted keys and no
whitespace, and its id is the first 12 hex digits of that text's sha256, so the same name and
parameters give the same id in every process, on every machine, in every release. A result's key
carries the spec id: changing any parameter writes new rows beside the old ones, and repeating the
same parameters finds its rows already there.

Every spec carries ``seed`` (the version of the seeding scheme: how an object's key and the spec name
become an RNG) and ``scoring`` (the metric convention: surface definition, NSD tolerance and unit,
the Dice gate on NSD, the HD95 percentile rule), because both change the recorded numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEED_SCHEME = 1
"""v1: ``sha256("dataset|case|slice|label|protocol")[:8]`` little-endian seeds numpy's default_rng."""

DEFAULT_SCORING: Mapping[str, Any] = {
    "surface": "voxels", "nsd_tolerance": 2.0, "nsd_unit": "mm", "nsd_gate_dice": None, "hd95": "max-directed",
    "lift_2d": False,
}
"""The default metric convention, ``tasks.metrics.SAMATLAS_VOXELS`` as parameters (MONAI's edge voxels,
2 mm of real spacing, no Dice gate, max of the directed HD95s); a spec may name another."""


def _canonical(value: Any) -> Any:
    """Plain JSON values (tuples as lists, mappings with sorted string keys); anything else is refused,
    so a parameter cannot silently stringify differently in another process."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"spec parameter value {value!r} is not a plain JSON value")


@dataclass(frozen=True)
class ProtocolSpec:
    """One recorded protocol variant with its parameters; ``steps`` result rows per object.

    ``steps`` and ``min_area_px`` follow from the parameters (and the rule) but are not part of the
    identity: the id depends on ``name`` and ``params`` alone.
    """

    name: str
    params: Mapping[str, Any]
    steps: int = 1
    min_area_px: int = 1
    canonical: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = {"seed": SEED_SCHEME, "scoring": dict(DEFAULT_SCORING), **self.params}
        params = _canonical(params)
        object.__setattr__(self, "params", params)
        text = json.dumps({"name": self.name, "params": params}, sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "canonical", text)
        if self.steps < 1:
            raise ValueError(f"{self.name}: a spec records at least one step")

    @property
    def id(self) -> str:
        """The short stable id of (name, params)."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:12]

    @property
    def params_json(self) -> str:
        """The canonical JSON of the parameters alone (what result rows store in ``spec``)."""
        return json.dumps(self.params, sort_keys=True, separators=(",", ":"))

    def with_run_options(self, scoring: Mapping[str, Any] | None, window: tuple[float, float] | None) -> ProtocolSpec:
        """This spec under a run's metric convention and intensity window (both change the numbers,
        so both are parameters; an unset option leaves the spec as it is)."""
        params = dict(self.params)
        if scoring is not None:
            params["scoring"] = dict(scoring)
        if window is not None:
            params["window"] = [float(window[0]), float(window[1])]
        return ProtocolSpec(self.name, params, self.steps, self.min_area_px)

    @property
    def label(self) -> str:
        """A readable one-line form: the name, then the parameters that are not defaults of every spec."""
        own = {k: v for k, v in self.params.items() if k not in ("seed", "scoring", "window")}
        parts = [f"{k}={v}" for k, v in own.items()]
        scoring = self.params["scoring"]
        nsd = f"nsd={scoring['surface']}@{scoring['nsd_tolerance']:g}{scoring['nsd_unit']}"
        if scoring.get("nsd_gate_dice") is not None:
            nsd += f">dice{scoring['nsd_gate_dice']:g}"
        if scoring.get("lift_2d"):
            nsd += "(slab)"
        if scoring.get("hd95") == "pooled":
            nsd += " hd95=pooled"
        window = self.params.get("window")
        if window:
            parts.append(f"window={window[0]:g}..{window[1]:g}")
        return " ".join([self.name, *parts, nsd])
