"""Readiness: one decision per task instance from its upstreams, the previous run and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradewind import DAG, task, task_group
from tradewind.operators import BranchPythonOperator, EmptyOperator, PythonOperator
from tradewind.scheduler.decisions import (
    BlockerKind,
    PreviousRun,
    RunSnapshot,
    TaskAction,
    TaskDecision,
    TISnapshot,
    check_depends_on_past,
    decide_task,
)
from tradewind.serialization import SerializedDAG, deserialize_dag, serialize_dag
from tradewind.state import RunState, TaskState

START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 1, 2, 12, 0, 0, tzinfo=UTC)
RUN = RunSnapshot(dag_id="d", run_id="scheduled__2024-01-01T00:00:00+00:00", logical_date=START)


def _noop() -> None:
    return None


def work(task_id: str, **kwargs: Any) -> PythonOperator:
    return PythonOperator(task_id=task_id, python_callable=_noop, **kwargs)


def view(dag: DAG) -> SerializedDAG:
    return deserialize_dag(serialize_dag(dag))


def ti(task_id: str, state: TaskState | str = TaskState.CREATED, **kwargs: Any) -> TISnapshot:
    return TISnapshot(task_id=task_id, state=TaskState(state), **kwargs)


def decide(dag: SerializedDAG, task_id: str, upstream: str = "", **kwargs: Any) -> TaskDecision:
    """Decide for ``task_id`` (state from kwargs['state'], default created) with upstream states
    given as ``"a=success,b=running"``."""
    state = kwargs.pop("state", TaskState.CREATED)
    map_index = kwargs.pop("map_index", -1)
    extra = {k: kwargs.pop(k) for k in ("try_number", "max_tries", "next_retry_at", "reschedule_at")
             if k in kwargs}  # fmt: skip
    ups = []
    for item in filter(None, upstream.split(",")):
        name, _, st = item.partition("=")
        ups.append(ti(name, st))
    me = ti(task_id, state, map_index=map_index, **extra)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("run", RUN)
    return decide_task(dag.get_task(task_id), me, ups, **kwargs)


@pytest.fixture(scope="module")
def chain() -> SerializedDAG:
    with DAG("d", schedule="@daily", start_date=START) as dag:
        work("a") >> work("b") >> work("c")
        work("join", trigger_rule="none_failed_min_one_success")
        dag.get_task("a") >> dag.get_task("join")
        dag.get_task("b") >> dag.get_task("join")
        work("past", depends_on_past=True)
        work("strict_past", depends_on_past=True, ignore_first_depends_on_past=False)
        work("held_skip", depends_on_past=True, wait_for_past_depends_before_skipping=True)
        dag.get_task("a") >> dag.get_task("held_skip")
        work("wfd", wait_for_downstream=True) >> work("wfd_down")
        EmptyOperator(task_id="nothing")
        dag.get_task("a") >> dag.get_task("nothing")
        EmptyOperator(task_id="busy_empty", on_success_callback=_noop)
    return view(dag)


# -- states with nothing to decide ------------------------------------------------------------


@pytest.mark.parametrize("state", ["success", "failed", "skipped", "upstream_failed", "removed"])
def test_finished_instances_need_nothing(chain: SerializedDAG, state: str) -> None:
    decision = decide(chain, "b", "a=success", state=state)
    assert decision.action is TaskAction.NONE
    assert decision.reason == f"already finished: state {state}"
    assert decision.target_state is None


@pytest.mark.parametrize("state", ["queued", "running", "deferred", "restarting"])
def test_in_flight_instances_need_nothing(chain: SerializedDAG, state: str) -> None:
    decision = decide(chain, "b", "a=success", state=state)
    assert decision.action is TaskAction.NONE
    assert state in decision.reason


def test_scheduled_instances_wait_for_admission(chain: SerializedDAG) -> None:
    decision = decide(chain, "b", "a=success", state="scheduled")
    assert decision.action is TaskAction.NONE
    assert "waiting to be queued" in decision.reason


# -- trigger rules -----------------------------------------------------------------------------


def test_ready_when_upstreams_succeeded(chain: SerializedDAG) -> None:
    decision = decide(chain, "b", "a=success")
    assert decision.action is TaskAction.SCHEDULE
    assert decision.target_state is TaskState.SCHEDULED
    assert decision.reason == "ready: trigger rule all_success met (1 success)"


def test_root_tasks_are_ready(chain: SerializedDAG) -> None:
    assert decide(chain, "a").action is TaskAction.SCHEDULE


def test_waits_for_running_upstream(chain: SerializedDAG) -> None:
    decision = decide(chain, "join", "a=success,b=running")
    assert decision.action is TaskAction.WAIT
    assert (
        decision.reason
        == "waiting for 1 of 2 upstream tasks; trigger rule none_failed_min_one_success"
    )
    assert [b.kind for b in decision.blockers] == [BlockerKind.TRIGGER_RULE]
    assert decision.wake_at is None


def test_failed_upstream_propagates_at_once(chain: SerializedDAG) -> None:
    decision = decide(chain, "b", "a=failed")
    assert decision.action is TaskAction.UPSTREAM_FAILED
    assert decision.target_state is TaskState.UPSTREAM_FAILED


def test_skipped_upstream_propagates_skip(chain: SerializedDAG) -> None:
    decision = decide(chain, "c", "b=skipped")
    assert decision.action is TaskAction.SKIP
    assert decision.target_state is TaskState.SKIPPED


def test_join_after_a_branch_runs_with_one_skipped(chain: SerializedDAG) -> None:
    assert decide(chain, "join", "a=success,b=skipped").action is TaskAction.SCHEDULE


# -- branching ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def branch() -> SerializedDAG:
    with DAG("br", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=_noop)
        pick >> [work("left"), work("right")]
    return view(dag)


def test_branch_skip_names_the_branch_task_from_a_mapping(branch: SerializedDAG) -> None:
    decision = decide(branch, "right", "pick=success", skipped_by_branch={"right": "pick"})
    assert decision.action is TaskAction.SKIP
    assert decision.reason == "skipped by branch task 'pick'"


def test_branch_skip_finds_the_branch_task_from_a_set(branch: SerializedDAG) -> None:
    decision = decide(branch, "right", "pick=success", skipped_by_branch={"right"})
    assert decision.action is TaskAction.SKIP
    assert "'pick'" in decision.reason


def test_branch_skip_leaves_the_chosen_task_alone(branch: SerializedDAG) -> None:
    assert decide(branch, "left", "pick=success", skipped_by_branch={"right"}).action is (
        TaskAction.SCHEDULE
    )


def test_branch_skip_does_not_touch_running_instances(branch: SerializedDAG) -> None:
    decision = decide(branch, "right", "pick=success", skipped_by_branch={"right"}, state="running")
    assert decision.action is TaskAction.NONE


def test_branch_skip_without_a_known_branch_task(chain: SerializedDAG) -> None:
    decision = decide(chain, "c", "b=success", skipped_by_branch={"c"})
    assert decision.action is TaskAction.SKIP
    assert decision.reason == "skipped by an upstream branch or short-circuit task"


# -- run state ------------------------------------------------------------------------------------


def test_nothing_happens_in_a_queued_run(chain: SerializedDAG) -> None:
    queued = RunSnapshot(dag_id="d", run_id="r", state=RunState.QUEUED)
    decision = decide(chain, "b", "a=failed", run=queued)
    assert decision.action is TaskAction.WAIT
    assert [b.kind for b in decision.blockers] == [BlockerKind.RUN_STATE]
    assert decision.reason == "the DAG run 'r' is queued, not running"


# -- retries and reschedules -------------------------------------------------------------------


def test_retry_waits_until_its_time(chain: SerializedDAG) -> None:
    # given try 2 of a task with 3 retries failed and the next try is due in 5 seconds
    due = NOW + timedelta(seconds=5)
    decision = decide(
        chain, "b", "a=success", state="up_for_retry", try_number=2, max_tries=3, next_retry_at=due
    )
    # expect a wait with a timer
    assert decision.action is TaskAction.WAIT
    assert decision.reason == "waiting to retry: retry 2 of 3 at 12:00:05 UTC (in 5s)"
    assert decision.wake_at == due
    assert decision.blockers[0].kind is BlockerKind.RETRY_WAIT


def test_retry_is_scheduled_once_due(chain: SerializedDAG) -> None:
    decision = decide(
        chain, "b", "a=success", state="up_for_retry", try_number=2, max_tries=3,
        next_retry_at=NOW,
    )  # fmt: skip
    assert decision.action is TaskAction.SCHEDULE
    assert decision.reason.startswith("retry 2 of 3 is due")


def test_naive_retry_time_means_utc(chain: SerializedDAG) -> None:
    due = (NOW + timedelta(minutes=1)).replace(tzinfo=None)
    decision = decide(chain, "b", "a=success", state="up_for_retry", next_retry_at=due)
    assert decision.action is TaskAction.WAIT
    assert decision.wake_at == NOW + timedelta(minutes=1)


def test_reschedule_waits_until_its_time(chain: SerializedDAG) -> None:
    due = NOW + timedelta(minutes=2)
    decision = decide(chain, "b", "a=success", state="up_for_reschedule", reschedule_at=due)
    assert decision.action is TaskAction.WAIT
    assert decision.blockers[0].kind is BlockerKind.RESCHEDULE_WAIT
    assert decision.wake_at == due
    later = decide(chain, "b", "a=success", state="up_for_reschedule", reschedule_at=due, now=due)
    assert later.action is TaskAction.SCHEDULE


# -- depends_on_past ---------------------------------------------------------------------------


def prev(*tis: TISnapshot, logical_date: datetime | None = None) -> PreviousRun:
    return PreviousRun(run_id="prev", logical_date=logical_date, tis=tis)


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (None, TaskAction.SCHEDULE),
        (prev(ti("past", "success")), TaskAction.SCHEDULE),
        (prev(ti("past", "skipped")), TaskAction.SCHEDULE),
        (prev(ti("past", "failed")), TaskAction.WAIT),
        (prev(ti("past", "running")), TaskAction.WAIT),
        (prev(ti("past", "upstream_failed")), TaskAction.WAIT),
        (prev(ti("other", "failed")), TaskAction.SCHEDULE),  # never ran before
    ],
)
def test_depends_on_past(
    chain: SerializedDAG, previous: PreviousRun | None, expected: TaskAction
) -> None:
    assert decide(chain, "past", prev_run=previous).action is expected


def test_depends_on_past_reason_names_the_previous_instance(chain: SerializedDAG) -> None:
    decision = decide(chain, "past", prev_run=prev(ti("past", "failed")))
    assert decision.reason == (
        "depends_on_past: in the previous run 'prev', 'past' is failed; it must be success or "
        "skipped"
    )
    assert decision.blockers[0].kind is BlockerKind.DEPENDS_ON_PAST


def test_depends_on_past_without_ignore_first_waits_for_a_first_instance(
    chain: SerializedDAG,
) -> None:
    decision = decide(chain, "strict_past", prev_run=prev(ti("other", "success")))
    assert decision.action is TaskAction.WAIT
    assert "has no instance of task 'strict_past'" in decision.reason


def test_first_run_of_a_backfill_ignores_the_past(chain: SerializedDAG) -> None:
    backfill = RunSnapshot(dag_id="d", run_id="backfill__x", first_of_backfill=True)
    decision = decide(chain, "past", run=backfill, prev_run=prev(ti("past", "failed")))
    assert decision.action is TaskAction.SCHEDULE


def test_previous_run_before_the_start_date_is_ignored_with_catchup() -> None:
    with DAG("cu", schedule="@daily", start_date=START, catchup=True) as dag:
        work("past", depends_on_past=True)
    old = prev(ti("past", "failed"), logical_date=START - timedelta(days=3))
    assert decide(view(dag), "past", prev_run=old).action is TaskAction.SCHEDULE


def test_mapped_instances_check_the_same_index() -> None:
    with DAG("m", start_date=START) as dag:
        PythonOperator.partial(task_id="mp", python_callable=_noop, depends_on_past=True).expand(
            op_args=[[1], [2]]
        )
    v = view(dag)
    previous = prev(ti("mp", "success", map_index=0), ti("mp", "failed", map_index=1))
    assert decide(v, "mp", map_index=0, prev_run=previous).action is TaskAction.SCHEDULE
    assert decide(v, "mp", map_index=1, prev_run=previous).action is TaskAction.WAIT
    # a new index passes; the placeholder looks at every previous instance
    assert decide(v, "mp", map_index=5, prev_run=previous).action is TaskAction.SCHEDULE
    assert decide(v, "mp", map_index=-1, prev_run=previous).action is TaskAction.WAIT


def test_wait_for_downstream_needs_previous_downstreams_done(chain: SerializedDAG) -> None:
    running = prev(ti("wfd", "success"), ti("wfd_down", "running"))
    decision = decide(chain, "wfd", prev_run=running)
    assert decision.action is TaskAction.WAIT
    assert decision.reason.startswith("wait_for_downstream: in the previous run 'prev', ")
    assert "'wfd_down' is running" in decision.reason
    done = prev(ti("wfd", "success"), ti("wfd_down", "skipped"))
    assert decide(chain, "wfd", prev_run=done).action is TaskAction.SCHEDULE


def test_wait_for_downstream_implies_depends_on_past(chain: SerializedDAG) -> None:
    failed = prev(ti("wfd", "failed"), ti("wfd_down", "success"))
    assert decide(chain, "wfd", prev_run=failed).action is TaskAction.WAIT


def test_skip_waits_for_depends_on_past_when_asked(chain: SerializedDAG) -> None:
    # given a task whose upstream was skipped while its previous instance failed
    previous = prev(ti("held_skip", "failed"))
    decision = decide(chain, "held_skip", "a=skipped", prev_run=previous)
    # expect it waits (wait_for_past_depends_before_skipping) instead of skipping now
    assert decision.action is TaskAction.WAIT
    assert "wait_for_past_depends_before_skipping" in decision.reason
    # and skips once the past is fine
    fine = prev(ti("held_skip", "success"))
    assert decide(chain, "held_skip", "a=skipped", prev_run=fine).action is TaskAction.SKIP


def test_skip_does_not_wait_for_the_past_by_default(chain: SerializedDAG) -> None:
    with DAG("p", start_date=START) as dag:
        work("up") >> work("down", depends_on_past=True)
    decision = decide(view(dag), "down", "up=skipped", prev_run=prev(ti("down", "failed")))
    assert decision.action is TaskAction.SKIP


def test_every_blocker_is_kept_in_order(chain: SerializedDAG) -> None:
    with DAG("many", start_date=START) as dag:
        work("up") >> work("down", depends_on_past=True)
    decision = decide(
        view(dag),
        "down",
        "up=running",
        state="up_for_retry",
        next_retry_at=NOW + timedelta(seconds=30),
        prev_run=prev(ti("down", "failed")),
    )
    assert decision.action is TaskAction.WAIT
    assert [b.kind for b in decision.blockers] == [
        BlockerKind.TRIGGER_RULE,
        BlockerKind.DEPENDS_ON_PAST,
        BlockerKind.RETRY_WAIT,
    ]
    assert decision.reason == "; ".join(b.message for b in decision.blockers)


def test_check_depends_on_past_reports_why_it_passes(chain: SerializedDAG) -> None:
    task_view = chain.get_task("past")
    check = check_depends_on_past(task_view, ti("past"), run=RUN, prev_run=None)
    assert check.ok
    assert check.reason == "depends_on_past passes: there is no previous run"
    plain = check_depends_on_past(chain.get_task("a"), ti("a"), run=RUN, prev_run=None)
    assert plain.ok
    assert plain.reason == "the task does not depend on past runs"


# -- empty operators -------------------------------------------------------------------------


def test_empty_operator_succeeds_without_an_executor(chain: SerializedDAG) -> None:
    decision = decide(chain, "nothing", "a=success")
    assert decision.action is TaskAction.SUCCEED
    assert decision.target_state is TaskState.SUCCESS
    assert decision.reason.startswith("empty operator: marked success without running")


def test_empty_operator_still_follows_its_trigger_rule(chain: SerializedDAG) -> None:
    assert decide(chain, "nothing", "a=running").action is TaskAction.WAIT
    assert decide(chain, "nothing", "a=failed").action is TaskAction.UPSTREAM_FAILED


def test_empty_operator_with_a_callback_runs_normally(chain: SerializedDAG) -> None:
    assert decide(chain, "busy_empty").action is TaskAction.SCHEDULE


# -- mapping -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapped() -> SerializedDAG:
    with DAG("map", start_date=START) as dag:

        @task
        def make() -> list[int]:
            return [1, 2, 3]

        @task
        def use(x: int) -> int:
            return x

        @task
        def other() -> list[int]:
            return [1]

        @task(trigger_rule="one_success")
        def either(x: int, y: int) -> int:
            return x

        made = make()
        use.expand(x=made)
        either.expand(x=made, y=other())

        @task_group
        def per_item(v: int) -> None:
            @task
            def inner(v: int) -> int:
                return v

            inner(v)

        per_item.expand(v=[10, 20])
    return view(dag)


def test_mapped_placeholder_expands_to_the_upstream_length(mapped: SerializedDAG) -> None:
    decision = decide(mapped, "use", "make=success", upstream_lengths={"make": 3})
    assert decision.action is TaskAction.EXPAND
    assert decision.map_length == 3
    assert decision.reason == "expand into 3 mapped instances"
    assert decision.target_state is None


def test_mapped_over_an_empty_list_is_skipped(mapped: SerializedDAG) -> None:
    decision = decide(mapped, "use", "make=success", upstream_lengths={"make": 0})
    assert decision.action is TaskAction.SKIP
    assert decision.map_length == 0
    assert decision.reason == "mapped over an empty list: no instances to run"


def test_mapping_above_the_maximum_fails_with_a_clear_error(mapped: SerializedDAG) -> None:
    decision = decide(
        mapped, "use", "make=success", upstream_lengths={"make": 11}, max_map_length=10
    )
    assert decision.action is TaskAction.FAIL
    assert decision.map_length == 11
    assert decision.reason == (
        "task 'use' would expand into 11 instances, more than the maximum map length 10 "
        "(setting core.max_map_length)"
    )


def test_mapping_without_a_recorded_length_is_upstream_failed(mapped: SerializedDAG) -> None:
    decision = decide(mapped, "use", "make=success")
    assert decision.action is TaskAction.UPSTREAM_FAILED
    assert "no length was recorded for make" in decision.reason


def test_mapping_waits_for_a_result_still_being_made(mapped: SerializedDAG) -> None:
    # given a one_success mapped task whose second input's task is still running
    decision = decide(mapped, "either", "make=success,other=running", upstream_lengths={"make": 3})
    # expect it waits for that length instead of failing
    assert decision.action is TaskAction.WAIT
    assert decision.blockers[0].kind is BlockerKind.MAPPING
    assert "'other'" in decision.reason
    both = decide(
        mapped, "either", "make=success,other=success", upstream_lengths={"make": 3, "other": 2}
    )
    assert (both.action, both.map_length) == (TaskAction.EXPAND, 6)


def test_expanded_instances_are_scheduled(mapped: SerializedDAG) -> None:
    decision = decide(mapped, "use", "make=success", map_index=1)
    assert decision.action is TaskAction.SCHEDULE


def test_tasks_of_a_mapped_group_expand_with_the_group(mapped: SerializedDAG) -> None:
    decision = decide(mapped, "per_item.inner")
    assert (decision.action, decision.map_length) == (TaskAction.EXPAND, 2)


# -- setup and teardown --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teardown_dag() -> SerializedDAG:
    with DAG("td", start_date=START) as dag:
        create = work("create").as_setup()
        body = work("body")
        delete = work("delete").as_teardown(setups=create)
        create >> body >> delete
    return view(dag)


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("create=success,body=failed", TaskAction.SCHEDULE),
        ("create=success,body=running", TaskAction.WAIT),
        ("create=failed,body=upstream_failed", TaskAction.UPSTREAM_FAILED),
        ("create=skipped,body=skipped", TaskAction.SKIP),
    ],
)
def test_teardown_runs_when_its_setup_succeeded(
    teardown_dag: SerializedDAG, upstream: str, expected: TaskAction
) -> None:
    assert decide(teardown_dag, "delete", upstream).action is expected
