"""``tradewind tasks test|state|clear|mark|why``: one task, in this process or in the database.

``tasks test`` imports the DAG file here and runs one task try with an in-memory client: no
database writes, upstream XComs are absent. The others read or change task instances in the
metadata database; ``clear`` and ``mark`` are audited, and a running scheduler notices them at
its next poll.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._engine import (
    dag_or_fail,
    iso,
    load_live_dag,
    parse_conf,
    parse_when,
    stdout_to_stderr,
    touch_run,
)
from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, dag_source_options, pass_state
from tradewind.cli.db_cmd import audit_change, confirm_or_fail, db_errors, now_utc, open_db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.db.models import DagRun, TaskInstance
    from tradewind.serialization import SerializedDAG

__all__ = ["clear_cmd", "mark_cmd", "state_cmd", "test_cmd", "why_cmd"]

_MAP_INDEX = click.option(
    "--map-index",
    "-m",
    type=click.IntRange(min=-1),
    default=None,
    help="Map index of a mapped task instance (default: -1, the unmapped instance).",
)


def ti_json(ti: TaskInstance) -> dict[str, Any]:
    """A task instance's fields for ``--output json``."""
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "state": str(ti.state),
        "try_number": ti.try_number,
        "max_tries": ti.max_tries,
        "start_date": iso(ti.start_date),
        "end_date": iso(ti.end_date),
        "duration": ti.duration,
        "pool": ti.pool,
        "hostname": ti.hostname,
        "last_error": ti.last_error,
    }


def _version_view(s: Session, run: DagRun) -> SerializedDAG:
    from tradewind.db import dags as db_dags
    from tradewind.serialization import deserialize_dag

    version = (
        db_dags.get_version(s, run.dag_version_id)
        if run.dag_version_id is not None
        else db_dags.get_latest_version(s, run.dag_id)
    )
    return deserialize_dag(version.document)


def _task_or_fail(task_ids: list[str], dag_id: str, task_id: str) -> None:
    if task_id in task_ids:
        return
    import difflib

    close = difflib.get_close_matches(task_id, task_ids, n=5, cutoff=0.5)
    suggestion = f"; did you mean: {', '.join(close)}?" if close else ""
    fail(f"DAG {dag_id!r} has no task {task_id!r}{suggestion}", ExitCode.USAGE)


def _tis_of(s: Session, run: DagRun, task_id: str, map_index: int | None) -> list[TaskInstance]:
    from tradewind.db import task_instances as db_tis

    tis = db_tis.list_tis(s, run.dag_id, run.run_id, task_ids=[task_id])
    if map_index is not None:
        tis = [t for t in tis if t.map_index == map_index]
    if not tis:
        where = f"{run.dag_id}/{run.run_id}/{task_id}"
        where += f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
        fail(f"no task instance {where}", ExitCode.USAGE)
    return tis


# --- test -----------------------------------------------------------------------------------------


@click.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.option(
    "--logical-date",
    "-e",
    "logical_date_text",
    metavar="ISO",
    help="Logical date of the run the task sees (default: now).",
)
@_MAP_INDEX
@click.option("--conf", "-c", "conf_text", metavar="JSON", help="dag_run.conf as a JSON object.")
@output_option
@dag_source_options
@pass_state
def test_cmd(
    state: CliState,
    dag_id: str,
    task_id: str,
    logical_date_text: str | None,
    map_index: int | None,
    conf_text: str | None,
    output: str,
) -> None:
    """Run one try of TASK_ID of DAG_ID here, ignoring dependencies, writing nothing.

    The task's log goes to stderr; its return value is printed on stdout (as JSON when it can
    be). Exits 1 when the try fails. Upstream XComs are absent; variables and connections come
    from the environment and (when it exists) the metadata database.
    """
    settings = state.settings()
    logical = parse_when(logical_date_text, settings, "--logical-date")
    conf = parse_conf(conf_text)
    guard = stdout_to_stderr() if output == "json" else contextlib.nullcontext()
    with guard:
        dag = load_live_dag(state, dag_id)
        _task_or_fail(list(dag.task_dict), dag_id, task_id)
        outcome = _run_one(state, dag, task_id, logical, map_index, conf)
    value = _jsonable(outcome.return_value)
    state_text = str(outcome.state)
    echo_err(f"Task {dag_id}.{task_id}: {state_text} in {outcome.duration:.2f} s")
    if output == "json":
        print_json(
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "map_index": -1 if map_index is None else map_index,
                "state": state_text,
                "return_value": value,
                "error": outcome.error,
                "duration": outcome.duration,
            }
        )
    elif outcome.return_value is not None:
        import json

        click.echo(json.dumps(value) if not isinstance(value, str) else value)
    if state_text not in ("success", "skipped"):
        raise click.exceptions.Exit(int(ExitCode.FAILURE))


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _register_db_secrets(state: CliState) -> None:
    """Let the task read stored variables and connections (read-only), when there is a
    database at the current schema; otherwise only the environment is used."""
    settings = state.settings()
    url = settings.database.url
    if url.startswith("sqlite:///") and not __import__("os").path.exists(url[len("sqlite:///") :]):
        return
    try:
        from tradewind.db.database import Database
        from tradewind.db.migrate import HEAD_REVISION, current_revision
        from tradewind.db.task_data import DbSecretsBackend
        from tradewind.sdk import secrets

        database = Database.from_settings(settings)
        if current_revision(database.engine) != HEAD_REVISION:
            return
        secrets.register_backend(DbSecretsBackend(database.session_factory, fernet=database.fernet))
    except Exception as exc:  # only a convenience: the task may not need any
        echo_err(f"note: stored variables and connections are not available: {exc}")


def _run_one(
    state: CliState,
    dag: Any,
    task_id: str,
    logical: Any,
    map_index: int | None,
    conf: dict[str, Any],
) -> Any:
    import logging

    from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, run_task
    from tradewind.scheduler import decisions as d
    from tradewind.sdk.timezone import utcnow
    from tradewind.serialization import deserialize_dag, serialize_dag

    now = utcnow()
    logical = logical or now
    view = deserialize_dag(serialize_dag(dag))
    interval = d.manual_run_interval(view.timetable, logical)
    run_id = d.run_id_for("manual", logical)
    run = RunInfo(
        dag_id=dag.dag_id,
        run_id=run_id,
        run_type="manual",
        logical_date=logical,
        data_interval_start=interval.start,
        data_interval_end=interval.end,
        conf=conf,
        start_date=now,
    )
    ti = TaskInstanceInfo(
        dag_id=dag.dag_id,
        task_id=task_id,
        run_id=run_id,
        map_index=-1 if map_index is None else map_index,
        max_tries=0,
    )
    _register_db_secrets(state)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))
    logger = logging.getLogger("tradewind")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return run_task(
            dag.task_dict[task_id], dag=dag, run=run, ti=ti, client=InMemoryTaskClient()
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# --- state ----------------------------------------------------------------------------------------


@click.command("state")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@_MAP_INDEX
@output_option
@pass_state
def state_cmd(
    state: CliState, dag_id: str, run_id: str, task_id: str, map_index: int | None, output: str
) -> None:
    """Print the state of TASK_ID in run RUN_ID of DAG_ID (one line per mapped instance)."""
    from tradewind.cli.dag_ops import find_run

    database = open_db(state)
    with db_errors(), database.session() as s:
        run = find_run(s, state, dag_id, run_id)
        rows = [ti_json(t) for t in _tis_of(s, run, task_id, map_index)]
    if output == "json":
        print_json(rows[0] if len(rows) == 1 else rows)
        return
    for row in rows:
        prefix = f"[{row['map_index']}] " if row["map_index"] >= 0 and len(rows) > 1 else ""
        click.echo(f"{prefix}{row['state']}")


# --- clear ----------------------------------------------------------------------------------------


@click.command("clear")
@click.argument("dag_id")
@click.option("--run-id", "-r", "run_refs", multiple=True, help="Only this run (repeatable).")
@click.option("--task-regex", "-t", default=None, help="Only tasks whose id matches (re.search).")
@click.option("--start-date", "-s", "start_text", metavar="ISO", help="Runs from this date.")
@click.option("--end-date", "-e", "end_text", metavar="ISO", help="Runs up to this date.")
@click.option("--upstream", "-u", is_flag=True, help="Also their upstream tasks.")
@click.option("--downstream", "-d", is_flag=True, help="Also their downstream tasks.")
@click.option("--only-failed", "-f", is_flag=True, help="Only failed and upstream_failed ones.")
@click.option("--dry-run", is_flag=True, help="List what would be cleared; change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@output_option
@pass_state
def clear_cmd(
    state: CliState,
    dag_id: str,
    run_refs: tuple[str, ...],
    task_regex: str | None,
    start_text: str | None,
    end_text: str | None,
    upstream: bool,
    downstream: bool,
    only_failed: bool,
    dry_run: bool,
    yes: bool,
    output: str,
) -> None:
    """Clear task instances of DAG_ID so the scheduler runs them again.

    A finished run with cleared instances is queued again; an instance cleared while it
    runs is stopped and started afresh. Each cleared instance gets its retries again.
    """
    from tradewind.cli.dag_ops import find_run
    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs
    from tradewind.db import task_instances as db_tis
    from tradewind.serialization import deserialize_dag

    settings = state.settings()
    start = parse_when(start_text, settings, "--start-date")
    end = parse_when(end_text, settings, "--end-date")
    try:
        pattern = re.compile(task_regex) if task_regex else None
    except re.error as exc:
        raise click.BadParameter(f"invalid regular expression: {exc}", param_hint="-t") from None
    database = open_db(state)
    now = now_utc()

    def clear(s: Session, dry: bool) -> list[dict[str, Any]]:
        dag_or_fail(s, dag_id)
        if run_refs:
            runs = [find_run(s, state, dag_id, ref) for ref in run_refs]
        else:
            runs = db_runs.list_runs(s, dag_id=dag_id, logical_date_from=start, logical_date_to=end)
        latest = deserialize_dag(db_dags.get_latest_document(s, dag_id))
        if pattern is not None and not any(pattern.search(t) for t in latest.task_ids):
            fail(f"no task of DAG {dag_id!r} matches {task_regex!r}", ExitCode.USAGE)
        by_version: dict[int | None, list[DagRun]] = {}
        for run in runs:
            by_version.setdefault(run.dag_version_id, []).append(run)
        rows: list[dict[str, Any]] = []
        for group in by_version.values():
            view = _version_view(s, group[0])
            task_ids = [t for t in view.task_ids if pattern is None or pattern.search(t)]
            if not task_ids:
                continue
            # A clear refreshes the rows it changes: note their states on a dry pass first.
            for dry_pass in (True,) if dry else (True, False):
                matched = db_tis.clear_task_instances(
                    s,
                    view,
                    [r.run_id for r in group],
                    task_ids,
                    now=now,
                    upstream=upstream,
                    downstream=downstream,
                    only_failed=only_failed,
                    dry_run=dry_pass,
                )
                if dry_pass:
                    rows += [
                        {"run_id": t.run_id, "task_id": t.task_id, "map_index": t.map_index,
                         "state": str(t.state)}
                        for t in matched
                    ]  # fmt: skip
        if not dry:
            for run_id in sorted({r["run_id"] for r in rows}):
                touch_run(s, dag_id, run_id, now)
        return rows

    with db_errors(), database.session() as s:
        preview = clear(s, True)
    if not preview:
        echo_err("No task instances to clear.")
        if output == "json":
            print_json([])
        return
    if dry_run:
        _show_cleared(preview, output, "would be cleared")
        return
    confirm_or_fail(f"this clears {len(preview)} task instance(s) of DAG {dag_id!r}", yes)
    with db_errors(), database.session() as s:
        done = clear(s, False)
        audit_change(
            s,
            "cli.tasks.clear",
            dag_id=dag_id,
            extra={
                "runs": sorted({r["run_id"] for r in done}),
                "task_regex": task_regex,
                "upstream": upstream,
                "downstream": downstream,
                "only_failed": only_failed,
                "cleared": len(done),
            },
        )
    _show_cleared(done, output, "cleared")


def _show_cleared(rows: list[dict[str, Any]], output: str, what: str) -> None:
    if output == "json":
        print_json(rows)
        return
    print_table(
        ["run_id", "task_id", "map_index", "state before"],
        [[r["run_id"], r["task_id"], r["map_index"] if r["map_index"] >= 0 else "", r["state"]]
         for r in rows],
    )  # fmt: skip
    echo_err(f"{len(rows)} task instance(s) {what}.")


# --- mark -----------------------------------------------------------------------------------------


@click.command("mark")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option(
    "--state",
    "-s",
    "new_state",
    type=click.Choice(["success", "failed", "skipped"]),
    required=True,
    help="The state to set.",
)
@_MAP_INDEX
@pass_state
def mark_cmd(
    state: CliState,
    dag_id: str,
    run_id: str,
    task_id: str,
    new_state: str,
    map_index: int | None,
) -> None:
    """Set TASK_ID in run RUN_ID of DAG_ID to success, failed or skipped.

    Without --map-index every instance of a mapped task is marked. Downstream tasks react at
    the scheduler's next poll.
    """
    from tradewind.cli.dag_ops import find_run
    from tradewind.db import task_instances as db_tis
    from tradewind.state import TaskState

    target = TaskState(new_state)
    database = open_db(state)
    now = now_utc()
    with db_errors(), database.session() as s:
        run = find_run(s, state, dag_id, run_id)
        tis = _tis_of(s, run, task_id, map_index)
        before = {t.id: (t.map_index, str(t.state)) for t in tis}
        changed = db_tis.mark_state(s, list(before), target, now=now)
        if changed:
            touch_run(s, dag_id, run.run_id, now)
            for ti_id in changed:
                index, old = before[ti_id]
                audit_change(
                    s,
                    "cli.tasks.mark",
                    before={"state": old},
                    after={"state": new_state},
                    dag_id=dag_id,
                    run_id=run.run_id,
                    task_id=task_id,
                    map_index=index,
                )
    unchanged = len(before) - len(changed)
    echo_err(f"Marked {len(changed)} task instance(s) of {task_id!r} {new_state}.")
    if unchanged:
        echo_err(
            f"{unchanged} instance(s) were left as they are (already {new_state}, or in a state "
            f"that may not become {new_state})."
        )
    if not changed:
        raise click.exceptions.Exit(int(ExitCode.FAILURE))


# --- why ------------------------------------------------------------------------------------------


@click.command("why")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@_MAP_INDEX
@output_option
@pass_state
def why_cmd(
    state: CliState, dag_id: str, run_id: str, task_id: str, map_index: int | None, output: str
) -> None:
    """Explain why TASK_ID in run RUN_ID of DAG_ID is not running, most fundamental first."""
    from tradewind.cli.dag_ops import find_run
    from tradewind.scheduler import decisions as d
    from tradewind.scheduler import loading

    settings = state.settings()
    database = open_db(state)
    now = now_utc()
    with db_errors(), database.session() as s:
        dag = dag_or_fail(s, dag_id)
        run = find_run(s, state, dag_id, run_id)
        view = _version_view(s, run)
        _task_or_fail(view.task_ids, dag_id, task_id)
        tis = _tis_of(s, run, task_id, map_index)
        if len(tis) > 1:
            indexes = ", ".join(str(t.map_index) for t in tis[:10])
            fail(
                f"task {task_id!r} is mapped into {len(tis)} instances ({indexes}"
                f"{', …' if len(tis) > 10 else ''}); choose one with --map-index",
                ExitCode.USAGE,
            )
        ti = tis[0]
        decision, ups = loading.decide_ti(
            s, view, run, ti, now=now, max_map_length=settings.core.max_map_length
        )
        admission = _admission(s, view, run, ti, settings) if str(ti.state) == "scheduled" else None
        run_blocked = any(b.kind is d.BlockerKind.RUN_STATE for b in decision.blockers)
        reasons = d.why_not_running(
            ti=loading.snapshot(ti),
            decision=decision,
            admission=admission,
            run_state=None if run_blocked else run.state,
            dag_paused=dag.is_paused and run.backfill_id is None,
        )
        data = {
            **ti_json(ti),
            "run_state": str(run.state),
            "dag_paused": dag.is_paused,
            "decision": {"action": str(decision.action), "reason": decision.reason},
            "upstream": [
                {"task_id": u.task_id, "map_index": u.map_index, "state": str(u.state)}
                for u in sorted(ups, key=lambda u: (u.task_id, u.map_index))
            ],
            "reasons": reasons,
        }
    if output == "json":
        print_json(data)
        return
    label = task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
    click.echo(f"{label} in {run.run_id} is {data['state']} (run {data['run_state']}):")
    for number, reason in enumerate(reasons, 1):
        click.echo(f"  {number}. {reason}")


def _admission(
    s: Session, view: SerializedDAG, run: DagRun, ti: TaskInstance, settings: Any
) -> Any:
    """Why admission holds a scheduled instance now (a Blocker), or None when it fits."""
    from tradewind.scheduler import loading

    return loading.admission_blocker(
        s,
        view,
        run,
        ti,
        parallelism=settings.core.parallelism,
        max_active_tasks_per_dag=settings.core.max_active_tasks_per_dag,
    )
