"""What planning a protocol from its goals alone (no `optimization:` terms) cannot honour.

Such a protocol is the physicist's whole statement of intent: `specc plan` derives the program
from its prescription and goals (`specc.compile.derive`) and judges the plan by the same goals.
The loader finds here, every case at once and located in the files, what no such plan can honour
(`Protocol.derivation_refusals`); planning refuses them all together, in file order, and
`specc validate` says them as notes:

- a dose level whose target has no goal: nothing judges its coverage (a plan may leave the
  target's D95% at 80% of the level, and every goal passes, `--strict` too);
- a goal that no derived term can aim for: a hot spot or a cold spot wanted ("Max >= X",
  "Min <= X": not convex), a lower bound on the mean of an EQD2 or BED, a goal in EQD2 or BED on a
  composite (the prior dose moves its physical equivalent voxel by voxel), a goal on this course
  alone (the terms see the composite). The messages are derivation's own.

None of this makes the protocol invalid: `specc check` judges another system's dose by such goals
(a re-irradiation's cumulative EQD2, say), and a protocol with terms of its own plans them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from specc.protocol.diagnostics import Issue, located_goals

if TYPE_CHECKING:
    from specc.protocol.goals import Goal
    from specc.protocol.models import Protocol

_BY_HAND = "write an `optimization:` section by hand (the goal is still judged on the plan)"


def goals_only_issues(protocol: Protocol) -> Iterator[Issue]:
    """The issues above, for a protocol without optimization terms (none otherwise)."""
    if protocol.optimization is not None and protocol.optimization.terms:
        return
    with_goals = {goal.structure for goal in protocol.goals}
    targets = [level.target for level in protocol.prescription.levels]
    for index, target in enumerate(targets if with_goals else []):  # no goal at all: "goals: no goals" says so
        if target in protocol.structures and target not in with_goals and target not in targets[:index]:
            yield Issue(
                ("prescription", "levels", index),
                f'{target} has a dose level but no goal: add its coverage goal, e.g. "D95% >= 100%" (without '
                "`optimization:` terms the plan is derived from the goals and judged by them alone, so nothing "
                f"would judge {target}'s coverage)",
            )
    composite = protocol.prescription.prior is not None
    for loc, goal in located_goals(protocol.goals):
        reason = _underivable(goal, composite)
        if reason is not None:
            yield Issue(loc, f"goal {goal.text!r} on {goal.structure} {reason}")


def _underivable(goal: Goal, composite: bool) -> str | None:
    """Why no derived term measures `goal` (`composite`: the protocol has a prior course), or None."""
    if goal.course == "this":
        return (f"is on this course alone, and the terms see the composite (prior + this plan): no derived term "
                f"measures it; {_BY_HAND}")
    why = None
    if goal.isoeffective and composite:
        why = "on a composite the prior course's dose changes its physical equivalent from voxel to voxel"
    elif goal.isoeffective and goal.metric.quantity == "Mean" and goal.is_lower_bound:
        why = "a lower bound on the mean of an isoeffective dose (a convex quadratic of the dose) is not convex"
    if why is not None:
        return f"is in {goal.quantity}, and {why}: no derived term measures it; {_BY_HAND}"
    wanted = None
    if goal.metric.quantity == "Max" and goal.is_lower_bound:
        wanted = "a hot spot (a maximum at least some dose)"
    elif goal.metric.quantity == "Min" and not goal.is_lower_bound:
        wanted = "a cold spot (a minimum at most some dose)"
    if wanted is None:
        return None
    return f"asks for {wanted}, which no convex program can aim for: remove the goal, or {_BY_HAND}"
