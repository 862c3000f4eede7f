"""In what order the runner runs the checks, and which run beside the others.

1. The ordinary checks, one after another in the rubric's order.
2. Then the timing checks (their verdict rests on time or concurrency) and the checks that require them; no other
   grading's timing check runs beside a timing check, for the whole check or, declared lock="measuring", while it
   measures (grader/machinelock.py).
Beside both, from the start: the isolated checks (they need neither the app nor its Redis: the submission's own
tests, the linter), one after another in each of the background's lanes (`Plan.lanes`; the runner gives each lane
a Redis of its own). Their commands run at a low processor priority, so they take only what the app, Redis
and the grader leave idle and cannot weigh on what the timing checks measure.
3. Last, once the background is done, the checks that require one of its checks (none of the built-in ones do),
   a timing one among them again under the machine lock.

A check always runs after the checks it requires. Reports keep the rubric's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from grader.checking import Check


@dataclass(frozen=True)
class Plan:
    foreground: list[str]  # step 1, in order
    background: list[str]  # beside steps 1 and 2, in order
    last: list[str]  # step 2, in order, each timing check under the machine lock
    after_background: list[str] = field(default_factory=list)  # step 3, in order

    @property
    def order(self) -> list[str]:
        return [*self.foreground, *self.background, *self.last, *self.after_background]

    def lanes(self, count: int) -> list[list[str]]:
        """The background dealt into `count` lanes that run beside each other, each in the rubric's order and
        with a Redis of its own: round-robin. A check that requires one in another lane waits for it.
        """
        count = max(1, count)
        return [self.background[i::count] for i in range(count)]


def _closure(order: list[str], checks: Mapping[str, Check], starts: Callable[[Check], bool]) -> set[str]:
    """The checks of `order` for which `starts` holds, and every check that requires one of them (a fixed point:
    moving one check may move the checks that require it)."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for check_id in order:
            check = checks[check_id]
            if check_id not in found and (starts(check) or any(needed in found for needed in check.requires)):
                found.add(check_id)
                changed = True
    return found


def plan(order: list[str], checks: Mapping[str, Check]) -> Plan:
    """Split the rubric's check ids (`order`) into the steps above."""
    in_order = set(order)
    after = _closure(order, checks, lambda check: not check.isolated and any(
        checks[needed].isolated for needed in check.requires if needed in in_order))
    last = _closure(order, checks, lambda check: check.timing) - after
    return Plan(
        foreground=[c for c in order if c not in last | after and not checks[c].isolated],
        background=[c for c in order if c not in last | after and checks[c].isolated],
        last=[c for c in order if c in last],
        after_background=[c for c in order if c in after],
    )
