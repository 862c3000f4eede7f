"""In what order the runner runs the checks, and which run beside the others.

Two phases:
1. The ordinary checks, one after another in the rubric's order, while the isolated ones (they need neither the
   app nor its Redis: the submission's own tests, the linter) run in the background, one after another in each of
   its lanes (`Plan.lanes`; the runner gives each lane a Redis of its own).
2. Once the background is done, the timing checks (their verdict rests on time or concurrency), one at a time
   with nothing running beside them, so that no other work of the grading run weighs on what they measure.

A check always runs after the checks it requires: one that requires a timing check moves to phase 2 with it, and
an ordinary check that requires an isolated one waits for phase 2 as well. Reports keep the rubric's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grader.checking import Check


@dataclass(frozen=True)
class Plan:
    foreground: list[str]  # phase 1, in order
    background: list[str]  # phase 1, in order, beside the foreground
    last: list[str]  # phase 2, in order, alone

    @property
    def order(self) -> list[str]:
        return [*self.foreground, *self.background, *self.last]

    def lanes(self, count: int) -> list[list[str]]:
        """The background dealt into `count` lanes that run beside each other, each in the rubric's order and
        with a Redis of its own: round-robin, so two runs of the submission's suite (its tests, its coverage),
        the longest of them, do not wait for each other. A check that requires one in another lane waits for it.
        """
        count = max(1, count)
        return [self.background[i::count] for i in range(count)]


def plan(order: list[str], checks: Mapping[str, Check]) -> Plan:
    """Split the rubric's check ids (`order`) into the two phases."""
    last: set[str] = set()
    changed = True
    while changed:  # a fixed point: moving one check to phase 2 may move the checks that require it
        changed = False
        for check_id in order:
            check = checks[check_id]
            if check_id in last:
                continue
            if (
                check.timing
                or any(needed in last for needed in check.requires)
                or (not check.isolated and any(checks[n].isolated for n in check.requires if n in order))
            ):
                last.add(check_id)
                changed = True
    return Plan(
        foreground=[c for c in order if c not in last and not checks[c].isolated],
        background=[c for c in order if c not in last and checks[c].isolated],
        last=[c for c in order if c in last],
    )
