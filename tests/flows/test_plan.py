"""Planning from the catalog alone: objects x model x protocols minus results (synthetic rows)."""

from __future__ import annotations

from pathlib import Path

from catalog.writer import write_rows
from flows.plan import plan_units
from tasks.protocols import get_protocol


def _objects(tmp_path: Path, case_id: str, slices: range, status: str = "ok", area: int = 50) -> None:
    write_rows(tmp_path, "cases", [{
        "dataset": "d", "case_id": case_id, "subset": "default", "status": status, "reason": None,
        "zarr_path": f"/store/d/{case_id}", "modality": "ct", "anatomy": "chest",
    }], f"d/{case_id}")
    write_rows(tmp_path, "objects", [{
        "dataset": "d", "case_id": case_id, "subset": "default", "slice_index": z, "label": 1, "target": "t",
        "area_px": area, "modality": "ct", "anatomy": "lung",
    } for z in slices], f"d/{case_id}")


def _done(tmp_path: Path, case_id: str, z: int, protocol: str = "medsam-box", sha: str = "abc") -> None:
    write_rows(tmp_path, "results", [{
        "dataset": "d", "case_id": case_id, "slice_index": z, "label": 1, "target": "t", "model": "m",
        "model_sha256": sha, "protocol": protocol, "step": 1, "modality": "ct", "anatomy": "lung",
    }], f"d/{case_id}/{z}/{protocol}/{sha}")


BOX = {"medsam-box": get_protocol("medsam-box")}


def test_plans_what_results_lack_for_this_checkpoint(tmp_path: Path):
    _objects(tmp_path, "a", range(5))
    _objects(tmp_path, "b", range(3), status="quarantined")
    _done(tmp_path, "a", 0)
    _done(tmp_path, "a", 1, sha="other-checkpoint")
    units = plan_units(tmp_path, "m", "abc", BOX)
    assert [(u.case_id, [o.slice_index for o in u.objects]) for u in units] == [("a", [1, 2, 3, 4])]
    assert units[0].zarr_path == "/store/d/a" and units[0].slices == 4


def test_a_new_protocol_plans_only_itself(tmp_path: Path):
    _objects(tmp_path, "a", range(2))
    for z in range(2):
        _done(tmp_path, "a", z)
    protocols = {**BOX, "sammed2d": get_protocol("sammed2d")}
    (unit,) = plan_units(tmp_path, "m", "abc", protocols)
    assert {o.protocols for o in unit.objects} == {("sammed2d",)}


def test_slice_spread_is_stable_once_partly_done(tmp_path: Path):
    _objects(tmp_path, "a", range(10))
    first = plan_units(tmp_path, "m", "abc", BOX, max_slices_per_case=3)
    chosen = [o.slice_index for o in first[0].objects]
    assert chosen == [0, 4, 9]
    _done(tmp_path, "a", 4)
    assert [o.slice_index for o in plan_units(tmp_path, "m", "abc", BOX, max_slices_per_case=3)[0].objects] == [0, 9]


def test_small_objects_and_unselected_cases_are_left_out(tmp_path: Path):
    _objects(tmp_path, "a", range(2), area=5)
    _objects(tmp_path, "b", range(2))
    _objects(tmp_path, "c", range(2))
    assert [u.case_id for u in plan_units(tmp_path, "m", "abc", BOX)] == ["b", "c"]
    assert [u.case_id for u in plan_units(tmp_path, "m", "abc", BOX, cases=["b"])] == ["b"]
    assert plan_units(tmp_path, "m", "abc", BOX, datasets=["other"]) == []


def test_unit_keys_are_deterministic(tmp_path: Path):
    _objects(tmp_path, "a", range(3))
    one, two = plan_units(tmp_path, "m", "abc", BOX), plan_units(tmp_path, "m", "abc", BOX)
    names = ["medsam-box"]
    assert one[0].key("m", "abc", names) == two[0].key("m", "abc", names) != one[0].key("m", "abd", names)
    # Other options (here the click count) record other protocol names: their rows go to another file.
    assert one[0].key("m", "abc", ["mazurowski-clicks9"]) != one[0].key("m", "abc", ["mazurowski-clicks5"])


def test_a_large_case_is_split_into_slice_ranges_that_never_share_a_slice(tmp_path: Path):
    from flows.plan import SLICES_PER_UNIT

    _objects(tmp_path, "a", range(SLICES_PER_UNIT * 2 + 5))
    units = plan_units(tmp_path, "m", "abc", BOX)
    assert [u.slices for u in units] == [SLICES_PER_UNIT, SLICES_PER_UNIT, 5]
    slices = [{o.slice_index for o in u.objects} for u in units]
    assert set.union(*slices) == set(range(SLICES_PER_UNIT * 2 + 5)) and sum(map(len, slices)) == SLICES_PER_UNIT * 2 + 5
    assert len({u.key("m", "abc", ["medsam-box"]) for u in units}) == 3


def test_unknown_model_or_protocol_stops_before_any_work(tmp_path: Path):
    from tests.conftest import run_samatlas

    for args, message in ((("--protocol", "nope"), "unknown protocol 'nope'"), (("--model", "sam_vit_x"), "unknown model")):
        done = run_samatlas(tmp_path, "evaluate", *args, "--dry-run")
        assert done.exit_code == 2 and message in done.output and "Traceback" not in done.output
