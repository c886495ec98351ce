"""The scheduler's decisions as small pure functions: plain data in, a result and a reason out.

Nothing here touches the database, performs I/O or reads the clock (``now`` is a parameter).

=====================  ==========================================================================
module                 decides
=====================  ==========================================================================
``trigger_rules``      what a trigger rule says, from upstream state counts
``readiness``          what to do with one task instance (schedule, wait, skip, expand …)
``expansion``          how many instances a mapped task expands into
``retry``              retry or fail after a failed try, and when the next try may start
``rollup``             a run's state from its task instances (success, failed, deadlock, timeout)
``admission``          which scheduled instances are queued under pools and concurrency limits
``runs``               which runs a timetable asks for now; run ids, backfills, manual runs
``explain``            the reasons a task instance is not running (``tradewind tasks why``)
=====================  ==========================================================================
"""

from __future__ import annotations

from tradewind.scheduler.decisions.admission import (
    DEFAULT_POOL,
    AdmissionResult,
    Candidate,
    admit,
    priority_order,
)
from tradewind.scheduler.decisions.blockers import Blocker, BlockerKind
from tradewind.scheduler.decisions.expansion import (
    ExpansionLength,
    expansion_length,
    mapping_source,
)
from tradewind.scheduler.decisions.explain import explain_blockers, why_not_running
from tradewind.scheduler.decisions.readiness import (
    PastCheck,
    PreviousRun,
    RunSnapshot,
    TaskAction,
    TaskDecision,
    TISnapshot,
    check_depends_on_past,
    decide_task,
)
from tradewind.scheduler.decisions.retry import (
    MAX_RETRY_DELAY,
    FailureOutcome,
    backoff_multiplier,
    next_retry_at,
    outcome_after_failure,
    retry_delay_for,
)
from tradewind.scheduler.decisions.rollup import (
    RunDecision,
    effective_leaf_ids,
    run_state_from_tasks,
)
from tradewind.scheduler.decisions.runs import (
    RunCreationPlan,
    RunType,
    backfill_intervals,
    manual_run_interval,
    next_runs_to_create,
    run_id_for,
    runs_to_start,
)
from tradewind.scheduler.decisions.trigger_rules import (
    TriggerAction,
    TriggerDecision,
    UpstreamStates,
    evaluate_trigger_rule,
)

__all__ = [
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
