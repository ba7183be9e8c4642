"""Model plugins (entry point group ``samatlas.models``): discovery, the class contract, identity, listing.

The plugin package is tests/model_plugin_package.py's, pip-installed once for this module (and
uninstalled after); its models are synthetic thresholds that test the plumbing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.model_plugins import (
    Registration, check_plugin_args, contract_problem, find_plugin, plugin_names, registrations, validate,
)
from tasks.models import MODEL_NAMES, check_model_args, load_model
from tasks.models.base import Embedding, Geometry, Prompt, SegmentationModel
from tasks.models.filled_box import FilledBox
from tasks.models.identity import model_sha256
from tasks.models.listing import BUILT_IN_CLASSES, built_in_class, model_listings
from tests.conftest import run_samatlas
from tests.model_plugin_package import (
    BRIGHT_BOX_SHA256, MODULE, PACKAGE, VERSION, forget_discovery, installed_plugin_package,
)


@pytest.fixture(scope="module")
def plugin_package(tmp_path_factory: pytest.TempPathFactory):
    """The test plugin package, installed into this venv for the module."""
    with installed_plugin_package(tmp_path_factory.mktemp("plugin")) as folder:
        yield folder


def _no_build(*args, **kwargs):
    raise AssertionError("the model's identity must not build the model")


class Thresholds(FilledBox):
    """A model class that follows the contract (FilledBox's methods), to break one rule at a time."""

    name = "thresholds"
    sha256 = "thresholds-v1"

    def __init__(self, checkpoint: str | None = None, device: str = "cpu") -> None:
        self.device = device


class Abstract(SegmentationModel):
    name = "abstract"
    input_size, box_shift, sha256 = 256, 5, "x"

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry.longest_side(height, width, self.input_size)


@pytest.mark.parametrize(("cls", "name", "problem"), [
    (Thresholds, "thresholds", None),
    (len, "thresholds", "its object is a builtin_function_or_method, not a SegmentationModel subclass"),
    (Prompt, "thresholds", "its object is class Prompt, not a SegmentationModel subclass"),
    (Abstract, "abstract", "Abstract does not implement decode, encode"),
    (Thresholds, "other-name", "Thresholds.name is 'thresholds', not the entry point's name 'other-name'"),
    (type("T", (Thresholds,), {"input_size": True}), "thresholds", "T.input_size must be an int >= 1"),
    (type("T", (Thresholds,), {"box_shift": -1}), "thresholds", "T.box_shift must be an int >= 0"),
    (type("T", (Thresholds,), {"needs_checkpoint": "yes"}), "thresholds", "needs_checkpoint must be True or False"),
    (type("T", (Thresholds,), {"sha256": ""}), "thresholds", "T takes no checkpoint, so it needs a sha256 class attribute"),
    (type("T", (Thresholds,), {"sha256": "", "needs_checkpoint": True}), "thresholds", None),  # its file is its identity
    (type("T", (Thresholds,), {"__init__": lambda self, device: None}), "thresholds",
     "T cannot be built as T(checkpoint=..., device=...)"),
])
def test_the_class_contract_is_checked_one_rule_at_a_time(cls, name, problem):
    found = contract_problem(cls, name)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_a_plugin_of_a_built_in_name_an_unimportable_one_and_a_twice_registered_one_are_broken(monkeypatch):
    clash = validate(Registration("filled-box", "tasks.models.filled_box:FilledBox", "someone", "1.0"))
    assert clash.status == "broken: 'filled-box' is a built-in model's name"
    missing = validate(Registration("gone", "no_such_module_for_samatlas:Model", "gone-pkg", "2.0"))
    assert missing.status.startswith("broken: import of no_such_module_for_samatlas:Model failed: ModuleNotFoundError")
    twice = (Registration("thresholds", "tests.tasks.test_model_plugins:Thresholds", "pkg-a", "1"),
             Registration("thresholds", "tests.tasks.test_model_plugins:Thresholds", "pkg-b", "1"))
    monkeypatch.setattr("tasks.model_plugins.registrations", lambda: twice)
    assert [validate(r).problem for r in twice] == ["'thresholds' is also registered by pkg-b",
                                                     "'thresholds' is also registered by pkg-a"]


def test_every_built_in_model_has_its_class_listed():
    assert set(BUILT_IN_CLASSES) == set(MODEL_NAMES)
    assert [built_in_class(n).input_size for n in ("litemedsam", "filled-box", "sam_vit_b")] == [256, 256, 1024]


def test_discovery_reads_the_installed_entry_points(plugin_package):
    mine = [r for r in registrations() if r.package == PACKAGE]
    assert [(r.name, r.target, r.version) for r in mine] == [
        ("bright-box", f"{MODULE}:BrightBox", VERSION), ("bright-box-file", f"{MODULE}:BrightBoxFile", VERSION),
        ("broken-model", f"{MODULE}:not_a_model", VERSION),
    ]


def test_plugin_names_import_no_plugin(plugin_package):
    forget_discovery()
    assert {"bright-box", "bright-box-file", "broken-model"} <= set(plugin_names())
    assert MODULE not in sys.modules  # the CLI's help names plugins from metadata alone
    assert find_plugin("bright-box").ok and MODULE in sys.modules


def test_a_broken_plugin_is_refused_with_its_reason(plugin_package):
    plugin = find_plugin("broken-model")
    assert not plugin.ok and plugin.needs_checkpoint is None
    assert plugin.problem == "its object is a function, not a SegmentationModel subclass"
    for refuse in (lambda: check_model_args("broken-model", None), lambda: load_model("broken-model")):
        with pytest.raises(ValueError, match=rf"model plugin 'broken-model' \({PACKAGE} {VERSION}, entry point "
                                             rf"{MODULE}:not_a_model\) is broken: its object is a function, not a"):
            refuse()


def test_an_unknown_model_names_built_ins_and_plugins(plugin_package):
    with pytest.raises(ValueError, match=r"unknown model 'nope'; choose from litemedsam, .*; installed plugins: .*bright-box"):
        check_model_args("nope", None)


def test_checkpoints_are_required_or_refused_as_the_plugin_says(plugin_package, tmp_path):
    with pytest.raises(ValueError, match="model bright-box does not take --checkpoint"):
        check_model_args("bright-box", tmp_path / "w.txt")
    with pytest.raises(ValueError, match="model bright-box-file needs --checkpoint PATH"):
        check_model_args("bright-box-file", None)
    assert check_plugin_args("bright-box-file", tmp_path / "w.txt").needs_checkpoint is True


def test_identity_without_checkpoint_is_the_class_checksum_read_without_building(plugin_package, monkeypatch):
    cls = find_plugin("bright-box").model_class
    monkeypatch.setattr(cls, "__init__", _no_build)
    assert model_sha256("bright-box") == BRIGHT_BOX_SHA256
    monkeypatch.undo()
    assert load_model("bright-box").sha256 == BRIGHT_BOX_SHA256


def test_identity_with_checkpoint_is_the_files_sha256(plugin_package, tmp_path):
    weights = tmp_path / "offset.txt"
    weights.write_text("7.5")
    expected = hashlib.sha256(b"7.5").hexdigest()
    assert model_sha256("bright-box-file", weights) == expected
    model = load_model("bright-box-file", str(weights))
    assert model.sha256 == expected  # samatlas's, not the class's placeholder
    assert model.offset == 7.5 and model.name == "bright-box-file"


def test_the_plugin_model_predicts_the_bright_pixels_in_its_box(plugin_package):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 30:45] = 200  # a bright 10 x 15 block
    image[0:5, 0:5] = 255  # bright, but outside the box
    model = load_model("bright-box")
    masks, scores = model.decode(model.encode(image), Prompt(box=(25, 5, 50, 25)))
    expected = np.zeros((40, 60), bool)
    expected[10:20, 30:45] = True
    assert np.array_equal(masks[0], expected)
    assert scores[0] == pytest.approx(150 / (26 * 21))
    assert isinstance(model.encode(image), Embedding)


def test_the_listing_has_built_ins_then_plugins_with_their_status(plugin_package):
    rows = {row.name: row for row in model_listings()}
    assert [r.name for r in model_listings()][:len(MODEL_NAMES)] == list(MODEL_NAMES)
    assert (rows["sam_vit_b"].kind, rows["sam_vit_b"].needs_checkpoint, rows["sam_vit_b"].input_size) == ("built-in", True, 1024)
    bright = rows["bright-box"]
    assert (bright.kind, bright.package, bright.version, bright.needs_checkpoint, bright.input_size, bright.status) == (
        "plugin", PACKAGE, VERSION, False, 256, "ok")
    assert rows["bright-box-file"].needs_checkpoint is True
    assert rows["broken-model"].status == "broken: its object is a function, not a SegmentationModel subclass"


def test_the_command_line_lists_names_and_refuses_plugins(plugin_package, tmp_path: Path):
    root = tmp_path / "samatlas-data"
    listed = run_samatlas(root, "models", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["bright-box"] == {"name": "bright-box", "kind": "plugin", "package": PACKAGE, "version": VERSION,
                                  "needs_checkpoint": False, "input_size": 256, "status": "ok"}
    assert rows["broken-model"]["status"] == "broken: its object is a function, not a SegmentationModel subclass"
    assert rows["litemedsam"]["kind"] == "built-in"
    table = run_samatlas(root, "models")
    assert table.exit_code == 0 and "bright-box-file" in table.stdout and "broken: " in table.stdout

    helped = run_samatlas(root, "evaluate", "--help")
    assert helped.exit_code == 0
    assert "plugins: bright-box, bright-box-file, broken-model" in " ".join(helped.stdout.replace("│", " ").split())

    refused = run_samatlas(root, "evaluate", "--model", "broken-model")
    assert refused.exit_code == 2
    assert (f"error: model plugin 'broken-model' ({PACKAGE} {VERSION}, entry point {MODULE}:not_a_model) is broken: "
            "its object is a function, not a SegmentationModel subclass") in " ".join(refused.output.split())
    unused = run_samatlas(root, "evaluate", "--model", "bright-box", "--checkpoint", tmp_path / "w.txt")
    assert unused.exit_code == 2 and "model bright-box does not take --checkpoint" in " ".join(unused.output.split())
