"""One DAG run in this process, through the real scheduler, for ``tradewind dags test`` and
``DAG.test()``.

The run goes through exactly the code production uses — the scheduler's decisions, state
changes and the task runtime — with the inline executor and a throw-away SQLite database in a
temporary folder, so a test run behaves like a scheduled one without touching the real
metadata database. Task logs are copied to ``log_stream`` (stderr for the CLI).
"""

from __future__ import annotations

import select
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tradewind.state import RunState

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

#: How long a test run waits for its DAG callback to finish before returning.
CALLBACK_WAIT = 60.0


@dataclass
class DagTestResult:
    """The outcome of a test run (the JSON ``tradewind dags test --output json`` prints)."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    task_instances: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v is not None else None

        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": self.state,
            "logical_date": iso(self.logical_date),
            "data_interval_start": iso(self.data_interval_start),
            "data_interval_end": iso(self.data_interval_end),
            "task_instances": self.task_instances,
        }


def test_dag(
    dag: DAG,
    *,
    logical_date: datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    log_stream: IO[str] | None = None,
    on_progress: Callable[[str, str, int, str], None] | None = None,
    timeout: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DagTestResult:
    """Run ``dag`` once and return the outcome (see the module docstring).

    ``logical_date`` defaults to now; the run's data interval is the one a run for that
    logical date gets. ``conf`` overrides params and is validated against them first
    (:class:`~tradewind.errors.ParamValidationError` names the param that fails).
    ``on_progress(task_id, state, map_index, run_id)`` is called as task instances finish.
    """
    import sqlalchemy as sa

    from tradewind.db import dags as db_dags
    from tradewind.db import pools as db_pools
    from tradewind.db import runs as db_runs
    from tradewind.db import task_instances as db_tis
    from tradewind.db import xcom as db_xcom
    from tradewind.db.engine import create_engine, make_session_factory, session_scope
    from tradewind.db.models import Base, TaskInstance
    from tradewind.db.task_data import DbTaskDataService
    from tradewind.executors.inline import InlineExecutor
    from tradewind.scheduler import decisions as d
    from tradewind.scheduler.job import RunFinished, Scheduler, SchedulerOptions, utcnow
    from tradewind.sdk.params import merge_params
    from tradewind.serialization import deserialize_dag, serialize_dag
    from tradewind.state import FINISHED

    now_fn = clock or utcnow
    dag.validate()
    merge_params(dag.params, {}, dict(conf or {}))  # bad conf fails before anything runs
    document = serialize_dag(dag)
    view = deserialize_dag(document)
    start = now_fn()
    logical = logical_date or start
    interval = d.manual_run_interval(view.timetable, logical)
    run_id = d.run_id_for("manual", logical)

    with tempfile.TemporaryDirectory(prefix="tradewind-dags-test-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'test.db'}")
        Base.metadata.create_all(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            db_pools.set_pool(s, "default_pool", 128, description="Default pool")
            synced = db_dags.sync_dag(s, document, now=start, paused_upon_creation=False)
            db_runs.create_run(
                s,
                view,
                run_id=run_id,
                run_type="manual",
                run_after=start,
                now=start,
                dag_version_id=synced.version_id,
                logical_date=logical,
                data_interval=(interval.start, interval.end),
                conf=conf,
            )
        executor = InlineExecutor(
            parallelism=64,
            data=DbTaskDataService(factory, fernet=None),
            log_folder=Path(tmp) / "logs",
            load_dag=lambda _fileloc, _dag_id: dag,
            log_stream=log_stream,
        )
        finished: list[RunFinished] = []
        scheduler = Scheduler(
            factory,
            executor,
            SchedulerOptions(
                poll_interval=0.05,
                log_folder=Path(tmp) / "logs",
                dag_ids=frozenset({dag.dag_id}),
                create_scheduled_runs=False,
            ),
            clock=now_fn,
            on_run_finished=finished.append,
        )
        reported: set[tuple[str, int, int]] = set()
        deadline = time.monotonic() + timeout if timeout else None
        scheduler.start()
        try:
            while not finished:
                wait = scheduler.step()
                if on_progress is not None:
                    _report(factory, dag.dag_id, run_id, reported, on_progress, FINISHED)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"dags test of {dag.dag_id!r} did not finish in {timeout} s")
                if wait > 0 and not finished:
                    # The executor's descriptor is readable as soon as tries are queued, so
                    # this returns at once when there is work (a plain sleep here would add
                    # up to a poll interval per task).
                    select.select([executor.fileno()], [], [], min(wait, 0.05))
            _finish_callbacks(scheduler, Path(tmp) / "logs", dag.dag_id, run_id, log_stream)
        finally:
            scheduler.stop()
            executor.close()
        if on_progress is not None:
            _report(factory, dag.dag_id, run_id, reported, on_progress, FINISHED)
        with session_scope(factory) as s:
            tis = list(
                s.scalars(
                    sa.select(TaskInstance)
                    .where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id)
                    .order_by(
                        TaskInstance.start_date.is_(None),
                        TaskInstance.start_date,
                        TaskInstance.task_id,
                        TaskInstance.map_index,
                    )
                )
            )
            rows = []
            for ti in tis:
                try:
                    value = db_xcom.get_xcom(
                        s, dag.dag_id, run_id, ti.task_id, "return_value", ti.map_index
                    )
                except KeyError:
                    value = None
                rows.append(
                    {
                        "task_id": ti.task_id,
                        "map_index": ti.map_index,
                        "state": str(ti.state),
                        "try_number": ti.try_number,
                        "start_date": ti.start_date.isoformat() if ti.start_date else None,
                        "end_date": ti.end_date.isoformat() if ti.end_date else None,
                        "return_value": _jsonable(value),
                    }
                )
            del db_tis
        engine.dispose()
    return DagTestResult(
        dag_id=dag.dag_id,
        run_id=run_id,
        state=str(finished[0].state),
        logical_date=logical,
        data_interval_start=interval.start,
        data_interval_end=interval.end,
        task_instances=rows,
    )


def _finish_callbacks(
    scheduler: Any, log_folder: Path, dag_id: str, run_id: str, log_stream: IO[str] | None
) -> None:
    """Wait for the run's DAG callback (it runs in a child process) and copy its log to
    ``log_stream``: the temporary folder holding it is gone once the test returns."""
    from tradewind.scheduler.callbacks import callback_log_path

    done = scheduler.wait_for_callbacks(timeout=CALLBACK_WAIT)
    path = callback_log_path(log_folder, dag_id, run_id)
    if log_stream is not None and path.exists():
        log_stream.write(path.read_text(errors="replace"))
        if not done:
            log_stream.write(
                f"the DAG callback still runs after {CALLBACK_WAIT:g} s; not waiting for it\n"
            )
        log_stream.flush()


def _report(
    factory: Any,
    dag_id: str,
    run_id: str,
    reported: set[tuple[str, int, int]],
    on_progress: Callable[[str, str, int, str], None],
    finished_states: Any,
) -> None:
    import sqlalchemy as sa

    from tradewind.db.engine import session_scope
    from tradewind.db.models import TaskInstance

    with session_scope(factory) as s:
        rows = s.execute(
            sa.select(
                TaskInstance.task_id,
                TaskInstance.map_index,
                TaskInstance.try_number,
                TaskInstance.state,
            ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
    for task_id, map_index, try_number, state in rows:
        key = (task_id, map_index, try_number)
        done = state in finished_states or str(state) == "up_for_retry"
        if done and key not in reported:
            reported.add(key)
            on_progress(task_id, str(state), map_index, run_id)


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def default_progress(stream: IO[str] = sys.stderr) -> Callable[[str, str, int, str], None]:
    """A progress printer: one line per finished task instance."""

    def show(task_id: str, state: str, map_index: int, _run_id: str) -> None:
        label = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
        print(f"  {state:<16} {label}", file=stream, flush=True)

    return show
