"""``tradewind dags pause|unpause|trigger|state|next-execution|delete|reserialize``: DAGs and
their runs in the metadata database.

These read and change the database, not the DAG files: a DAG appears there once the DAG
processor (``tradewind dag-processor``, or ``tradewind dags reserialize`` once) has parsed its
file. Every change is written to the audit log with the OS user as the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._engine import dag_or_fail, iso, parse_conf, parse_when
from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, warn
from tradewind.cli._state import CliState, dag_source_options, pass_state
from tradewind.cli.db_cmd import audit_change, confirm_or_fail, db_errors, now_utc, open_db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.db.models import DagRun

__all__ = [
    "delete_cmd",
    "find_run",
    "next_execution_cmd",
    "pause_cmd",
    "reserialize_cmd",
    "run_json",
    "state_cmd",
    "trigger_cmd",
    "unpause_cmd",
]


def run_json(run: DagRun) -> dict[str, Any]:
    """A run's fields for ``--output json``."""
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "run_type": run.run_type,
        "state": str(run.state),
        "logical_date": iso(run.logical_date),
        "data_interval_start": iso(run.data_interval_start),
        "data_interval_end": iso(run.data_interval_end),
        "run_after": iso(run.run_after),
        "queued_at": iso(run.queued_at),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "conf": run.conf or {},
        "dag_version_id": run.dag_version_id,
        "backfill_id": run.backfill_id,
    }


def find_run(s: Session, state: CliState, dag_id: str, run_ref: str) -> DagRun:
    """The run ``run_ref`` of ``dag_id``: a run id, or (as Airflow users may type) its
    logical date. Exits 2 naming what was not found."""
    from tradewind.db import runs as db_runs
    from tradewind.db.models import DagRun
    from tradewind.errors import NotFound

    dag_or_fail(s, dag_id)
    try:
        return db_runs.get_run(s, dag_id, run_ref)
    except NotFound:
        pass
    try:
        when = parse_when(run_ref, state.settings(), "RUN_ID")
    except click.BadParameter:
        when = None
    if when is not None:
        import sqlalchemy as sa

        run = s.scalar(
            sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == when)
        )
        if run is not None:
            return run
    fail(f"DAG {dag_id!r} has no run {run_ref!r}", ExitCode.USAGE, hint="see `tradewind runs list`")


# --- pause / unpause ------------------------------------------------------------------------------


def _set_paused(state: CliState, dag_id: str, paused: bool) -> None:
    from tradewind.db import dags as db_dags

    database = open_db(state)
    word = "paused" if paused else "unpaused"
    with db_errors(), database.session() as s:
        dag_or_fail(s, dag_id)
        changed = db_dags.set_paused(s, dag_id, paused)
        if changed:
            audit_change(
                s,
                f"cli.dags.{'pause' if paused else 'unpause'}",
                before={"is_paused": not paused},
                after={"is_paused": paused},
                dag_id=dag_id,
            )
    if changed:
        echo_err(f"DAG {dag_id!r} {word}.")
    else:
        echo_err(f"DAG {dag_id!r} was already {word}.")


@click.command("pause")
@click.argument("dag_id")
@pass_state
def pause_cmd(state: CliState, dag_id: str) -> None:
    """Pause DAG_ID: no new run starts until it is unpaused."""
    _set_paused(state, dag_id, True)


@click.command("unpause")
@click.argument("dag_id")
@pass_state
def unpause_cmd(state: CliState, dag_id: str) -> None:
    """Unpause DAG_ID so the scheduler runs it."""
    _set_paused(state, dag_id, False)


# --- trigger ----------------------------------------------------------------------------------------


@click.command("trigger")
@click.argument("dag_id")
@click.option("--conf", "-c", "conf_text", metavar="JSON", help="dag_run.conf as a JSON object.")
@click.option(
    "--logical-date",
    "-e",
    "logical_date_text",
    metavar="ISO",
    help="Logical date of the run (default: now); naive values are in core.default_timezone.",
)
@click.option("--run-id", "-r", default=None, help="Run id (default: manual__<logical date>).")
@output_option
@pass_state
def trigger_cmd(
    state: CliState,
    dag_id: str,
    conf_text: str | None,
    logical_date_text: str | None,
    run_id: str | None,
    output: str,
) -> None:
    """Queue a manual run of DAG_ID; the scheduler starts it. Prints the run id.

    The run uses the DAG's latest version and the data interval its schedule gives the
    logical date. ``--conf`` is checked against the DAG's params first.
    """
    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs
    from tradewind.errors import ParamValidationError
    from tradewind.scheduler import decisions as d
    from tradewind.sdk.params import merge_params
    from tradewind.serialization import deserialize_dag

    settings = state.settings()
    conf = parse_conf(conf_text)
    logical_date = parse_when(logical_date_text, settings, "--logical-date")
    database = open_db(state)
    now = now_utc()
    with db_errors(), database.session() as s:
        dag = dag_or_fail(s, dag_id)
        if not dag.is_active:
            fail(
                f"DAG {dag_id!r} is not active: its file is gone or no longer defines it",
                ExitCode.USAGE,
            )
        version = db_dags.get_latest_version(s, dag_id)
        view = deserialize_dag(version.document)
        try:
            merge_params(view.params, {}, conf)
        except ParamValidationError as exc:
            fail(f"--conf: {exc}", ExitCode.USAGE)
        logical = logical_date or now
        interval = d.manual_run_interval(view.timetable, logical)
        run_id = run_id or d.run_id_for("manual", logical)
        run = db_runs.create_run(
            s,
            view,
            run_id=run_id,
            run_type="manual",
            run_after=now,
            now=now,
            dag_version_id=version.id,
            logical_date=logical,
            data_interval=(interval.start, interval.end),
            conf=conf,
        )
        audit_change(
            s,
            "cli.dags.trigger",
            dag_id=dag_id,
            run_id=run_id,
            extra={"logical_date": iso(logical), "conf": conf},
        )
        data = run_json(run)
        paused = dag.is_paused
    if paused:
        warn(
            f"DAG {dag_id!r} is paused: the run stays queued until it is unpaused "
            f"(`tradewind dags unpause {dag_id}`)"
        )
    if output == "json":
        print_json(data)
    else:
        echo_err(f"Queued run {run_id} of DAG {dag_id!r} (version {version.version_number}).")
        click.echo(run_id)


# --- state / next-execution -------------------------------------------------------------------------


@click.command("state")
@click.argument("dag_id")
@click.argument("run_id")
@output_option
@pass_state
def state_cmd(state: CliState, dag_id: str, run_id: str, output: str) -> None:
    """Print the state of run RUN_ID (a run id or a logical date) of DAG_ID."""
    database = open_db(state)
    with db_errors(), database.session() as s:
        data = run_json(find_run(s, state, dag_id, run_id))
    if output == "json":
        print_json(data)
    else:
        click.echo(data["state"])


def _next_infos(s: Session, dag_id: str, count: int, now: datetime) -> list[Any]:
    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs
    from tradewind.scheduler import decisions as d
    from tradewind.serialization import deserialize_dag
    from tradewind.timetables import DagRunInfo, DataInterval

    dag = db_dags.get_dag(s, dag_id)
    view = deserialize_dag(db_dags.get_latest_version(s, dag_id).document)
    infos: list[DagRunInfo] = []
    if (
        dag.next_dagrun_logical_date is not None
        and dag.next_dagrun_data_interval_start is not None
        and dag.next_dagrun_data_interval_end is not None
    ):
        infos.append(
            DagRunInfo(
                run_after=dag.next_dagrun_run_after or dag.next_dagrun_data_interval_end,
                data_interval=DataInterval(
                    dag.next_dagrun_data_interval_start, dag.next_dagrun_data_interval_end
                ),
            )
        )
        last: DataInterval | None = infos[-1].data_interval
    else:
        latest = db_runs.get_latest_run(s, dag_id, run_types=["scheduled"])
        last = (
            DataInterval(latest.data_interval_start, latest.data_interval_end)
            if latest is not None
            and latest.data_interval_start is not None
            and latest.data_interval_end is not None
            else None
        )
    while len(infos) < count:
        plan = d.next_runs_to_create(
            timetable=view.timetable,
            start_date=view.start_date,
            end_date=view.end_date,
            catchup=view.catchup,
            last_automated_data_interval=last,
            now=now,
            active_runs=0,
            max_active_runs=1,
            is_paused=True,  # only asks what comes next; creates nothing
        )
        info = plan.next_info
        if info is None or (infos and info.data_interval == infos[-1].data_interval):
            break
        infos.append(info)
        last = info.data_interval
    return infos


@click.command("next-execution")
@click.argument("dag_id")
@click.option(
    "-n",
    "--num-executions",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many of the next runs to show.",
)
@output_option
@pass_state
def next_execution_cmd(state: CliState, dag_id: str, num_executions: int, output: str) -> None:
    """Print the logical date of the next scheduled run of DAG_ID ("None" when there is none).

    Uses what the scheduler recorded, or works it out from the DAG's schedule.
    """
    database = open_db(state)
    with db_errors(), database.session() as s:
        dag = dag_or_fail(s, dag_id)
        paused = dag.is_paused
        infos = _next_infos(s, dag_id, num_executions, now_utc())
    if paused:
        warn(f"DAG {dag_id!r} is paused: no run is created until it is unpaused")
    rows = [
        {
            "logical_date": iso(i.logical_date),
            "data_interval_start": iso(i.data_interval.start),
            "data_interval_end": iso(i.data_interval.end),
            "run_after": iso(i.run_after),
        }
        for i in infos
    ]
    if output == "json":
        print_json({"dag_id": dag_id, "is_paused": paused, "next": rows})
        return
    if not rows:
        click.echo("None")
    for row in rows:
        click.echo(row["logical_date"])


# --- delete -----------------------------------------------------------------------------------------


@click.command("delete")
@click.argument("dag_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete_cmd(state: CliState, dag_id: str, yes: bool) -> None:
    """Delete DAG_ID from the database with all its versions, runs and task instances.

    The DAG file is not touched: while it exists, the DAG processor adds the DAG again.
    """
    import os

    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs

    database = open_db(state)
    with db_errors(), database.session() as s:
        dag = dag_or_fail(s, dag_id)
        fileloc = dag.fileloc
        runs = sum(db_runs.count_runs_by_state(s, dag_ids=[dag_id]).get(dag_id, {}).values())
    confirm_or_fail(f"this deletes DAG {dag_id!r} with its {runs} run(s) and their history", yes)
    with db_errors(), database.session() as s:
        db_dags.delete_dag(s, dag_id)
        audit_change(s, "cli.dags.delete", dag_id=dag_id, extra={"runs": runs})
    echo_err(f"Deleted DAG {dag_id!r} and its {runs} run(s).")
    if fileloc and os.path.exists(fileloc):
        warn(f"its file {fileloc} still exists: the DAG processor will add the DAG again")


# --- reserialize -------------------------------------------------------------------------------------


@click.command("reserialize")
@output_option
@dag_source_options
@pass_state
def reserialize_cmd(state: CliState, output: str) -> None:
    """Parse the DAGs folder once and write every DAG and import error to the database.

    What the DAG processor does on each full pass; handy before the first start, in scripts
    and in CI. DAGs no file defines any more become inactive.
    """
    from tradewind.dag_processing import ParseOptions
    from tradewind.dag_processing.service import DagProcessor

    settings = state.settings()
    options = ParseOptions.from_settings(
        settings, dags_folder=state.effective_dags_folder(), include_examples=state.load_examples
    )
    database = open_db(state)
    with db_errors():
        report = DagProcessor(database, options).run_once()
        with database.session() as s:
            audit_change(
                s,
                "cli.dags.reserialize",
                extra={
                    "dags": len(report.dags),
                    "new_versions": report.new_versions,
                    "deactivated": report.deactivated,
                    "import_errors": len(report.import_errors),
                },
            )
    if output == "json":
        print_json(
            {
                "files": len(report.files),
                "dags": sorted(report.dags),
                "new_versions": sorted(report.new_versions),
                "deactivated": report.deactivated,
                "import_errors": [e.to_dict() for e in report.import_errors],
            }
        )
    else:
        echo_err(report.summary())
    if report.import_errors:
        warn(
            f"{len({e.path for e in report.import_errors})} DAG file(s) could not be imported; "
            "run `tradewind dags list-import-errors` to see why"
        )
