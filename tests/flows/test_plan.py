"""Planning from the catalog alone: objects x model x specs minus result keys (synthetic rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.plan import plan_units, unit_objects
from flows.unit_cost import PIPELINE_S_PER_PROMPT, UNIT_TARGET_S, ModelSpeed, model_speed
from tasks.protocols import get_protocol
from tests.synthetic_rows import write_case, write_done

BOX = get_protocol("medsam-box").specs
(BOX_SPEC,) = BOX


def slices(plan) -> list[tuple[str, list[int]]]:
    return [(u.case_id, list(u.slices)) for u in plan.units]


def test_plans_what_results_lack_for_this_checkpoint(tmp_path: Path):
    write_case(tmp_path, "a", range(5))
    write_case(tmp_path, "b", range(3), status="quarantined")
    write_done(tmp_path, "a", 0, BOX_SPEC)
    write_done(tmp_path, "a", 1, BOX_SPEC, sha="other-checkpoint")
    plan = plan_units(tmp_path, "m", "abc", BOX)
    assert slices(plan) == [("a", [1, 2, 3, 4])]
    assert plan.units[0].zarr_path == "/store/d/a" and plan.units[0].spec_ids == (BOX_SPEC.id,)
    (d,) = plan.datasets
    assert (d.units, d.objects, d.slices, d.encoder_calls, d.pairs_missing, d.pairs_done) == (1, 4, 4, 4, 4, 1)


def test_a_new_protocol_plans_only_itself(tmp_path: Path):
    write_case(tmp_path, "a", range(2))
    for z in range(2):
        write_done(tmp_path, "a", z, BOX_SPEC)
    sammed = get_protocol("sammed2d").specs
    (unit,) = plan_units(tmp_path, "m", "abc", [*BOX, *sammed]).units
    assert set(unit.spec_ids) == {s.id for s in sammed}
    objects = unit_objects(tmp_path, unit, "m", "abc", [*BOX, *sammed])
    assert [(o.slice_index, set(o.spec_ids)) for o in objects] == [(z, {s.id for s in sammed}) for z in range(2)]


def test_an_option_change_plans_only_the_specs_it_changes(tmp_path: Path):
    """--clicks 3 done; --clicks 2 plans only the two click sequences (the modes are done), and
    --clicks 3 again plans nothing."""
    write_case(tmp_path, "a", range(1))
    for spec in get_protocol("mazurowski", clicks=3).specs:
        write_done(tmp_path, "a", 0, spec)
    assert plan_units(tmp_path, "m", "abc", get_protocol("mazurowski", clicks=3).specs).units == []
    two = get_protocol("mazurowski", clicks=2).specs
    (unit,) = plan_units(tmp_path, "m", "abc", two).units
    assert {s.name for s in two if s.id in unit.spec_ids} == {"mazurowski-clicks", "mazurowski-clicks-oracle"}


def test_partial_steps_are_not_done(tmp_path: Path):
    """An (object, spec) pair is done only when every step's key is there."""
    from catalog import tables
    from records.rows import ResultRow
    from tests.synthetic_rows import result_row

    write_case(tmp_path, "a", range(1))
    spec = get_protocol("microsam-iterative", iterations=3).specs[0]
    tables.insert_missing(tmp_path, [result_row("a", 0, spec, step=s) for s in (1, 2)], ResultRow)
    assert slices(plan_units(tmp_path, "m", "abc", [spec])) == [("a", [0])]


def test_slice_spread_is_stable_once_partly_done(tmp_path: Path):
    write_case(tmp_path, "a", range(10))
    first = plan_units(tmp_path, "m", "abc", BOX, max_slices_per_case=3)
    assert slices(first) == [("a", [0, 5, 9])]  # round(i * 9 / 2) for i = 0, 1, 2 (4.5 rounds up)
    write_done(tmp_path, "a", 5, BOX_SPEC)
    assert slices(plan_units(tmp_path, "m", "abc", BOX, max_slices_per_case=3)) == [("a", [0, 9])]
    assert slices(plan_units(tmp_path, "m", "abc", BOX, max_slices_per_case=1)) == [("a", [0])]


def test_small_objects_and_unselected_cases_are_left_out(tmp_path: Path):
    write_case(tmp_path, "a", range(2), area=5)
    write_case(tmp_path, "b", range(2))
    write_case(tmp_path, "c", range(2))
    assert [u.case_id for u in plan_units(tmp_path, "m", "abc", BOX).units] == ["b", "c"]
    assert [u.case_id for u in plan_units(tmp_path, "m", "abc", BOX, cases=["b"]).units] == ["b"]
    assert plan_units(tmp_path, "m", "abc", BOX, datasets=["other"]).units == []


def test_a_case_is_cut_into_units_of_about_the_target_seconds_that_never_share_a_slice(tmp_path: Path):
    write_case(tmp_path, "a", range(20), labels=(1, 2))
    # a slice: one encoder pass (1 s less the pipeline's share) + 2 objects x 1 box step x (0 s decoder + the pipeline's share) = 1 s
    speed = ModelSpeed(1.0 - 2 * PIPELINE_S_PER_PROMPT, 0.0, "test")
    units = plan_units(tmp_path, "m", "abc", BOX, speed=speed, target_s=4.6).units
    # a unit starts where the cost before it passes a multiple of 4.6 s: after 0, 5, 10, 14 and 19 s
    assert [len(u.slices) for u in units] == [5, 5, 4, 5, 1]
    assert [u.objects for u in units] == [10, 10, 8, 10, 2]
    np.testing.assert_allclose([u.cost_s for u in units], [5, 5, 4, 5, 1])
    covered = [set(u.slices) for u in units]
    assert set.union(*covered) == set(range(20)) and sum(map(len, covered)) == 20
    assert all(max(a.slices) < min(b.slices) for a, b in zip(units, units[1:]))  # consecutive ranges


def test_units_hold_tens_of_seconds_whatever_the_model_and_device(tmp_path: Path):
    write_case(tmp_path, "a", range(200), labels=(1, 2))
    clicks = get_protocol("mazurowski", clicks=3).specs  # 3 prompts per object instead of 1

    def sizes(model: str, device: str, specs=BOX) -> list[int]:
        return [len(u.slices) for u in plan_units(tmp_path, model, "abc", specs, speed=model_speed(model, device)).units]

    lite_cpu = sizes("litemedsam", "cpu")
    assert sizes("sam_vit_b", "cpu") == [1] * 200  # 30 s a slice: a slice is a unit
    assert 40 <= lite_cpu[0] <= 80 and sum(lite_cpu) == 200  # ~0.5 s a slice
    assert sizes("litemedsam", "cpu", clicks)[0] < lite_cpu[0]  # more prompts per slice, fewer slices
    assert sizes("litemedsam", "cuda") == [200]  # milliseconds a slice: the case is one unit
    for model, device in (("litemedsam", "cpu"), ("sam_vit_b", "cpu"), ("sam2.1_hiera_t", "cpu")):
        speed = model_speed(model, device)
        slice_s = speed.encode_s + 2 * speed.prompt_s
        units = plan_units(tmp_path, model, "abc", BOX, speed=speed).units
        assert len(units) > 2
        # every unit but the last (what is left) is within one slice of the target
        assert all(UNIT_TARGET_S - slice_s < u.cost_s < UNIT_TARGET_S + slice_s for u in units[:-1])
    with pytest.raises(ValueError, match="target seconds must be positive"):
        plan_units(tmp_path, "m", "abc", BOX, target_s=0)


def test_unknown_model_or_protocol_stops_before_any_work(tmp_path: Path):
    from tests.conftest import run_samatlas

    for args, message in ((("--protocol", "nope"), "unknown protocol 'nope'"), (("--model", "sam_vit_x"), "unknown model")):
        done = run_samatlas(tmp_path, "evaluate", *args, "--dry-run")
        assert done.exit_code == 2 and message in done.output and "Traceback" not in done.output
