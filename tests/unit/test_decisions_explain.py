"""`tradewind tasks why`: the reasons a task instance is not running, in a fixed order; and the
pinned public surface of the decisions package."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import tradewind.scheduler.decisions as decisions
from tradewind.scheduler.decisions import (
    Blocker,
    BlockerKind,
    TaskAction,
    TaskDecision,
    TISnapshot,
    explain_blockers,
    why_not_running,
)
from tradewind.state import RunState, TaskState

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_reasons_come_in_a_fixed_order() -> None:
    # given a waiting instance held by its past and a retry wait, a full pool, a queued run and a
    # paused DAG, reported in a jumbled order
    decision = TaskDecision(
        TaskAction.WAIT,
        "…",
        blockers=(
            Blocker(BlockerKind.DEPENDS_ON_PAST, "depends_on_past: previous run failed"),
            Blocker(BlockerKind.RETRY_WAIT, "waiting to retry: retry 1 of 2 at 12:05:00 UTC"),
            Blocker(BlockerKind.TRIGGER_RULE, "waiting for 1 of 2 upstream tasks"),
        ),
        wake_at=NOW + timedelta(minutes=5),
    )
    reasons = why_not_running(
        ti=TISnapshot("t", state=TaskState.UP_FOR_RETRY),
        decision=decision,
        admission=Blocker(BlockerKind.POOL, "pool 'etl' has 0 of 4 slots free"),
        run_state=RunState.QUEUED,
        dag_paused=True,
    )
    # expect: trigger rule, pool, retry wait, depends_on_past, run state, paused
    assert reasons == [
        "waiting for 1 of 2 upstream tasks",
        "pool 'etl' has 0 of 4 slots free",
        "waiting to retry: retry 1 of 2 at 12:05:00 UTC",
        "depends_on_past: previous run failed",
        "the DAG run is queued, not running",
        "the DAG is paused: nothing new starts until it is unpaused",
    ]


def test_admission_reason_as_text() -> None:
    reasons = why_not_running(
        ti=TISnapshot("t", state=TaskState.SCHEDULED),
        admission="DAG run 'r' already has 16 of 16 task instances queued or running",
        dag_paused=True,
    )
    assert reasons[0].startswith("DAG run 'r' already has 16 of 16")
    assert reasons[1].startswith("the DAG is paused")


def test_finished_running_and_missing_instances() -> None:
    assert why_not_running(ti=None) == [
        "the task instance does not exist in this run (the task may be new or removed)"
    ]
    assert why_not_running(ti=TISnapshot("t", state=TaskState.SUCCESS)) == [
        "it already finished with state success; clear it to run it again"
    ]
    assert why_not_running(ti=TISnapshot("t", state=TaskState.RUNNING)) == ["it is running"]
    assert why_not_running(ti=TISnapshot("t", state=TaskState.QUEUED))[0].startswith("it is queued")


def test_nothing_blocking() -> None:
    ready = TaskDecision(TaskAction.SCHEDULE, "ready: trigger rule all_success met (1 success)")
    assert why_not_running(ti=TISnapshot("t"), decision=ready) == [
        "nothing blocks it: it will be scheduled at the next step "
        "(ready: trigger rule all_success met (1 success))"
    ]
    skipped = TaskDecision(TaskAction.SKIP, "skipped by branch task 'pick'")
    assert why_not_running(ti=TISnapshot("t"), decision=skipped) == [
        "it will not run: skipped by branch task 'pick'"
    ]
    assert why_not_running(ti=TISnapshot("t", state=TaskState.SCHEDULED)) == [
        "it is scheduled and waits to be queued at the next scheduling step"
    ]


def test_duplicate_reasons_are_shown_once() -> None:
    same = Blocker(BlockerKind.POOL, "pool 'p' has 0 slots free")
    assert explain_blockers([same, same]) == ["pool 'p' has 0 slots free"]


def test_public_exports_are_pinned() -> None:
    assert decisions.__all__ == [
        "DEFAULT_POOL",
        "MAX_RETRY_DELAY",
        "AdmissionResult",
        "Blocker",
        "BlockerKind",
        "Candidate",
        "ExpansionLength",
        "FailureOutcome",
        "PastCheck",
        "PreviousRun",
        "RunCreationPlan",
        "RunDecision",
        "RunSnapshot",
        "RunType",
        "TISnapshot",
        "TaskAction",
        "TaskDecision",
        "TriggerAction",
        "TriggerDecision",
        "UpstreamStates",
        "admit",
        "backfill_intervals",
        "backoff_multiplier",
        "check_depends_on_past",
        "decide_task",
        "effective_leaf_ids",
        "evaluate_trigger_rule",
        "expansion_length",
        "explain_blockers",
        "manual_run_interval",
        "mapping_source",
        "next_retry_at",
        "next_runs_to_create",
        "outcome_after_failure",
        "priority_order",
        "retry_delay_for",
        "run_id_for",
        "run_state_from_tasks",
        "runs_to_start",
        "why_not_running",
    ]
    for name in decisions.__all__:
        assert getattr(decisions, name) is not None
