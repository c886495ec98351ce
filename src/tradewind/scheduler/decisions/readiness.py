"""Readiness: what the scheduler should do next with one task instance, and why.

:func:`decide_task` combines every per-task-instance rule into one :class:`TaskDecision`:

1. nothing to do for finished, queued or running instances (or scheduled ones, which wait for
   admission, see :mod:`~tradewind.scheduler.decisions.admission`);
2. a branch or short-circuit task asked to skip it -> SKIP (naming the branch task);
3. nothing happens in a run that is not running;
4. the trigger rule (:mod:`~tradewind.scheduler.decisions.trigger_rules`) may skip it or mark it
   upstream_failed at once (after depends_on_past, when the task sets
   ``wait_for_past_depends_before_skipping``), or make it wait;
5. depends_on_past / wait_for_downstream against the previous run;
6. the retry delay (``up_for_retry``) or the sensor's reschedule time (``up_for_reschedule``);
7. a mapped placeholder (map index -1) whose upstream lengths are known -> EXPAND into N
   instances; zero -> SKIP; more than the maximum map length -> FAIL;
8. an empty operator -> SUCCEED without an executor;
9. otherwise SCHEDULE.

Every reason that holds an instance back is kept (as :class:`Blocker` objects) so that
``tradewind tasks why`` can show them all, not just the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tradewind.errors import MappingError
from tradewind.scheduler.decisions._text import as_utc, as_utc_or_none, format_when
from tradewind.scheduler.decisions.blockers import Blocker, BlockerKind
from tradewind.scheduler.decisions.expansion import (
    LengthKey,
    expansion_length,
    mapping_source,
    maps_per_index,
)
from tradewind.scheduler.decisions.trigger_rules import (
    TriggerAction,
    UpstreamStates,
    evaluate_trigger_rule,
)
from tradewind.scheduler.decisions.views import TaskLike
from tradewind.sdk.mapping import check_map_length
from tradewind.state import FINISHED, SUCCESS_LIKE, RunState, TaskState

__all__ = [
    "PastCheck",
    "PreviousRun",
    "RunSnapshot",
    "TISnapshot",
    "TaskAction",
    "TaskDecision",
    "check_depends_on_past",
    "decide_task",
]

_IN_FLIGHT = frozenset(
    {TaskState.QUEUED, TaskState.RUNNING, TaskState.DEFERRED, TaskState.RESTARTING}
)
_SKIPPABLE_BY_BRANCH = frozenset(
    {
        TaskState.CREATED,
        TaskState.SCHEDULED,
        TaskState.UP_FOR_RETRY,
        TaskState.UP_FOR_RESCHEDULE,
    }
)


@dataclass(frozen=True)
class TISnapshot:
    """The facts about one task instance that decisions need (plain data, no session).

    ``try_number`` is the latest try started (0 before the first); ``max_tries`` is the number
    of retries allowed. ``next_retry_at`` / ``reschedule_at`` are set while the instance waits
    in ``up_for_retry`` / ``up_for_reschedule``.
    """

    task_id: str
    map_index: int = -1
    state: TaskState = TaskState.CREATED
    try_number: int = 0
    max_tries: int = 0
    next_retry_at: datetime | None = None
    reschedule_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None

    def __post_init__(self) -> None:
        # Rows hand over plain strings and naive datetimes; decisions compare enum members by
        # identity and need aware times.
        object.__setattr__(self, "state", TaskState(self.state))
        for name in ("next_retry_at", "reschedule_at", "start_date", "end_date"):
            object.__setattr__(self, name, as_utc_or_none(getattr(self, name)))

    @property
    def key(self) -> tuple[str, int]:
        """``(task_id, map_index)``: unique within a run."""
        return (self.task_id, self.map_index)

    @property
    def label(self) -> str:
        """``'task'`` or ``'task'[3]`` for messages."""
        return repr(self.task_id) if self.map_index < 0 else f"{self.task_id!r}[{self.map_index}]"


@dataclass(frozen=True)
class RunSnapshot:
    """The facts about the DAG run a task instance belongs to.

    ``first_of_backfill`` marks the first run of a backfill, where depends_on_past passes.
    """

    dag_id: str
    run_id: str
    state: RunState = RunState.RUNNING
    run_type: str = "scheduled"
    logical_date: datetime | None = None
    start_date: datetime | None = None
    first_of_backfill: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", RunState(self.state))
        for name in ("logical_date", "start_date"):
            object.__setattr__(self, name, as_utc_or_none(getattr(self, name)))


@dataclass(frozen=True)
class PreviousRun:
    """The previous run, for depends_on_past: its id, logical date and the task instances of
    the task being decided and of its direct downstream tasks (others may be left out)."""

    run_id: str
    logical_date: datetime | None = None
    tis: tuple[TISnapshot, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tis", tuple(self.tis))
        object.__setattr__(self, "logical_date", as_utc_or_none(self.logical_date))


class TaskAction(StrEnum):
    """What the scheduler should do with a task instance now."""

    #: Nothing now: it is finished, in flight, or already scheduled.
    NONE = "none"
    #: Not ready; ``TaskDecision.blockers`` say why, ``wake_at`` when to look again.
    WAIT = "wait"
    #: Ready: move it to ``scheduled`` (then admission decides when it is queued).
    SCHEDULE = "schedule"
    #: Mark it ``skipped``.
    SKIP = "skip"
    #: Mark it ``upstream_failed``.
    UPSTREAM_FAILED = "upstream_failed"
    #: Expand the mapped placeholder into ``map_length`` instances.
    EXPAND = "expand"
    #: Mark it ``success`` without running it (empty operators).
    SUCCEED = "succeed"
    #: Mark it ``failed`` without running it (an invalid expansion).
    FAIL = "fail"


_TARGET_STATES = {
    TaskAction.SCHEDULE: TaskState.SCHEDULED,
    TaskAction.SKIP: TaskState.SKIPPED,
    TaskAction.UPSTREAM_FAILED: TaskState.UPSTREAM_FAILED,
    TaskAction.SUCCEED: TaskState.SUCCESS,
    TaskAction.FAIL: TaskState.FAILED,
}


@dataclass(frozen=True)
class TaskDecision:
    """The verdict for one task instance.

    Attributes:
        action: what to do.
        reason: one line for logs and the UI.
        blockers: for WAIT, every reason it cannot go ahead (in the order checked).
        wake_at: for WAIT on a timer (retry delay, reschedule), when to decide again.
        map_length: for EXPAND (and SKIP/FAIL of a mapped placeholder), the number of instances.
    """

    action: TaskAction
    reason: str
    blockers: tuple[Blocker, ...] = ()
    wake_at: datetime | None = None
    map_length: int | None = None

    @property
    def target_state(self) -> TaskState | None:
        """The state to write for this action (None for NONE, WAIT and EXPAND)."""
        return _TARGET_STATES.get(self.action)


@dataclass(frozen=True)
class PastCheck:
    """The outcome of depends_on_past / wait_for_downstream: ``ok`` and the reason."""

    ok: bool
    reason: str


def _labels(tis: Iterable[TISnapshot], limit: int = 3) -> str:
    items = [f"{t.label} is {t.state}" for t in tis]
    more = len(items) - limit
    text = ", ".join(items[:limit])
    return f"{text} and {more} more" if more > 0 else text


def check_depends_on_past(
    task: TaskLike, ti: TISnapshot, *, run: RunSnapshot, prev_run: PreviousRun | None
) -> PastCheck:
    """depends_on_past and wait_for_downstream (which implies depends_on_past).

    Passes when the task does not depend on the past, for the first run of a backfill, when
    there is no previous run, when (with catchup) the previous run is older than the task's
    start_date, and when the task has no instance in the previous run and
    ``ignore_first_depends_on_past`` is set. Otherwise the previous run's instance(s) of the
    task (the same map index; all of them for an unexpanded placeholder) must be success or
    skipped, and with wait_for_downstream so must the previous run's instances of the direct
    downstream tasks. A map index the previous run did not have passes.
    """
    if not (task.depends_on_past or task.wait_for_downstream):
        return PastCheck(True, "the task does not depend on past runs")
    if run.first_of_backfill:
        return PastCheck(True, "depends_on_past passes for the first run of a backfill")
    if prev_run is None:
        return PastCheck(True, "depends_on_past passes: there is no previous run")
    if (
        task.dag.catchup
        and prev_run.logical_date is not None
        and task.start_date is not None
        and prev_run.logical_date < as_utc(task.start_date)
    ):
        return PastCheck(
            True, "depends_on_past passes: the previous run is older than the task's start_date"
        )
    own = [t for t in prev_run.tis if t.task_id == ti.task_id]
    if not own:
        if task.ignore_first_depends_on_past:
            return PastCheck(True, "depends_on_past passes: the task has not run before")
        return PastCheck(
            False,
            f"depends_on_past: the previous run {prev_run.run_id!r} has no instance of task "
            f"{ti.task_id!r} yet",
        )
    relevant = own
    if ti.map_index >= 0:
        relevant = [t for t in own if t.map_index == ti.map_index]
        if not relevant:
            return PastCheck(
                True,
                f"depends_on_past passes: map index {ti.map_index} did not exist in the "
                "previous run",
            )
    unfinished = [t for t in relevant if t.state not in SUCCESS_LIKE]
    if unfinished:
        return PastCheck(
            False,
            f"depends_on_past: in the previous run {prev_run.run_id!r}, {_labels(unfinished)}; "
            "it must be success or skipped",
        )
    if task.wait_for_downstream:
        downstream = sorted(task.downstream_task_ids)
        waiting = [
            t
            for t in prev_run.tis
            if t.task_id in task.downstream_task_ids and t.state not in SUCCESS_LIKE
        ]
        if waiting:
            return PastCheck(
                False,
                f"wait_for_downstream: in the previous run {prev_run.run_id!r}, "
                f"{_labels(waiting)}; downstream tasks {', '.join(map(repr, downstream))} must "
                "be success or skipped",
            )
    return PastCheck(
        True,
        f"depends_on_past met: in the previous run {prev_run.run_id!r} it is success or skipped",
    )


def _branch_task(task: TaskLike, skipped_by_branch: AbstractSet[str] | Mapping[str, str]) -> str:
    if isinstance(skipped_by_branch, Mapping):
        return f"branch task {skipped_by_branch[task.task_id]!r}"
    tasks = task.dag.task_dict
    skippers = sorted(
        uid
        for uid in task.upstream_task_ids
        if getattr(tasks.get(uid), "inherits_from_skipmixin", False)
    )
    if skippers:
        return f"branch task {', '.join(map(repr, skippers))}"
    return "an upstream branch or short-circuit task"


def _upstream_states(
    task: TaskLike, upstream_tis: Sequence[TISnapshot]
) -> tuple[UpstreamStates, UpstreamStates | None]:
    ups = UpstreamStates.from_states(t.state for t in upstream_tis)
    tasks = task.dag.task_dict
    setup_ids = {
        uid
        for uid in task.upstream_task_ids
        if uid in tasks and getattr(tasks[uid], "is_setup", False)
    }
    if not setup_ids:
        return ups, None
    setups = UpstreamStates.from_states(t.state for t in upstream_tis if t.task_id in setup_ids)
    return ups, setups


def decide_task(
    task: TaskLike,
    ti: TISnapshot,
    upstream_tis: Sequence[TISnapshot],
    *,
    now: datetime,
    run: RunSnapshot,
    prev_run: PreviousRun | None = None,
    skipped_by_branch: AbstractSet[str] | Mapping[str, str] = frozenset(),
    upstream_lengths: Mapping[LengthKey, int] | None = None,
    max_map_length: int | None = None,
    upstream_counts: UpstreamStates | None = None,
) -> TaskDecision:
    """Decide what to do with task instance ``ti`` of ``task`` (see the module docstring).

    Args:
        task: the task's read-only view (a SerializedTask).
        ti: the task instance.
        upstream_tis: the relevant instances of its *direct* upstream tasks: every instance of
            a mapped upstream; inside a mapped task group, the instance with the same index.
        now: the current time.
        run: the run the instance belongs to.
        prev_run: the previous run, for depends_on_past (None when there is none; only read
            when the task depends on the past).
        skipped_by_branch: task ids a finished branch or short-circuit task asked to skip,
            either as a set or as ``{task_id: id of the task that asked}``.
        upstream_lengths: recorded lengths of upstream results (see
            :func:`~tradewind.scheduler.decisions.expansion.expansion_length`); needed to
            expand a mapped placeholder.
        max_map_length: the largest allowed expansion (default: the SDK's setting).
        upstream_counts: the states of ``upstream_tis`` already counted, for callers that
            keep running counts (a fan-in of thousands then costs nothing to decide). Only
            for tasks without setup upstream tasks that are not mapped placeholders; their
            ``upstream_tis`` may then be left empty.
    """
    now = as_utc(now)
    state = ti.state
    if state in FINISHED:
        return TaskDecision(TaskAction.NONE, f"already finished: state {state}")
    if state in _IN_FLIGHT:
        return TaskDecision(TaskAction.NONE, f"in progress: state {state}")
    if ti.task_id in skipped_by_branch and state in _SKIPPABLE_BY_BRANCH:
        return TaskDecision(TaskAction.SKIP, f"skipped by {_branch_task(task, skipped_by_branch)}")
    if state is TaskState.SCHEDULED:
        return TaskDecision(
            TaskAction.NONE,
            "scheduled: waiting to be queued (pool, concurrency and executor slots)",
        )
    if run.state is not RunState.RUNNING:
        message = f"the DAG run {run.run_id!r} is {run.state}, not running"
        blocker = Blocker(BlockerKind.RUN_STATE, message)
        return TaskDecision(TaskAction.WAIT, message, (blocker,))

    if ti.map_index < 0 and _expands_before_trigger_rule(task, upstream_lengths or {}):
        # Its instances each depend on their own index of an upstream task in the same mapped
        # group: the placeholder cannot apply the trigger rule (it would see every index), so
        # it expands as soon as it can and each instance decides for itself.
        source = mapping_source(task)
        return _expand(task, ti, source, upstream_tis, upstream_lengths or {}, max_map_length)

    if upstream_counts is not None:
        upstream, setups = upstream_counts, None
    else:
        upstream, setups = _upstream_states(task, upstream_tis)
    trigger = evaluate_trigger_rule(task.trigger_rule, upstream, setup_upstream=setups)
    past = check_depends_on_past(task, ti, run=run, prev_run=prev_run)
    if trigger.action in (TriggerAction.SKIP, TriggerAction.UPSTREAM_FAILED):
        if not past.ok and task.wait_for_past_depends_before_skipping:
            message = f"{past.reason} (wait_for_past_depends_before_skipping holds the skip)"
            blocker = Blocker(BlockerKind.DEPENDS_ON_PAST, message)
            return TaskDecision(TaskAction.WAIT, message, (blocker,))
        action = (
            TaskAction.SKIP if trigger.action is TriggerAction.SKIP else TaskAction.UPSTREAM_FAILED
        )
        return TaskDecision(action, trigger.reason)

    blockers: list[Blocker] = []
    wake_at: datetime | None = None
    if trigger.action is TriggerAction.WAIT:
        blockers.append(Blocker(BlockerKind.TRIGGER_RULE, trigger.reason))
    if not past.ok:
        blockers.append(Blocker(BlockerKind.DEPENDS_ON_PAST, past.reason))
    if state is TaskState.UP_FOR_RETRY and ti.next_retry_at is not None and now < ti.next_retry_at:
        wake_at = ti.next_retry_at
        blockers.append(
            Blocker(
                BlockerKind.RETRY_WAIT,
                f"waiting to retry: retry {ti.try_number} of {ti.max_tries} at "
                f"{format_when(ti.next_retry_at, now)}",
            )
        )
    if (
        state is TaskState.UP_FOR_RESCHEDULE
        and ti.reschedule_at is not None
        and now < ti.reschedule_at
    ):
        wake_at = ti.reschedule_at
        blockers.append(
            Blocker(
                BlockerKind.RESCHEDULE_WAIT,
                f"rescheduled sensor: next check at {format_when(ti.reschedule_at, now)}",
            )
        )
    if blockers:
        reason = "; ".join(b.message for b in blockers)
        return TaskDecision(TaskAction.WAIT, reason, tuple(blockers), wake_at=wake_at)

    source = mapping_source(task) if ti.map_index < 0 else None
    if source is not None:
        return _expand(task, ti, source, upstream_tis, upstream_lengths or {}, max_map_length)
    if task.is_empty:
        return TaskDecision(
            TaskAction.SUCCEED,
            f"empty operator: marked success without running ({trigger.reason})",
        )
    if state is TaskState.UP_FOR_RETRY:
        return TaskDecision(
            TaskAction.SCHEDULE,
            f"retry {ti.try_number} of {ti.max_tries} is due; {trigger.reason}",
        )
    if state is TaskState.UP_FOR_RESCHEDULE:
        return TaskDecision(TaskAction.SCHEDULE, f"rescheduled sensor is due; {trigger.reason}")
    return TaskDecision(TaskAction.SCHEDULE, f"ready: {trigger.reason}")


def _expands_before_trigger_rule(task: TaskLike, lengths: Mapping[LengthKey, int]) -> bool:
    source = mapping_source(task)
    if source is None or expansion_length(source, lengths).length is None:
        return False
    tasks = task.dag.task_dict
    return any(uid in tasks and maps_per_index(task, tasks[uid]) for uid in task.upstream_task_ids)


def _expand(
    task: TaskLike,
    ti: TISnapshot,
    source: object,
    upstream_tis: Sequence[TISnapshot],
    lengths: Mapping[LengthKey, int],
    max_map_length: int | None,
) -> TaskDecision:
    result = expansion_length(source, lengths)
    if result.length is None:
        pending = sorted(
            {t.task_id for t in upstream_tis if t.state not in FINISHED}
            & set(result.missing_task_ids)
        )
        if pending:
            message = (
                f"waiting for the result of {', '.join(map(repr, pending))} to know how many "
                "instances to create"
            )
            return TaskDecision(TaskAction.WAIT, message, (Blocker(BlockerKind.MAPPING, message),))
        return TaskDecision(
            TaskAction.UPSTREAM_FAILED,
            f"cannot expand: no length was recorded for {', '.join(result.missing)} (the "
            "upstream task failed, was skipped or returned nothing to map over)",
        )
    if result.length == 0:
        return TaskDecision(
            TaskAction.SKIP, "mapped over an empty list: no instances to run", map_length=0
        )
    try:
        check_map_length(result.length, task.task_id, max_map_length)
    except MappingError as exc:
        return TaskDecision(TaskAction.FAIL, str(exc), map_length=result.length)
    return TaskDecision(
        TaskAction.EXPAND,
        f"expand into {result.length} mapped instance{'s' if result.length != 1 else ''}",
        map_length=result.length,
    )
