"""YAML dataset cards: the example card ingests a synthetic replica, and bad cards name file and field.

The replica (a few 4 x 12 x 16 NIfTI volumes of made-up values) tests the card machinery and the
ingest plumbing, not segmentation quality. Ingest is driven through the Python API
(load_yaml_card, then tasks.ingest_case.ingest_case per case) and through the CLI, which takes a
card's path where a dataset id goes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import replicas_b as rep
import yaml
import zarr

from catalog import user_cards
from catalog.registry import REGISTRY, get_card
from catalog.user_cards import UserCardError, load_yaml_card, resolve_dataset
from tasks.ingest_case import ingest_case

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my_dataset.yaml"
LABELS = {"liver_001": [1, 2], "liver_002": [1]}


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Cards a test registers are removed afterwards, so the registry (and the docs listing) stay as built."""
    before, loaded = set(REGISTRY), dict(user_cards.LOADED)
    yield
    for card_id in set(REGISTRY) - before:
        del REGISTRY[card_id]
    user_cards.LOADED.clear()
    user_cards.LOADED.update(loaded)


def replica(root: Path) -> Path:
    """The example card's layout: ``images/<case>_0000.nii.gz`` and ``labels/<case>.nii.gz``, plus an
    unlabelled image and a macOS resource fork that must both be ignored."""
    for case, values in LABELS.items():
        rep.write(rep.image(rep.scan(-100)), root / "images" / f"{case}_0000.nii.gz")
        rep.write(rep.image(rep.blocks(values)), root / "labels" / f"{case}.nii.gz")
    rep.write(rep.image(rep.scan(-100)), root / "images" / "liver_003_0000.nii.gz")
    rep.junk(root / "labels", "._liver_001.nii.gz")
    return root


def test_example_card_ingests_a_replica(tmp_path: Path):
    card = load_yaml_card(EXAMPLE)
    assert get_card("my-liver-ct") is card and resolve_dataset(str(EXAMPLE)) == "my-liver-ct"
    assert resolve_dataset("msd") == "msd"
    assert card.source.kind == "manual" and card.subsets[0].intensity.kind == "ct_window"

    cases = list(card.discover(replica(tmp_path / "release")))
    assert [c.case_id for c in cases] == ["liver_001", "liver_002"]
    store = tmp_path / "store"
    for case in cases:
        outcome = ingest_case(card, case, store, run_id="test")
        assert outcome.ok, outcome.case.reason
        assert {(o.label, o.target, o.anatomy) for o in outcome.objects} == {
            (v, {1: "liver", 2: "liver-tumour"}[v], "liver") for v in LABELS[case.case_id]}
        assert outcome.case.modality == "ct" and outcome.case.anatomy == "abdomen"
        group = zarr.open_group(str(store / "my-liver-ct" / case.case_id), mode="r")
        meta = group.attrs["samatlas"]
        assert meta["spacing"] == pytest.approx(rep.STORE_SPACING) and meta["orientation"] == "LPS"
        np.testing.assert_array_equal(group["labels/mask/0"][:], rep.as_lps(rep.blocks(LABELS[case.case_id])))


def test_yaml_card_ingests_through_the_cli(cli, data_root: Path, tmp_path: Path):
    """``samatlas ingest CARD.yaml --source DIR``: the flow's tasks see the card registered from YAML."""
    from catalog.query import connect

    done = cli("ingest", EXAMPLE, "--source", replica(tmp_path / "release"))
    assert done.exit_code == 0, done.output
    assert "my-liver-ct: 2 ingested, 0 unchanged, 0 quarantined" in done.output
    dataset = "my-liver-ct"
    rows = connect(data_root / "catalog").execute(
        "SELECT DISTINCT dataset, target, modality, anatomy FROM objects ORDER BY target").fetchall()
    assert rows == [(dataset, "liver", "ct", "liver"), (dataset, "liver-tumour", "ct", "liver")]


def test_reloading_the_same_file_replaces_its_card(tmp_path: Path):
    copy = shutil.copy(EXAMPLE, tmp_path / "card.yml")
    first = load_yaml_card(copy)
    second = load_yaml_card(copy)
    assert second is not first and get_card(first.id) is second
    other = tmp_path / "other.yaml"
    other.write_text(EXAMPLE.read_text())
    with pytest.raises(UserCardError, match=r"other\.yaml: id: 'my-liver-ct' is already used by the YAML card .*card\.yml"):
        load_yaml_card(other)


def write_card(tmp_path: Path, **changes: object) -> Path:
    """The example card with ``changes`` applied (a value of None removes the field)."""
    fields = yaml.safe_load(EXAMPLE.read_text())
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    path = tmp_path / "bad_card.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def test_card_names_a_window_preset(tmp_path: Path):
    card = load_yaml_card(write_card(tmp_path, intensity={"kind": "ct_window", "preset": "ct-lung-medsam-paper"}))
    assert (card.subsets[0].intensity.level, card.subsets[0].intensity.width) == (-160, 1500)


@pytest.mark.parametrize(("changes", "message"), [
    ({"modality": "mri"}, r"modality: Value error, 'mri' is not one of ct, mr"),
    ({"labels": {1: {"name": "Liver", "anatomy": "liver"}}}, r"labels\.1: Value error, 'Liver' must be a lowercase slug"),
    ({"labels": {0: {"name": "background", "anatomy": "none"}}}, r"labels: Value error, label 0 is background"),
    ({"intensity": {"kind": "window", "level": 40}}, r"intensity: .*'window'"),
    ({"intensity": {"kind": "ct_window", "preset": "lungs"}}, r"intensity\.ct_window: Value error, unknown CT window 'lungs'"),
    ({"images_glob": None}, r"\(card\): Value error, images_glob and labels_glob are both needed \(or a pairs list\)"),
    ({"image_glob": "images/*"}, r"image_glob: Extra inputs are not permitted"),
    ({"case_id": r"(\w+)\.nii\.gz$"}, r"case_id: Value error, needs a named group \(\?P<case>"),
    ({"case_id": "(?P<case>["}, r"case_id: Value error, not a regular expression"),
    ({"id": "msd"}, r"id: 'msd' is already used by a built-in dataset"),
])
def test_bad_card_names_file_and_field(tmp_path: Path, changes: dict, message: str):
    path = write_card(tmp_path, **changes)
    with pytest.raises(UserCardError, match=rf"bad_card\.yaml: (invalid dataset card:\n(.*\n)*\s*)?{message}"):
        load_yaml_card(path)


def test_unreadable_cards_name_the_file(tmp_path: Path):
    with pytest.raises(UserCardError, match=r"missing\.yaml: cannot read the dataset card"):
        resolve_dataset(str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- id: x\n")
    with pytest.raises(UserCardError, match=r"list\.yaml: a dataset card is a YAML mapping"):
        load_yaml_card(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("id: [x\n")
    with pytest.raises(UserCardError, match=r"broken\.yaml: not valid YAML"):
        load_yaml_card(tmp_path / "broken.yaml")


def test_globs_that_pair_nothing_say_so(tmp_path: Path):
    card = load_yaml_card(write_card(tmp_path, labels_glob="masks/*.nii.gz"))
    with pytest.raises(ValueError, match=r"bad_card\.yaml: .*matched 3 files and labels_glob 'masks/\*\.nii\.gz' 0"):
        list(card.discover(replica(tmp_path / "release")))


def test_cards_folder_is_listed_and_ingested_by_id(cli, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``SAMATLAS_CARDS``: a folder of YAML cards the registry, the listing and ingest all see."""
    import json

    cards = tmp_path / "cards"
    cards.mkdir()
    shutil.copy(EXAMPLE, cards / "liver.yaml")
    monkeypatch.setenv("SAMATLAS_CARDS", str(cards))
    listed = cli("datasets", "--modality", "ct", "--format", "json")
    assert "my-liver-ct" in {row["id"] for row in json.loads(listed.stdout)}
    done = cli("ingest", "my-liver-ct", "--source", replica(tmp_path / "release"))
    assert "my-liver-ct: 2 ingested" in done.output, done.output
    monkeypatch.setenv("SAMATLAS_CARDS", str(tmp_path / "missing"))
    assert cli("datasets").exit_code == 2


def _ingest_all(card, root: Path, store: Path) -> dict:
    return {case.case_id: ingest_case(card, case, store, run_id="test") for case in card.discover(root)}


def test_unmapped_label_values_quarantine_or_read_as_background(tmp_path: Path):
    """A card mapping only value 1 of labels holding 1 and 2: quarantine by default, background on request."""
    release = replica(tmp_path / "release")
    only_liver = {1: {"name": "liver", "anatomy": "liver"}}
    strict = load_yaml_card(write_card(tmp_path, labels=only_liver))
    outcomes = _ingest_all(strict, release, tmp_path / "strict")
    assert not outcomes["liver_001"].ok and outcomes["liver_002"].ok
    assert "label values [2] are not in the card's map [1]" in outcomes["liver_001"].case.reason
    assert "unmapped_labels: background" in outcomes["liver_001"].case.reason

    lenient = load_yaml_card(write_card(tmp_path, labels=only_liver, unmapped_labels="background"))
    assert lenient.subsets[0].unmapped_labels == "background"
    store = tmp_path / "lenient"
    outcomes = _ingest_all(lenient, release, store)
    assert all(o.ok for o in outcomes.values())
    assert {o.target for o in outcomes["liver_001"].objects} == {"liver"}
    stored = zarr.open_group(str(store / "my-liver-ct" / "liver_001"), mode="r")["labels/mask/0"][:]
    np.testing.assert_array_equal(stored, rep.as_lps(rep.blocks([1])))  # value 2's block is background


def test_the_many_values_of_an_atlas_are_summarised(tmp_path: Path):
    from tasks.volume import CaseError, check_label_values

    with pytest.raises(CaseError, match=r"atlas\.nii\.gz: label values \[2, 3, .*, 11\] and 99 more are not"):
        check_label_values(np.arange(111).reshape(1, 1, 111), {1: "x"}, Path("atlas.nii.gz"))


def test_images_and_labels_pair_by_a_pattern_each(tmp_path: Path):
    """``case_001_0000.nii.gz`` pairs with ``case_001_seg.nii.gz`` through image_case_id and label_case_id."""
    root = tmp_path / "release"
    for case, values in LABELS.items():
        rep.write(rep.image(rep.scan(-100)), root / "data" / f"{case}_0000.nii.gz")
        rep.write(rep.image(rep.blocks(values)), root / "data" / f"{case}_seg.nii.gz")
    card = load_yaml_card(write_card(
        tmp_path, images_glob="data/*_0000.nii.gz", labels_glob="data/*_seg.nii.gz", case_id=None,
        image_case_id=r"(?P<case>[^/]+)_0000\.nii\.gz$", label_case_id=r"(?P<case>[^/]+)_seg\.nii\.gz$"))
    cases = list(card.discover(root))
    assert [(c.case_id, c.images[0].name, c.label.name) for c in cases] == [
        (c, f"{c}_0000.nii.gz", f"{c}_seg.nii.gz") for c in LABELS]
    assert all(o.ok for o in _ingest_all(card, root, tmp_path / "store").values())


def test_an_explicit_pair_list(tmp_path: Path):
    """Pairs named one by one; a listed file that is missing quarantines its case, naming the file."""
    root = replica(tmp_path / "release")
    pairs = [{"image": "images/liver_001_0000.nii.gz", "label": "labels/liver_002.nii.gz", "case": "swapped"},
             {"image": "images/liver_002_0000.nii.gz", "label": "labels/liver_001.nii.gz"},
             {"image": "images/liver_003_0000.nii.gz", "label": "labels/liver_003.nii.gz"}]
    card = load_yaml_card(write_card(tmp_path, images_glob=None, labels_glob=None, pairs=pairs))
    outcomes = _ingest_all(card, root, tmp_path / "store")
    assert list(outcomes) == ["swapped", "liver_002", "liver_003"]
    assert {o.target for o in outcomes["swapped"].objects} == {"liver"}  # liver_002's label: value 1 only
    assert not outcomes["liver_003"].ok and "liver_003.nii.gz: file is missing" in outcomes["liver_003"].case.reason
    assert card.layout == "3 listed image/label pairs"


@pytest.mark.parametrize(("changes", "message"), [
    ({"pairs": [{"image": "a", "label": "b"}]}, "give either pairs or images_glob and labels_glob, not both"),
    ({"labels_glob": None}, "images_glob and labels_glob are both needed"),
    ({"unmapped_labels": "ignore"}, r"unmapped_labels: Input should be 'quarantine' or 'background'"),
    ({"label_case_id": r"(\w+)_seg"}, r"label_case_id: Value error, needs a named group"),
])
def test_bad_pairing_fields_name_file_and_field(tmp_path: Path, changes: dict, message: str):
    with pytest.raises(UserCardError, match=rf"bad_card\.yaml: invalid dataset card:\n(.*\n)*\s*.*{message}"):
        load_yaml_card(write_card(tmp_path, **changes))


def test_cli_errors_a_new_user_meets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Before any work: a card without --source names the command that works; evaluate refuses ids the
    catalog lacks and card paths, naming the known ids."""
    from tests.conftest import run_samatlas

    done = run_samatlas(tmp_path, "ingest", EXAMPLE)
    assert done.exit_code == 2 and f"samatlas ingest {EXAMPLE} --source PATH" in done.output.replace("\n", "")
    assert "SAMATLAS_CARDS" in done.output
    for dataset, message in (("nope", "unknown dataset 'nope'; known ids: abdomenct1k"),
                             (str(EXAMPLE), "not a card path"), ("msd", "'msd' has no ingested cases")):
        done = run_samatlas(tmp_path, "evaluate", "--dataset", dataset, "--dry-run")
        flat = done.output.replace("\n", " ")
        assert done.exit_code == 2 and message in flat and "ingested: none yet" in flat, done.output


def test_ingest_fails_when_every_case_is_quarantined_and_prefect_keeps_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Without PREFECT_API_URL the command starts its own temporary server: its notices are not shown."""
    from tests.conftest import run_samatlas

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    card = write_card(tmp_path, labels={3: {"name": "vessel", "anatomy": "liver"}})
    done = run_samatlas(tmp_path / "data", "ingest", card, "--source", replica(tmp_path / "release"))
    assert done.exit_code == 1, done.output
    assert "my-liver-ct: 0 ingested, 0 unchanged, 2 quarantined" in done.output
    assert "my-liver-ct: no case could be ingested" in done.output
    assert "temporary server" not in done.output and "dedicated Prefect server" not in done.output
