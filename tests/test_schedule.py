"""The runner's schedule (grader/schedule.py): pure logic, no processes."""

from __future__ import annotations

from grader import schedule
from grader.api import Check, CheckOutcome, Registry, passed
from grader.schedule import plan


async def _noop(ctx: object) -> CheckOutcome:
    return passed("ok")


def _checks(*specs: tuple[str, dict]) -> Registry:
    return Registry(Check(check_id, check_id, "basic", _noop, **options) for check_id, options in specs)


def test_isolated_checks_run_in_the_background_and_timing_checks_last():
    checks = _checks(
        ("a", {}),
        ("tests", {"isolated": True, "requires": ("a",)}),
        ("stampede", {"timing": True}),
        ("b", {}),
        ("lint", {"isolated": True}),
    )
    phases = plan(list(checks), checks)
    assert phases.foreground == ["a", "b"]
    assert phases.background == ["tests", "lint"]
    assert phases.last == ["stampede"]


def test_a_check_never_runs_before_what_it_requires():
    checks = _checks(
        ("timed", {"timing": True}),
        ("after_timed", {"requires": ("timed",)}),
        ("after_that", {"requires": ("after_timed",), "isolated": True}),
        ("iso", {"isolated": True}),
        ("after_iso", {"requires": ("iso",)}),
        ("plain", {}),
    )
    phases = plan(list(checks), checks)
    assert phases.foreground == ["plain"]
    assert phases.background == ["iso"]
    # Each step keeps the rubric's order, which already puts every requirement first.
    assert phases.last == ["timed", "after_timed", "after_that"]
    # What requires an isolated check waits for the whole background.
    assert phases.after_background == ["after_iso"]
    assert sorted(phases.order) == sorted(checks)


def test_a_check_that_requires_the_background_and_a_timing_check_runs_after_both():
    checks = _checks(
        ("iso", {"isolated": True}),
        ("timed", {"timing": True, "requires": ("iso",)}),
        ("after_timed", {"requires": ("timed",)}),
        ("plain", {}),
    )
    phases = plan(list(checks), checks)
    assert phases.foreground == ["plain"]
    assert phases.background == ["iso"]
    assert phases.last == []
    assert phases.after_background == ["timed", "after_timed"]


def test_a_requirement_outside_the_rubric_does_not_move_a_check():
    checks = _checks(("iso", {"isolated": True}), ("plain", {"requires": ("iso",)}))
    assert plan(["plain"], checks).foreground == ["plain"]


def test_the_catalogue_runs_its_timing_checks_last_and_its_own_tests_beside_the_rest():
    catalogue = Registry.load(plugins=False)
    order = [check_id for check_id in catalogue if check_id != "app.starts"]
    phases = plan(order, catalogue)
    assert set(phases.last) == {"cache.stampede", "ratelimit.atomic_under_load", "async.event_loop"}
    assert set(phases.background) == {"quality.lint", "quality.tests", "quality.coverage"}
    assert phases.after_background == []


def test_the_background_is_dealt_into_lanes_in_order():
    # Round-robin, in the rubric's order.
    lanes = schedule.Plan(foreground=["a"], background=["lint", "tests", "coverage"], last=["t"])
    assert lanes.lanes(2) == [["lint", "coverage"], ["tests"]]
    assert lanes.lanes(1) == lanes.lanes(0) == [["lint", "tests", "coverage"]]
