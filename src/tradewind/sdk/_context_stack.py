"""The DAG and task-group blocks being defined right now (``with DAG(...)``, ``with TaskGroup``).

Kept in one private module so the DAG, operator and group modules share it without importing
each other in a circle. Definition happens in one thread per process (DAG files are imported
one at a time), so plain module-level stacks are enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.taskgroup import TaskGroup

_dag_stack: list[DAG] = []
_group_stack: list[TaskGroup] = []
_suspended = 0

# DAGs seen while a file is being imported: entered as a ``with`` block, built by ``@dag``,
# or created as a plain object. DAG processing reads them after the import.
_collected: list[DAG] = []


def current_dag() -> DAG | None:
    """The innermost DAG being defined with ``with``, if any."""
    if _suspended or not _dag_stack:
        return None
    return _dag_stack[-1]


def current_group(dag: DAG | None) -> TaskGroup | None:
    """The innermost task group being defined for ``dag`` (the root group if none)."""
    if _suspended:
        return None
    for group in reversed(_group_stack):
        if group.dag is dag:
            return group
    return dag.task_group if dag is not None else None


def push_dag(dag: DAG) -> None:
    _dag_stack.append(dag)


def pop_dag(dag: DAG) -> None:
    if _dag_stack and _dag_stack[-1] is dag:
        _dag_stack.pop()


def push_group(group: TaskGroup) -> None:
    _group_stack.append(group)


def pop_group(group: TaskGroup) -> None:
    if _group_stack and _group_stack[-1] is group:
        _group_stack.pop()


@contextmanager
def suspended() -> Iterator[None]:
    """Create objects without attaching them to the DAG or group being defined."""
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def register_dag(dag: DAG) -> None:
    """Remember ``dag`` as defined by the file being imported (once)."""
    if not _suspended and not any(d is dag for d in _collected):
        _collected.append(dag)


@contextmanager
def collecting() -> Iterator[list[DAG]]:
    """Collect every DAG defined inside the block (used by DAG-file processing)."""
    saved = _collected[:]
    _collected.clear()
    dags: list[DAG] = []
    try:
        yield dags
    finally:
        dags.extend(_collected)
        _collected[:] = saved
