"""Trigger rules as a pure function: every rule, every auto-set state, and their properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions import (
    TriggerAction,
    UpstreamStates,
    evaluate_trigger_rule,
)
from tradewind.sdk.trigger_rule import TriggerRule
from tradewind.state import TaskState

TR = TriggerRule
RUN, WAIT, SKIP, UF = (
    TriggerAction.RUN,
    TriggerAction.WAIT,
    TriggerAction.SKIP,
    TriggerAction.UPSTREAM_FAILED,
)

# One letter per upstream task instance: S success, F failed, K skipped, U upstream_failed,
# R removed, . unfinished (running).
LETTERS = {
    "S": TaskState.SUCCESS,
    "F": TaskState.FAILED,
    "K": TaskState.SKIPPED,
    "U": TaskState.UPSTREAM_FAILED,
    "R": TaskState.REMOVED,
    ".": TaskState.RUNNING,
}


def ups(text: str) -> UpstreamStates:
    return UpstreamStates.from_states(LETTERS[c] for c in text)


CASES: list[tuple[TriggerRule, str, TriggerAction]] = [
    # all_success
    (TR.ALL_SUCCESS, "", RUN),
    (TR.ALL_SUCCESS, "SSS", RUN),
    (TR.ALL_SUCCESS, "SS.", WAIT),
    (TR.ALL_SUCCESS, "SF.", UF),
    (TR.ALL_SUCCESS, "SU.", UF),
    (TR.ALL_SUCCESS, "SK.", SKIP),
    (TR.ALL_SUCCESS, "SKF", UF),
    (TR.ALL_SUCCESS, "SSR", RUN),
    (TR.ALL_SUCCESS, "R", RUN),
    (TR.ALL_SUCCESS, "K", SKIP),
    # all_failed
    (TR.ALL_FAILED, "FFU", RUN),
    (TR.ALL_FAILED, "FF.", WAIT),
    (TR.ALL_FAILED, "FS.", SKIP),
    (TR.ALL_FAILED, "FK.", SKIP),
    (TR.ALL_FAILED, "FFR", RUN),
    # all_done
    (TR.ALL_DONE, "SFKUR", RUN),
    (TR.ALL_DONE, "SF.", WAIT),
    (TR.ALL_DONE, "F", RUN),
    # all_done_min_one_success
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "SF", RUN),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "SK", SKIP),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "S.K", SKIP),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "FU", UF),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "S.", WAIT),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, "F.", WAIT),
    # all_done_setup_success without setups: like all_done
    (TR.ALL_DONE_SETUP_SUCCESS, "SF", RUN),
    (TR.ALL_DONE_SETUP_SUCCESS, "S.", WAIT),
    # one_success: runs as soon as one succeeds
    (TR.ONE_SUCCESS, "S..", RUN),
    (TR.ONE_SUCCESS, "F..", WAIT),
    (TR.ONE_SUCCESS, "KKK", SKIP),
    (TR.ONE_SUCCESS, "KF", UF),
    (TR.ONE_SUCCESS, "FF", UF),
    (TR.ONE_SUCCESS, "RK", SKIP),
    # one_failed
    (TR.ONE_FAILED, "F..", RUN),
    (TR.ONE_FAILED, "U.", RUN),
    (TR.ONE_FAILED, "S..", WAIT),
    (TR.ONE_FAILED, "SSK", SKIP),
    # one_done
    (TR.ONE_DONE, "S..", RUN),
    (TR.ONE_DONE, "F..", RUN),
    (TR.ONE_DONE, "U.", WAIT),
    (TR.ONE_DONE, "K.", WAIT),
    (TR.ONE_DONE, "KU", SKIP),
    (TR.ONE_DONE, "KK", SKIP),
    # none_failed
    (TR.NONE_FAILED, "SK", RUN),
    (TR.NONE_FAILED, "KK", RUN),
    (TR.NONE_FAILED, "S.", WAIT),
    (TR.NONE_FAILED, "SF.", UF),
    (TR.NONE_FAILED, "U", UF),
    (TR.NONE_FAILED, "SR", RUN),
    # none_failed_min_one_success: the usual join after a branch
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "SK", RUN),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "KK", SKIP),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "K.", WAIT),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "F..", UF),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "KR", SKIP),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "S.", WAIT),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "RR", UF),
    # none_skipped
    (TR.NONE_SKIPPED, "SF", RUN),
    (TR.NONE_SKIPPED, "SU", RUN),
    (TR.NONE_SKIPPED, "SF.", WAIT),
    (TR.NONE_SKIPPED, "K..", SKIP),
    # all_skipped
    (TR.ALL_SKIPPED, "KK", RUN),
    (TR.ALL_SKIPPED, "K.", WAIT),
    (TR.ALL_SKIPPED, "KS.", SKIP),
    (TR.ALL_SKIPPED, "KF", SKIP),
    (TR.ALL_SKIPPED, "KU", SKIP),
    (TR.ALL_SKIPPED, "KR", RUN),
    # always
    (TR.ALWAYS, "...", RUN),
    (TR.ALWAYS, "F", RUN),
]


@pytest.mark.parametrize(("rule", "states", "expected"), CASES)
def test_rule_table(rule: TriggerRule, states: str, expected: TriggerAction) -> None:
    # given the upstream states / when the rule is evaluated
    decision = evaluate_trigger_rule(rule, ups(states))
    # expect the action of the table, with the rule named in the reason
    assert decision.action is expected, decision.reason
    assert str(rule) in decision.reason


def test_every_rule_has_table_cases() -> None:
    assert {rule for rule, _, _ in CASES} == set(TriggerRule)


SETUP_CASES = [
    ("SF", None, RUN),
    ("SF", "", RUN),
    ("S.", "S", WAIT),
    ("SF", "S", RUN),
    ("SF", "F", UF),
    ("SF", "K", SKIP),
    ("SF", "KK", SKIP),
    ("SF", "KS", RUN),
    ("SF", "KF", UF),
    ("SS", "S.", WAIT),
]


@pytest.mark.parametrize(("states", "setups", "expected"), SETUP_CASES)
def test_all_done_setup_success_looks_at_setups(
    states: str, setups: str | None, expected: TriggerAction
) -> None:
    # given a teardown's upstream states and those of its setup tasks
    setup_states = None if setups is None else ups(setups)
    # when its rule is evaluated
    decision = evaluate_trigger_rule(
        TR.ALL_DONE_SETUP_SUCCESS, ups(states), setup_upstream=setup_states
    )
    # expect: runs when one setup succeeded; skipped when all skipped; upstream_failed otherwise
    assert decision.action is expected, decision.reason


def test_wait_reason_counts_the_unfinished() -> None:
    decision = evaluate_trigger_rule(TR.ALL_SUCCESS, ups("S.."))
    assert decision.reason == "waiting for 2 of 3 upstream tasks; trigger rule all_success"
    assert not decision.is_final


def test_reasons_say_what_happened() -> None:
    assert evaluate_trigger_rule(TR.ALL_SUCCESS, ups("SF.")).reason == (
        "upstream_failed: 1 upstream task failed or upstream_failed; trigger rule all_success"
    )
    assert evaluate_trigger_rule(TR.ALL_SUCCESS, ups("KK.")).reason == (
        "skipped: 2 upstream tasks skipped; trigger rule all_success"
    )
    assert evaluate_trigger_rule(TR.ONE_SUCCESS, ups("F.")).reason == (
        "waiting for an upstream task to succeed (1 of 2 upstream tasks unfinished); "
        "trigger rule one_success"
    )
    run = evaluate_trigger_rule(TR.ALL_DONE, ups("SF"))
    assert run.reason == "trigger rule all_done met (1 success, 1 failed)"
    assert run.is_final


def test_no_upstream_runs_for_every_rule() -> None:
    for rule in TriggerRule:
        assert evaluate_trigger_rule(rule, UpstreamStates()).action is RUN


def test_rule_given_as_text() -> None:
    assert evaluate_trigger_rule("none_failed", ups("SK")).action is RUN


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown trigger rule 'sometimes'"):
        evaluate_trigger_rule("sometimes", ups("S"))


def test_counts_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="inconsistent upstream counts"):
        UpstreamStates(success=3, total=2)
    with pytest.raises(InvalidArgumentError):
        UpstreamStates(failed=-1, total=1)


def test_from_states_counts_each_state() -> None:
    counts = ups("SSFKUR..")
    assert (counts.success, counts.failed, counts.skipped) == (2, 1, 1)
    assert (counts.upstream_failed, counts.removed, counts.total) == (1, 1, 8)
    assert (counts.done, counts.unfinished, counts.failures, counts.counted) == (6, 2, 2, 7)
    assert counts.describe() == (
        "2 success, 1 failed, 1 upstream_failed, 1 skipped, 1 removed, 2 unfinished"
    )
    assert UpstreamStates.from_states(["success", "created"]).unfinished == 1


# -- properties ----------------------------------------------------------------------------------

finished_letters = st.sampled_from("SFKUR")
any_letters = st.sampled_from("SFKUR.")
# all_done_setup_success needs setup counts; its setup-free behaviour is all_done's.
rules = st.sampled_from(list(TriggerRule))


@given(rule=rules, states=st.text(finished_letters, max_size=8))
def test_all_upstream_finished_is_never_wait(rule: TriggerRule, states: str) -> None:
    assert evaluate_trigger_rule(rule, ups(states)).action is not WAIT


@given(
    rule=rules,
    partial=st.text(any_letters, max_size=8),
    fill=st.lists(finished_letters, min_size=8, max_size=8),
)
def test_final_decisions_do_not_flip_when_more_upstreams_finish(
    rule: TriggerRule, partial: str, fill: list[str]
) -> None:
    # given a decision made while some upstreams are unfinished
    before = evaluate_trigger_rule(rule, ups(partial)).action
    # when the unfinished ones finish in any way
    completed = "".join(fill[i] if c == "." else c for i, c in enumerate(partial))
    after = evaluate_trigger_rule(rule, ups(completed)).action
    # expect: RUN stays RUN; an auto-set state stays an auto-set state; nothing returns to WAIT
    assert after is not WAIT
    if before is RUN:
        assert after is RUN
    if before in (SKIP, UF):
        assert after in (SKIP, UF)


@given(
    states=st.text(finished_letters, max_size=6),
    setups=st.text(st.sampled_from("SFKU"), max_size=3),
)
def test_setup_rule_never_waits_once_everything_finished(states: str, setups: str) -> None:
    decision = evaluate_trigger_rule(
        TR.ALL_DONE_SETUP_SUCCESS, ups(states + setups), setup_upstream=ups(setups)
    )
    assert decision.action is not WAIT
