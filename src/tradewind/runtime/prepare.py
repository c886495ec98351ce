"""Work done once, ahead of many tries: by a process that forks the task processes of its
tries (the local executor's workers), so that each fork finds it done.

* :func:`prepare_task` (or :func:`prepare_dag` for all its tasks): the template environment of
  its DAG and its compiled templates (a task without templates never builds one), and which
  copy its operator class needs;
* :func:`prepare_run`, before each try: the context entries that follow from the run's dates.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from tradewind.runtime.task_runner import RunInfo, _copies_plainly

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

__all__ = ["prepare_dag", "prepare_run", "prepare_task"]

log = logging.getLogger(__name__)


def _renders_when_run(task: Any) -> bool:
    # ``@task.bash`` renders the command its function returns, inside ``execute``.
    return callable(getattr(task, "python_callable", None)) and hasattr(task, "bash_command")


def prepare_task(dag: DAG, task_id: str) -> bool:
    """Do ahead what every try of one task would otherwise do again: when the task has
    templates, build its DAG's template environment and compile them into it.

    Returns True when templates were compiled now (a process forked earlier lacks them).
    Never raises (a broken template fails the try that renders it, as it would anyway).
    """
    from tradewind.sdk.templating import precompile, template_sources

    try:
        task = dag.get_task(task_id)
        _copies_plainly(type(task))
        sources = template_sources(task)
        if not sources and not _renders_when_run(task):
            return False
        precompile(dag.get_template_env(), sources, getattr(task, "template_ext", ()) or ())
        return True
    except Exception:
        log.debug("cannot prepare task %s of DAG %s", task_id, dag.dag_id, exc_info=True)
        return False


def prepare_dag(dag: DAG) -> None:
    """:func:`prepare_task` for every task of ``dag``."""
    for task_id in dag.task_ids:
        prepare_task(dag, task_id)


# The runs prepare_run did the work for, most recent last (as many as the SDK keeps).
_prepared_runs: OrderedDict[tuple[Any, ...], None] = OrderedDict()


def prepare_run(run: RunInfo) -> bool:
    """Compute the context entries that follow from ``run``'s dates (``ds``, ``logical_date``
    ...) once, for all of its tries. Never raises.

    Returns True when the work was done now (a process forked earlier does not have it).
    """
    if run.logical_date is None:
        return False
    run_type = str(getattr(run.run_type, "value", run.run_type) or "")
    key = (run_type, run.logical_date, run.data_interval_start, run.data_interval_end)
    if key in _prepared_runs:
        _prepared_runs.move_to_end(key)
        return False
    from tradewind.sdk.context import run_date_entries

    try:
        run_date_entries(
            run_type=run_type,
            logical_date=run.logical_date,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
        )
    except Exception:
        log.debug("cannot prepare the dates of run %s", run.run_id, exc_info=True)
    _prepared_runs[key] = None
    while len(_prepared_runs) > 64:
        _prepared_runs.popitem(last=False)
    return True
