"""Branching: a task that decides which of its downstream tasks run.

A branch task returns a task id, a task-group id (which stands for the group's root tasks), a
list of those, or ``None``. Every *direct* downstream task that was not chosen is skipped,
except a task that is also downstream of a chosen one, so a "join" placed right after the
branch still runs::

    class PickRegion(BaseBranchOperator):
        def choose_branch(self, context):
            return "load_eu" if context["params"]["region"] == "eu" else "load_us"

The operator never touches the metadata database: it declares the tasks to skip through the
running task instance (``context["ti"].skip_downstream(task_ids)``), and the task runtime
reports them with the try's outcome. The chosen direct downstream ids are also pushed as XCom
``skipmixin_key`` = ``{"followed": [...]}`` so the decision can be re-applied when tasks are
cleared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tradewind.errors import InvalidArgumentError, TradewindError
from tradewind.sdk.baseoperator import BaseOperator

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.context import Context
    from tradewind.sdk.dag_definition import DAG

__all__ = [
    "SKIPMIXIN_KEY",
    "BaseBranchOperator",
    "do_branch",
    "expand_branch_ids",
    "normalize_branch_result",
    "request_skip",
]

#: XCom key under which branch tasks record the direct downstream ids they followed.
SKIPMIXIN_KEY = "skipmixin_key"

log = logging.getLogger("tradewind.task")


def normalize_branch_result(result: Any, task_id: str) -> list[str]:
    """The branch ids in ``result`` (a str, an iterable of str, or None) as a list."""
    if result is None:
        return []
    if isinstance(result, str):
        return [result]
    if isinstance(result, Iterable) and not isinstance(result, bytes | bytearray | Mapping):
        items = list(result)
        if all(isinstance(item, str) for item in items):
            return items
    raise InvalidArgumentError(
        f"branch task {task_id!r} must return a task id, a task group id, a list of them, or "
        f"None; got {type(result).__name__} {result!r}",
        argument="branch",
        owner=task_id,
    )


def _task_dag(task: AbstractOperator, context: Mapping[str, Any]) -> DAG:
    dag = task.dag if task.dag is not None else context.get("dag")
    if dag is None:
        raise TradewindError(f"branch task {task.task_id!r} is not part of a DAG")
    return dag


def expand_branch_ids(dag: DAG, branch_ids: Iterable[str], task_id: str) -> set[str]:
    """Task ids for ``branch_ids``: a task id stays as it is, a group id becomes the group's
    root tasks. An id that names neither raises :class:`InvalidArgumentError` listing them."""
    expanded: set[str] = set()
    unknown: list[str] = []
    for branch_id in branch_ids:
        if branch_id in dag.task_dict:
            expanded.add(branch_id)
            continue
        group = dag.task_group.find_group(branch_id)
        if group is not None and not group.is_root:
            expanded.update(t.task_id for t in group.roots)
            continue
        unknown.append(branch_id)
    if unknown:
        raise InvalidArgumentError(
            f"branch task {task_id!r} chose unknown task or task group id(s) "
            f"{', '.join(map(repr, unknown))} in DAG {dag.dag_id!r}",
            argument="branch",
            owner=task_id,
        )
    return expanded


def request_skip(context: Mapping[str, Any], task_ids: Iterable[str]) -> None:
    """Ask the task runtime to mark ``task_ids`` skipped when this try ends."""
    ids = sorted(set(task_ids))
    if not ids:
        return
    ti = context["ti"]
    skip = getattr(ti, "skip_downstream", None)
    if not callable(skip):
        raise TradewindError(
            f"the task instance {ti!r} cannot skip tasks: it has no skip_downstream(); run the "
            "task through tradewind.runtime.run_task"
        )
    log.info("Skipping tasks: %s", ", ".join(ids))
    skip(ids)


def do_branch(task: AbstractOperator, context: Context, branches: Any) -> Any:
    """Apply a branch decision of ``task`` and return ``branches`` unchanged.

    Skips every direct downstream task that is neither chosen nor downstream of a chosen
    task, and pushes XCom ``skipmixin_key`` = ``{"followed": [direct downstream ids kept]}``.
    """
    chosen = normalize_branch_result(branches, task.task_id)
    dag = _task_dag(task, context)
    kept = expand_branch_ids(dag, chosen, task.task_id)
    for branch_id in list(kept):
        kept |= dag.get_task(branch_id).get_flat_relative_ids(upstream=False)
    direct = task.downstream_task_ids
    followed = sorted(t for t in direct if t in kept)
    log.info("Branch %r chose %s; following %s", task.task_id, chosen or "nothing", followed)
    context["ti"].xcom_push(key=SKIPMIXIN_KEY, value={"followed": followed})
    request_skip(context, (t for t in direct if t not in kept))
    return branches


class BaseBranchOperator(BaseOperator):
    """Base class for branch operators: implement :meth:`choose_branch`.

    ``execute`` calls ``choose_branch(context)``, applies the decision (see the module
    docstring) and returns the choice, which is pushed as the task's return value.
    """

    #: Marks operators that may skip other tasks (shown by the UI, kept by serialization).
    inherits_from_skipmixin = True

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        """Return the task id(s) or task-group id(s) to follow, or None to skip them all."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose_branch(context)")

    def execute(self, context: Context) -> Any:
        """Choose the branch and skip the direct downstream tasks not chosen."""
        return do_branch(self, context, self.choose_branch(context))
