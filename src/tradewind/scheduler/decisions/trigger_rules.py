"""Trigger rules: may a task run, judged only from the states of its direct upstream tasks?

:func:`evaluate_trigger_rule` takes the counts of a task instance's direct upstream task
instances by state (:class:`UpstreamStates`; every instance of a mapped upstream counts) and
returns a :class:`TriggerDecision`: ``RUN``, ``WAIT``, or a state to write at once (``SKIP``,
``UPSTREAM_FAILED``), possibly before every upstream has finished. The rules follow Airflow's
table exactly:

============================  ======================================  =====================================
rule                          runs when                               set at once
============================  ======================================  =====================================
all_success                   every upstream succeeded                a failure -> upstream_failed;
                                                                      else a skip -> skipped
all_failed                    every upstream failed/upstream_failed   a success or skip -> skipped
all_done                      every upstream finished                 —
all_done_min_one_success      no skip, all done, one success          a skip -> skipped; all done and
                                                                      no success -> upstream_failed
all_done_setup_success        all done and one setup succeeded        all setups skipped -> skipped;
                              (when there are setups)                 no setup succeeded -> upstream_failed
one_success                   one upstream succeeded (no waiting)     all done, all skipped -> skipped;
                                                                      all done, no success -> upstream_failed
one_failed                    one failed/upstream_failed              all done, none failed -> skipped
one_done                      one succeeded or failed                 all done, neither -> skipped
none_failed                   every upstream succeeded or skipped     a failure -> upstream_failed
none_failed_min_one_success   none failed, all done, one success      a failure -> upstream_failed; all
                                                                      skipped -> skipped; all done and no
                                                                      success -> upstream_failed
none_skipped                  all done and none skipped               a skip -> skipped
all_skipped                   every upstream skipped                  a success or failure -> skipped
always                        at once                                 —
============================  ======================================  =====================================

A *removed* upstream (its task left the DAG, or its map index is beyond the new length) counts
as finished but as neither success, failure nor skip; rules that need *every* upstream in some
state ignore it. A task with no upstream task may always run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions._text import plural
from tradewind.sdk.trigger_rule import TriggerRule
from tradewind.state import TaskState

__all__ = ["TriggerAction", "TriggerDecision", "UpstreamStates", "evaluate_trigger_rule"]


class TriggerAction(StrEnum):
    """What a trigger rule says about a waiting task instance."""

    #: The rule is met: the task may be scheduled (other checks permitting).
    RUN = "run"
    #: Not decided yet: some upstream task that matters has not finished.
    WAIT = "wait"
    #: Mark the task instance skipped now.
    SKIP = "skip"
    #: Mark the task instance upstream_failed now.
    UPSTREAM_FAILED = "upstream_failed"


@dataclass(frozen=True)
class UpstreamStates:
    """How many direct upstream task instances are in each finished state.

    ``total`` counts every relevant upstream task instance, finished or not (each instance of a
    mapped upstream separately). Build it with :meth:`from_states` from a list of states.
    """

    success: int = 0
    failed: int = 0
    skipped: int = 0
    upstream_failed: int = 0
    removed: int = 0
    total: int = 0

    def __post_init__(self) -> None:
        counts = (self.success, self.failed, self.skipped, self.upstream_failed, self.removed)
        if min(*counts, self.total) < 0 or sum(counts) > self.total:
            raise InvalidArgumentError(
                f"inconsistent upstream counts {self!r}: counts must be >= 0 and the finished "
                "ones cannot add up to more than total",
                owner="UpstreamStates",
            )

    @classmethod
    def from_states(cls, states: Iterable[TaskState | str]) -> UpstreamStates:
        """Count ``states`` (one per upstream task instance)."""
        counts = dict.fromkeys(TaskState, 0)
        total = 0
        for state in states:
            counts[TaskState(state)] += 1
            total += 1
        return cls(
            success=counts[TaskState.SUCCESS],
            failed=counts[TaskState.FAILED],
            skipped=counts[TaskState.SKIPPED],
            upstream_failed=counts[TaskState.UPSTREAM_FAILED],
            removed=counts[TaskState.REMOVED],
            total=total,
        )

    @property
    def done(self) -> int:
        """Upstream task instances in a finished state."""
        return self.success + self.failed + self.skipped + self.upstream_failed + self.removed

    @property
    def unfinished(self) -> int:
        """Upstream task instances not finished yet."""
        return self.total - self.done

    @property
    def failures(self) -> int:
        """Upstream task instances that failed or are upstream_failed."""
        return self.failed + self.upstream_failed

    @property
    def counted(self) -> int:
        """Upstream task instances that count for "every upstream ..." (all but removed)."""
        return self.total - self.removed

    @property
    def all_done(self) -> bool:
        """Whether every upstream task instance has finished."""
        return self.done >= self.total

    def describe(self) -> str:
        """``"2 success, 1 failed, 1 unfinished"`` (zero counts left out)."""
        parts = [
            f"{count} {name}"
            for name, count in (
                ("success", self.success),
                ("failed", self.failed),
                ("upstream_failed", self.upstream_failed),
                ("skipped", self.skipped),
                ("removed", self.removed),
                ("unfinished", self.unfinished),
            )
            if count
        ]
        return ", ".join(parts) if parts else "no upstream tasks"


@dataclass(frozen=True)
class TriggerDecision:
    """The verdict of a trigger rule and the reason, for logs, the UI and ``tasks why``."""

    action: TriggerAction
    reason: str

    @property
    def is_final(self) -> bool:
        """Whether the rule has decided (anything but WAIT)."""
        return self.action is not TriggerAction.WAIT


def _run(rule: TriggerRule, up: UpstreamStates, detail: str | None = None) -> TriggerDecision:
    text = detail or up.describe()
    return TriggerDecision(TriggerAction.RUN, f"trigger rule {rule} met ({text})")


def _wait(rule: TriggerRule, up: UpstreamStates, what: str | None = None) -> TriggerDecision:
    waiting = f"waiting for {up.unfinished} of {plural(up.total, 'upstream task')}"
    if what:
        waiting = f"{what} ({up.unfinished} of {plural(up.total, 'upstream task')} unfinished)"
    return TriggerDecision(TriggerAction.WAIT, f"{waiting}; trigger rule {rule}")


def _skip(rule: TriggerRule, why: str) -> TriggerDecision:
    return TriggerDecision(TriggerAction.SKIP, f"skipped: {why}; trigger rule {rule}")


def _upstream_failed(rule: TriggerRule, why: str) -> TriggerDecision:
    return TriggerDecision(
        TriggerAction.UPSTREAM_FAILED, f"upstream_failed: {why}; trigger rule {rule}"
    )


def _n_upstream(count: int, verb: str) -> str:
    return f"{plural(count, 'upstream task')} {verb}"


def _failed_text(up: UpstreamStates) -> str:
    return _n_upstream(up.failures, "failed or upstream_failed")


def _coerce_rule(rule: TriggerRule | str) -> TriggerRule:
    if isinstance(rule, TriggerRule):
        return rule
    if TriggerRule.is_valid(rule):
        return TriggerRule(rule)
    raise InvalidArgumentError(
        f"unknown trigger rule {rule!r}; expected one of {', '.join(sorted(TriggerRule))}",
        argument="trigger_rule",
    )


def evaluate_trigger_rule(
    rule: TriggerRule | str,
    upstream: UpstreamStates,
    *,
    setup_upstream: UpstreamStates | None = None,
) -> TriggerDecision:
    """Decide what ``rule`` says given the states of the direct upstream task instances.

    Args:
        rule: the task's trigger rule.
        upstream: counts of every relevant direct upstream task instance by state.
        setup_upstream: for ``all_done_setup_success``, the counts of the upstream *setup*
            task instances (None or an empty count when the task has no setup upstream).

    Returns:
        RUN, WAIT, SKIP or UPSTREAM_FAILED with a reason such as
        ``"waiting for 2 of 3 upstream tasks; trigger rule all_success"``. Once every upstream
        task instance has finished the answer is never WAIT.

    Raises:
        InvalidArgumentError: ``rule`` names no trigger rule.
    """
    rule = _coerce_rule(rule)
    up = upstream
    if rule is TriggerRule.ALWAYS:
        return TriggerDecision(TriggerAction.RUN, "trigger rule always: runs without waiting")
    if up.total == 0:
        return TriggerDecision(TriggerAction.RUN, f"no upstream tasks; trigger rule {rule} met")
    if rule is TriggerRule.ALL_DONE_SETUP_SUCCESS:
        return _all_done_setup_success(rule, up, setup_upstream)
    return _HANDLERS[rule](rule, up)


def _all_success(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.failures:
        return _upstream_failed(rule, _failed_text(up))
    if up.skipped:
        return _skip(rule, _n_upstream(up.skipped, "skipped"))
    if up.success >= up.counted:
        return _run(rule, up)
    return _wait(rule, up)


def _all_failed(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.success or up.skipped:
        return _skip(rule, _n_upstream(up.success + up.skipped, "succeeded or skipped"))
    if up.failures >= up.counted:
        return _run(rule, up)
    return _wait(rule, up)


def _all_done(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    return _run(rule, up) if up.all_done else _wait(rule, up)


def _all_done_min_one_success(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.skipped:
        return _skip(rule, _n_upstream(up.skipped, "skipped"))
    if not up.all_done:
        return _wait(rule, up)
    if up.success:
        return _run(rule, up)
    return _upstream_failed(rule, "every upstream task finished and none succeeded")


def _all_done_setup_success(
    rule: TriggerRule, up: UpstreamStates, setups: UpstreamStates | None
) -> TriggerDecision:
    if not up.all_done:
        return _wait(rule, up)
    if setups is None or setups.total == 0:
        return _run(rule, up, f"{up.describe()}; no setup tasks")
    if not setups.all_done:
        return _wait(rule, setups, "waiting for the upstream setup tasks")
    if setups.skipped >= setups.total:
        return _skip(rule, f"all {plural(setups.total, 'upstream setup task')} skipped")
    if setups.success == 0:
        return _upstream_failed(rule, "no upstream setup task succeeded")
    return _run(
        rule, up, f"{up.describe()}; {setups.success} of {setups.total} setup tasks succeeded"
    )


def _one_success(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.success:
        return _run(rule, up, _n_upstream(up.success, "succeeded"))
    if not up.all_done:
        return _wait(rule, up, "waiting for an upstream task to succeed")
    if up.counted and up.skipped >= up.counted:
        return _skip(rule, "every upstream task was skipped")
    return _upstream_failed(rule, "every upstream task finished and none succeeded")


def _one_failed(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.failures:
        return _run(rule, up, _failed_text(up))
    if not up.all_done:
        return _wait(rule, up, "waiting for an upstream task to fail")
    return _skip(rule, "every upstream task finished and none failed")


def _one_done(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.success or up.failed:
        return _run(rule, up, _n_upstream(up.success + up.failed, "succeeded or failed"))
    if not up.all_done:
        return _wait(rule, up, "waiting for an upstream task to succeed or fail")
    return _skip(rule, "every upstream task finished and none succeeded or failed")


def _none_failed(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.failures:
        return _upstream_failed(rule, _failed_text(up))
    if up.success + up.skipped >= up.counted:
        return _run(rule, up)
    return _wait(rule, up)


def _none_failed_min_one_success(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.failures:
        return _upstream_failed(rule, _failed_text(up))
    if up.counted and up.skipped >= up.counted:
        return _skip(rule, "every upstream task was skipped")
    if not up.all_done:
        return _wait(rule, up)
    if up.success:
        return _run(rule, up)
    return _upstream_failed(rule, "every upstream task finished and none succeeded")


def _none_skipped(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.skipped:
        return _skip(rule, _n_upstream(up.skipped, "skipped"))
    return _run(rule, up) if up.all_done else _wait(rule, up)


def _all_skipped(rule: TriggerRule, up: UpstreamStates) -> TriggerDecision:
    if up.success or up.failures:
        return _skip(rule, _n_upstream(up.success + up.failures, "did not skip"))
    if up.skipped >= up.counted:
        return _run(rule, up)
    return _wait(rule, up)


_HANDLERS = {
    TriggerRule.ALL_SUCCESS: _all_success,
    TriggerRule.ALL_FAILED: _all_failed,
    TriggerRule.ALL_DONE: _all_done,
    TriggerRule.ALL_DONE_MIN_ONE_SUCCESS: _all_done_min_one_success,
    TriggerRule.ONE_SUCCESS: _one_success,
    TriggerRule.ONE_FAILED: _one_failed,
    TriggerRule.ONE_DONE: _one_done,
    TriggerRule.NONE_FAILED: _none_failed,
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: _none_failed_min_one_success,
    TriggerRule.NONE_SKIPPED: _none_skipped,
    TriggerRule.ALL_SKIPPED: _all_skipped,
}
