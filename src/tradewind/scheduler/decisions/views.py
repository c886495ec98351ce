"""The parts of a DAG the decisions read, as protocols.

:class:`~tradewind.serialization.views.SerializedDAG` and
:class:`~tradewind.serialization.views.SerializedTask` satisfy them; the protocols only say
which attributes the pure decisions depend on (so tests may use small stand-ins).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from tradewind.sdk.trigger_rule import TriggerRule

__all__ = ["DagLike", "TaskGroupLike", "TaskLike"]


class TaskGroupLike(Protocol):
    """A task group: only what mapped-group expansion needs."""

    @property
    def group_id(self) -> str | None:
        """The group id (None for the root group)."""
        ...

    @property
    def expand_input(self) -> Any:
        """What the group is expanded over, or None."""
        ...

    @property
    def parent_group(self) -> TaskGroupLike | None:
        """The enclosing group."""
        ...


class TaskLike(Protocol):
    """A task as the scheduler's decisions see it."""

    @property
    def task_id(self) -> str:
        """The task id."""
        ...

    @property
    def upstream_task_ids(self) -> set[str]:
        """Direct upstream task ids."""
        ...

    @property
    def downstream_task_ids(self) -> set[str]:
        """Direct downstream task ids."""
        ...

    @property
    def trigger_rule(self) -> TriggerRule | str:
        """The trigger rule."""
        ...

    @property
    def depends_on_past(self) -> bool:
        """Whether the previous run's instance must have succeeded (or been skipped)."""
        ...

    @property
    def wait_for_downstream(self) -> bool:
        """Whether the previous run's direct downstream instances must be done too."""
        ...

    @property
    def ignore_first_depends_on_past(self) -> bool:
        """Whether depends_on_past passes when the task has not run before."""
        ...

    @property
    def wait_for_past_depends_before_skipping(self) -> bool:
        """Whether trigger-rule skips wait for depends_on_past."""
        ...

    @property
    def start_date(self) -> datetime | None:
        """The task's start date (the DAG's unless set on the task)."""
        ...

    @property
    def is_mapped(self) -> bool:
        """Whether the task expands into several instances."""
        ...

    @property
    def is_empty(self) -> bool:
        """Whether the scheduler may mark it success without running it."""
        ...

    @property
    def is_setup(self) -> bool:
        """Whether this is a setup task."""
        ...

    @property
    def is_teardown(self) -> bool:
        """Whether this is a teardown task."""
        ...

    @property
    def on_failure_fail_dagrun(self) -> bool:
        """Whether a teardown's failure fails the run."""
        ...

    @property
    def expand_input(self) -> Any:
        """What a mapped task expands over (None for unmapped tasks)."""
        ...

    @property
    def task_group(self) -> TaskGroupLike | None:
        """The enclosing task group."""
        ...

    @property
    def dag(self) -> DagLike:
        """The DAG the task belongs to."""
        ...


class DagLike(Protocol):
    """A DAG as the scheduler's decisions see it."""

    @property
    def dag_id(self) -> str:
        """The DAG id."""
        ...

    @property
    def task_dict(self) -> Mapping[str, TaskLike]:
        """Every task by id."""
        ...

    @property
    def catchup(self) -> bool:
        """Whether missed intervals are run."""
        ...

    @property
    def dagrun_timeout(self) -> timedelta | None:
        """How long a run may take before it fails."""
        ...


def iter_enclosing_groups(task: TaskLike) -> Iterator[TaskGroupLike]:
    """The task's group, then each enclosing group up to (and including) the root."""
    group = task.task_group
    while group is not None:
        yield group
        group = group.parent_group
