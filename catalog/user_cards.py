"""Dataset cards a user writes in YAML, registered through the same machinery as the built-in ones.

A YAML card names the dataset, its modality and region, the label map, the intensity preset, and
where images and labels are: either globs relative to the release root (the folder passed as
``--source``), where a regular expression with a ``case`` group turns each file's path into its case
id (one for both, or one each: ``case_001_0000.nii.gz`` pairs with ``case_001_seg.nii.gz``) and
images and labels pair by case id; or an explicit list of image/label pairs. Label values the map
leaves out quarantine the case, or with ``unmapped_labels: background`` read as background (a card
for a few structures of a 100-label atlas). ``examples/my_dataset.yaml`` shows every field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from records.cards import MODALITIES, SLUG, CaseFiles, DatasetCard, Intensity, ManualSource, Subset, Target
from catalog.registry import REGISTRY, load_builtins
from tasks.formats.binary import read_binary as read_sitk_binary
from tasks.formats.itk2d import read_itk_2d
from tasks.formats.planar import read_binary as read_planar_binary
from tasks.readers import read_files
from tasks.formats.release import is_junk

DEFAULT_CASE_ID = r"(?P<case>[^/.]+)[^/]*$"  # the file name up to its first dot
CASE_ID_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOADED: dict[str, Path] = {}  # card id -> the YAML file it was loaded from
READERS = {
    "sitk": read_files,  # one file per channel in any format SimpleITK reads, an integer label image
    "sitk-binary": read_sitk_binary,  # as sitk, the label binarised (any non-zero value is label 1)
    "planar-binary": read_planar_binary,  # PNG/JPEG/BMP/TIFF pictures, masks binarised
    "itk-2d": read_itk_2d,  # 2D .mhd/.nii/.mha images with their label
}
"""The readers a YAML card may name in its ``reader`` field (listed here, never registered by import)."""


class UserCardError(ValueError):
    """A YAML card that cannot be used; the message names the file and the field."""


def _check_case_regex(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    if "case" not in pattern.groupindex:
        raise ValueError("needs a named group (?P<case>...) that captures the case id")
    return value


class PairSpec(BaseModel):
    """One case given explicitly: its image and label paths (relative to the release root) and id."""

    model_config = ConfigDict(extra="forbid")

    image: str
    label: str
    case: str | None = Field(None, description="the case id (default: from the image path by case_id)")

    @field_validator("case")
    @classmethod
    def _usable(cls, value: str | None) -> str | None:
        if value is not None and not CASE_ID_CHARS.match(value):
            raise ValueError(f"{value!r} is not a usable case id (letters, digits, . _ -)")
        return value


class UserCardSpec(BaseModel):
    """The fields of a YAML card (unknown fields are refused, so a typo does not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    modality: str
    region: str
    dimensionality: int = Field(3, ge=2, le=3)
    labels: dict[int, Target] = Field(min_length=1)
    intensity: Intensity
    reader: str = Field("sitk", description=f"how a case's files are read: one of {', '.join(READERS)}")
    channels: tuple[str, ...] = Field(("image",), description="names of the image file's channels (an RGB file has three)")
    unmapped_labels: Literal["quarantine", "background"] = Field(
        "quarantine", description="label values not in labels: quarantine the case, or read them as background")
    images_glob: str | None = Field(None, description="glob of image files, relative to the release root")
    labels_glob: str | None = Field(None, description="glob of label files, relative to the release root")
    case_id: str = Field(DEFAULT_CASE_ID, description="regex searched in each file's path relative to the root; group 'case'")
    image_case_id: str | None = Field(None, description="case_id for image files only (default: case_id)")
    label_case_id: str | None = Field(None, description="case_id for label files only (default: case_id)")
    pairs: list[PairSpec] | None = Field(None, description="explicit image/label pairs, instead of the globs")
    license: str
    citation: str
    layout: str | None = None
    cases: int | None = None
    register_at: str | None = Field(None, description="where the data comes from, for the message shown without --source")
    what_to_pass: str | None = None

    @field_validator("id", "region")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"{value!r} must be a lowercase slug (letters, digits, _ or -)")
        return value

    @field_validator("modality")
    @classmethod
    def _modality(cls, value: str) -> str:
        if value not in MODALITIES:
            raise ValueError(f"{value!r} is not one of {', '.join(MODALITIES)}")
        return value

    @field_validator("labels")
    @classmethod
    def _no_background(cls, value: dict[int, Target]) -> dict[int, Target]:
        if 0 in value:
            raise ValueError("label 0 is background and must not be mapped")
        return value

    @field_validator("reader")
    @classmethod
    def _reader(cls, value: str) -> str:
        if value not in READERS:
            raise ValueError(f"unknown reader {value!r}; choose from {', '.join(READERS)}")
        return value

    @field_validator("case_id", "image_case_id", "label_case_id")
    @classmethod
    def _case_group(cls, value: str | None) -> str | None:
        return _check_case_regex(value)

    @model_validator(mode="after")
    def _where_files_are(self) -> UserCardSpec:
        globs = (self.images_glob, self.labels_glob)
        if self.pairs is not None and any(g is not None for g in globs):
            raise ValueError("give either pairs or images_glob and labels_glob, not both")
        if self.pairs is None and None in globs:
            raise ValueError("images_glob and labels_glob are both needed (or a pairs list)")
        if self.pairs == []:
            raise ValueError("pairs is empty")
        return self

    @property
    def where(self) -> str:
        """Where the files are, in words, for messages and the layout line."""
        if self.pairs is not None:
            return f"{len(self.pairs)} listed image/label pairs"
        return f"{self.images_glob} with {self.labels_glob}, paired by case id"


def _index(root: Path, glob: str, pattern: re.Pattern[str], card: Path, field: str) -> dict[str, Path]:
    """Case id -> file for the files ``glob`` matches under ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.glob(glob) if p.is_file() and not is_junk(p)):
        match = pattern.search(path.relative_to(root).as_posix())
        if match is None or not CASE_ID_CHARS.match(match["case"] or ""):
            raise ValueError(f"{card}: case_id does not give a usable case id (letters, digits, . _ -) for {field} file {path}")
        if match["case"] in found:
            raise ValueError(f"{card}: {field} files {found[match['case']]} and {path} have the same case id {match['case']!r}")
        found[match["case"]] = path
    return found


def _listed_pairs(spec: UserCardSpec, card: Path, root: Path) -> Iterator[CaseFiles]:
    """The cases of a card's ``pairs`` list; a missing file quarantines its case (the reader names it)."""
    pattern, seen = re.compile(spec.case_id), set()
    for pair in spec.pairs or []:
        match = pattern.search(pair.image)
        case_id = pair.case or (match["case"] if match else None)
        if not case_id or not CASE_ID_CHARS.match(case_id):
            raise ValueError(f"{card}: pairs: no usable case id for image {pair.image}; give it as case:")
        if case_id in seen:
            raise ValueError(f"{card}: pairs: case id {case_id!r} is listed twice")
        seen.add(case_id)
        yield CaseFiles(case_id, (root / pair.image,), root / pair.label)


def _discover(spec: UserCardSpec, card: Path) -> Callable[[Path], Iterator[CaseFiles]]:
    """The discover function of a YAML card: the listed pairs, or images and labels paired by case id
    (unpaired files skipped)."""
    image_pattern = re.compile(spec.image_case_id or spec.case_id)
    label_pattern = re.compile(spec.label_case_id or spec.case_id)

    def discover(root: Path) -> Iterator[CaseFiles]:
        root = Path(root)
        if spec.pairs is not None:
            yield from _listed_pairs(spec, card, root)
            return
        images = _index(root, spec.images_glob, image_pattern, card, "images_glob")
        labels = _index(root, spec.labels_glob, label_pattern, card, "labels_glob")
        paired = sorted(images.keys() & labels.keys())
        if not paired:
            raise ValueError(
                f"{card}: under {root}, images_glob {spec.images_glob!r} matched {len(images)} files and labels_glob "
                f"{spec.labels_glob!r} {len(labels)}, and none paired by case id; check the globs and "
                f"case_id (or image_case_id and label_case_id)"
            )
        for case_id in paired:
            yield CaseFiles(case_id, (images[case_id],), labels[case_id])

    discover.__name__ = spec.id.replace("-", "_")
    discover.__doc__ = f"{spec.where} ({card.name})."
    return discover


def _errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{'.'.join(str(p) for p in e['loc']) or '(card)'}: {e['msg']}" for e in exc.errors()]
    return f"{path}: invalid dataset card:\n  " + "\n  ".join(lines)


def load_yaml_card(path: Path | str) -> DatasetCard:
    """Validate the YAML card at ``path`` and register it; loading the same file again replaces it.

    Raises UserCardError naming the file and each bad field; an id that a built-in card or another
    YAML file already uses is refused.
    """
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserCardError(f"{path}: cannot read the dataset card ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UserCardError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise UserCardError(f"{path}: a dataset card is a YAML mapping of fields, found {type(raw).__name__}")
    try:
        spec = UserCardSpec.model_validate(raw)
    except ValidationError as exc:
        raise UserCardError(_errors(path, exc)) from None
    load_builtins()  # built-in ids must be known before checking for a collision
    if spec.id in REGISTRY and LOADED.get(spec.id) != path:
        origin = f"the YAML card {LOADED[spec.id]}" if spec.id in LOADED else "a built-in dataset"
        raise UserCardError(f"{path}: id: {spec.id!r} is already used by {origin}; choose another id")
    try:
        card = DatasetCard(
            id=spec.id, name=spec.name, dimensionality=spec.dimensionality,
            subsets=(Subset(modality=spec.modality, region=spec.region, labels=spec.labels,
                            intensity=spec.intensity, channels=spec.channels,
                            unmapped_labels=spec.unmapped_labels),),
            source=ManualSource(
                register_at=spec.register_at or f"your own data, described by {path}",
                what_to_pass=spec.what_to_pass or f"the folder holding {spec.where}",
            ),
            license=spec.license, citation=spec.citation,
            layout=spec.layout or spec.where,
            cases=spec.cases, discover=_discover(spec, path), reader=READERS[spec.reader],
        )
    except ValidationError as exc:
        raise UserCardError(_errors(path, exc)) from None
    REGISTRY[card.id] = card
    LOADED[card.id] = path
    return card


def register_folder(folder: Path | None = None) -> list[DatasetCard]:
    """Register every YAML card in ``folder`` (default: the ``SAMATLAS_CARDS`` setting), sorted by name.

    Loading a file again replaces its card, so calling this more than once is harmless.
    """
    from tasks.settings import get_settings

    folder = folder or get_settings().cards
    if folder is None:
        return []
    if not Path(folder).is_dir():
        raise UserCardError(f"{folder}: SAMATLAS_CARDS is not a folder of YAML dataset cards")
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".yaml", ".yml") and not is_junk(p))
    return [load_yaml_card(p) for p in paths]


def resolve_dataset(arg: str) -> str:
    """The dataset id for a CLI argument: a ``.yaml``/``.yml`` path is loaded and registered first,
    and an id no card registers yet is looked for among the ``SAMATLAS_CARDS`` folder's cards."""
    if arg.lower().endswith((".yaml", ".yml")):
        return load_yaml_card(Path(arg)).id
    load_builtins()
    if arg not in REGISTRY:
        register_folder()
    return arg
