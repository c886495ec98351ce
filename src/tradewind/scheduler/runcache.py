"""The scheduler's in-memory copy of the task instances of the runs it is working on.

Examining a run needs every instance's state (a fan-in task counts all its upstream
instances). Reading them from the database on every examination costs O(instances) per
step, so a run of n instances costs O(n²) to finish. Instead, the scheduler reads a run's
instances once and then keeps the copy up to date with the changes it makes itself.

The copy is only as good as that bookkeeping, so the rules are strict:

* every state change the scheduler writes is applied to the copy in the same step, with the
  values written (:meth:`RunTIs.update`);
* a compare-and-set the scheduler loses means someone else changed the row: the copy of
  that run is dropped (:meth:`RunCache.drop`) and read again at the next examination;
* changes made by others (``tasks clear``, ``tasks mark``, the API) touch the run row's
  ``updated_at``; the scheduler's poll drops the copies of the runs it finds touched;
* a finished run's copy is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db.models import TaskInstance
from tradewind.scheduler import decisions as d
from tradewind.state import TaskState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["WAITING", "RunCache", "RunTIs", "TIKey"]

RunKey = tuple[str, str]
TIKey = tuple[str, int]

#: States in which an instance waits for a decision.
WAITING = frozenset({TaskState.CREATED, TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE})
#: States that mean a try is on its way or running (the run cannot be stuck while one is).
IN_FLIGHT = frozenset(
    {TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING}
)

_COLUMNS = (
    TaskInstance.id,
    TaskInstance.task_id,
    TaskInstance.map_index,
    TaskInstance.state,
    TaskInstance.try_number,
    TaskInstance.max_tries,
    TaskInstance.next_retry_at,
    TaskInstance.reschedule_at,
    TaskInstance.start_date,
    TaskInstance.end_date,
)


@dataclass
class RunTIs:
    """One run's task instances: decision snapshots by ``(task_id, map_index)``, their row ids,
    and indexes kept up to date as states change."""

    snaps: dict[TIKey, d.TISnapshot] = field(default_factory=dict)
    ids: dict[TIKey, str] = field(default_factory=dict)
    by_task: dict[str, list[TIKey]] = field(default_factory=dict)
    #: per task, the keys of its instances waiting for a decision
    waiting: dict[str, set[TIKey]] = field(default_factory=dict)
    in_flight: int = 0
    #: task id -> its direct downstream task ids (from the run's DAG version)
    downstream: Mapping[str, AbstractSet[str]] = field(default_factory=dict)
    #: downstream task id -> states of every instance of its direct upstream tasks, counted
    #: (built on first use, then kept up to date; "total" counts every instance)
    _upstream_counts: dict[str, dict[Any, int]] = field(default_factory=dict)

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Add (or replace) instances from rows of :data:`_COLUMNS`."""
        for row in rows:
            key = (row.task_id, row.map_index)
            if key in self.snaps:
                self._unindex(key, self.snaps[key].state)
            else:
                self.by_task.setdefault(row.task_id, []).append(key)
            snap = d.TISnapshot(
                task_id=row.task_id,
                map_index=row.map_index,
                state=row.state,
                try_number=row.try_number,
                max_tries=row.max_tries,
                next_retry_at=row.next_retry_at,
                reschedule_at=row.reschedule_at,
                start_date=row.start_date,
                end_date=row.end_date,
            )
            self.snaps[key] = snap
            self.ids[key] = row.id
            self._index(key, snap.state)

    def remove_task(self, task_id: str) -> None:
        """Forget every instance of ``task_id`` (before reading them again)."""
        for key in self.by_task.pop(task_id, []):
            snap = self.snaps.pop(key)
            self._unindex(key, snap.state)
            self.ids.pop(key, None)

    def update(self, key: TIKey, **changes: Any) -> None:
        """Apply a change the scheduler wrote (``state=…``, ``try_number=…``, dates)."""
        old = self.snaps.get(key)
        if old is None:
            return
        new = replace(old, **changes)
        self.snaps[key] = new
        if new.state is not old.state:
            self._unindex(key, old.state)
            self._index(key, new.state)

    def waiting_in(self, task_ids: Iterable[str] | None) -> list[TIKey]:
        """Waiting instances of ``task_ids`` (None: of every task), in a stable order."""
        if task_ids is None:
            return [k for keys in self.waiting.values() for k in keys]
        return [k for t in task_ids for k in self.waiting.get(t, ())]

    def count_waiting(self) -> int:
        """How many instances wait for a decision."""
        return sum(len(keys) for keys in self.waiting.values())

    def instance_counts(self) -> dict[str, int]:
        """Expanded instances (map index >= 0) per mapped task."""
        out: dict[str, int] = {}
        for task_id, keys in self.by_task.items():
            mapped = sum(1 for k in keys if k[1] >= 0)
            if mapped:
                out[task_id] = mapped
        return out

    def upstream_counts(self, task_id: str, upstream_ids: Iterable[str]) -> d.UpstreamStates:
        """The states of every instance of ``task_id``'s direct upstream tasks, counted."""
        counts = self._upstream_counts.get(task_id)
        if counts is None:
            counts = {"total": 0}
            for up_id in upstream_ids:
                for key in self.by_task.get(up_id, ()):
                    state = self.snaps[key].state
                    counts[state] = counts.get(state, 0) + 1
                    counts["total"] += 1
            self._upstream_counts[task_id] = counts
        get = counts.get
        return d.UpstreamStates(
            success=get(TaskState.SUCCESS, 0),
            failed=get(TaskState.FAILED, 0),
            skipped=get(TaskState.SKIPPED, 0),
            upstream_failed=get(TaskState.UPSTREAM_FAILED, 0),
            removed=get(TaskState.REMOVED, 0),
            total=counts["total"],
        )

    def _index(self, key: TIKey, state: TaskState) -> None:
        if state in WAITING:
            self.waiting.setdefault(key[0], set()).add(key)
        elif state in IN_FLIGHT:
            self.in_flight += 1
        if self._upstream_counts:
            for down in self.downstream.get(key[0], ()):
                counts = self._upstream_counts.get(down)
                if counts is not None:
                    counts[state] = counts.get(state, 0) + 1
                    counts["total"] += 1

    def _unindex(self, key: TIKey, state: TaskState) -> None:
        if self._upstream_counts:
            for down in self.downstream.get(key[0], ()):
                counts = self._upstream_counts.get(down)
                if counts is not None:
                    counts[state] -= 1
                    counts["total"] -= 1
        if state in WAITING:
            keys = self.waiting.get(key[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.waiting[key[0]]
        elif state in IN_FLIGHT:
            self.in_flight -= 1


class RunCache:
    """The copies of the runs the scheduler is working on (see the module docstring)."""

    def __init__(self) -> None:
        self._runs: dict[RunKey, RunTIs] = {}

    def get(self, s: Session, run: RunKey, downstream: Mapping[str, AbstractSet[str]]) -> RunTIs:
        """The run's instances, read from the database if there is no copy. ``downstream``
        maps each task id of the run's DAG version to its direct downstream task ids."""
        cached = self._runs.get(run)
        if cached is None:
            cached = RunTIs(downstream=downstream)
            cached.add_rows(_select(s, run))
            self._runs[run] = cached
        return cached

    def peek(self, run: RunKey) -> RunTIs | None:
        """The copy if there is one (never reads)."""
        return self._runs.get(run)

    def reload_task(self, s: Session, run: RunKey, task_id: str) -> None:
        """Read one task's instances again (after the scheduler expanded it)."""
        cached = self._runs.get(run)
        if cached is None:
            return
        cached.remove_task(task_id)
        cached.add_rows(_select(s, run, task_id))

    def update(self, run: RunKey, key: TIKey, **changes: Any) -> None:
        """Apply a change the scheduler wrote, if the run has a copy."""
        cached = self._runs.get(run)
        if cached is not None:
            cached.update(key, **changes)

    def drop(self, run: RunKey) -> None:
        """Forget the copy: the next examination reads the run again."""
        self._runs.pop(run, None)


def _select(s: Session, run: RunKey, task_id: str | None = None) -> list[Any]:
    query = sa.select(*_COLUMNS).where(TaskInstance.dag_id == run[0], TaskInstance.run_id == run[1])
    if task_id is not None:
        query = query.where(TaskInstance.task_id == task_id)
    return list(s.execute(query))
