"""``tradewind dags backfill``: runs over a past date range, owned by the scheduler.

The command records a backfill and queues one run (type ``backfill``) per schedule interval
whose logical date lies in ``[--start-date, --end-date]``; the running scheduler starts them,
oldest first, at most ``--max-active-runs`` at a time (a backfill's own limit: it does not
hold up the DAG's scheduled runs), and marks the backfill completed when its last run ends.

Dates that already have a run are left alone unless asked: ``--rerun-failed`` (Airflow 3's
``--reprocess-behavior failed``) clears the failed and upstream_failed tasks of failed runs so
they run again; ``--reprocess-behavior completed`` clears every finished run. Runs still queued
or running are never touched.

With ``--wait`` (the default when stdout is a terminal) the command follows the backfill with
a progress bar of finished runs and exits 1 if any failed; Ctrl-C stops following, not the
backfill.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._engine import dag_or_fail, iso, parse_conf, parse_when
from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import audit_change, db_errors, now_utc, open_db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.db.database import Database

__all__ = ["backfill_cmd"]

_POLL_SECONDS = 0.5
#: A scheduler whose heartbeat is older than this is presumed gone (for the warning only).
_SCHEDULER_STALE = timedelta(seconds=60)


@dataclass
class _Planned:
    """What the backfill does for one interval."""

    logical_date: datetime
    run_id: str
    action: str  # create, rerun, skip
    reason: str = ""
    #: for "create": when the run is due and the interval it covers
    run_after: datetime | None = None
    interval: tuple[datetime, datetime] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "logical_date": iso(self.logical_date),
            "run_id": self.run_id,
            "action": self.action,
            "reason": self.reason,
        }


@click.command("backfill")
@click.argument("dag_id")
@click.option("--start-date", "-s", "start_text", required=True, metavar="ISO")
@click.option("--end-date", "-e", "end_text", required=True, metavar="ISO")
@click.option(
    "--rerun-failed",
    is_flag=True,
    help="Run dates whose run failed again (clears their failed tasks).",
)
@click.option(
    "--reprocess-behavior",
    type=click.Choice(["none", "failed", "completed"]),
    default=None,
    help="Dates that already have a finished run: leave them (none), re-run failed ones, or "
    "re-run every finished one (completed). Default: none, or failed with --rerun-failed.",
)
@click.option(
    "--max-active-runs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Most runs of this backfill running at once.",
)
@click.option("--conf", "-c", "conf_text", metavar="JSON", help="dag_run.conf for every run.")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Follow the backfill until its runs finish (default: when stdout is a terminal).",
)
@output_option
@pass_state
def backfill_cmd(
    state: CliState,
    dag_id: str,
    start_text: str,
    end_text: str,
    rerun_failed: bool,
    reprocess_behavior: str | None,
    max_active_runs: int,
    conf_text: str | None,
    dry_run: bool,
    wait: bool | None,
    output: str,
) -> None:
    """Queue runs of DAG_ID for every interval from --start-date to --end-date.

    \b
    tradewind dags backfill etl -s 2024-01-01 -e 2024-01-31
    tradewind dags backfill etl -s 2024-01-01 -e 2024-01-31 --rerun-failed --max-active-runs 4
    """
    settings = state.settings()
    start = parse_when(start_text, settings, "--start-date")
    end = parse_when(end_text, settings, "--end-date")
    assert start is not None and end is not None
    conf = parse_conf(conf_text)
    behavior = reprocess_behavior or ("failed" if rerun_failed else "none")
    database = open_db(state)
    now = now_utc()
    backfill_id: int | None = None
    with db_errors(), database.session() as s:
        plan = _plan(s, dag_id, start, end, conf, behavior)
        queued = [p for p in plan if p.action != "skip"]
        if not dry_run:
            backfill_id = _create(s, dag_id, start, end, conf, behavior, max_active_runs, plan, now)
        scheduler_alive = _scheduler_alive(s, now)
    _show_plan(plan, backfill_id, dry_run, output, wait_follows=bool(wait))
    if dry_run or not queued:
        return
    if not scheduler_alive:
        echo_err(
            "warning: no scheduler seems to be running; the backfill's runs start once "
            "`tradewind scheduler` (or `tradewind standalone`) runs"
        )
    follow = sys.stdout.isatty() if wait is None else wait
    if not follow:
        return
    assert backfill_id is not None
    states = _follow(database, dag_id, [p.run_id for p in queued])
    failed = sorted(run_id for run_id, st in states.items() if st == "failed")
    if output == "json":
        print_json(
            {
                "backfill_id": backfill_id,
                "runs": [{"run_id": r, "state": st} for r, st in sorted(states.items())],
            }
        )
    if failed:
        fail(f"{len(failed)} of {len(states)} backfill run(s) failed: {', '.join(failed)}")
    echo_err(f"Backfill {backfill_id} of {dag_id!r}: all {len(states)} run(s) succeeded.")


def _plan(
    s: Session,
    dag_id: str,
    start: datetime,
    end: datetime,
    conf: dict[str, Any],
    behavior: str,
) -> list[_Planned]:
    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs
    from tradewind.errors import ParamValidationError
    from tradewind.scheduler import decisions as d
    from tradewind.sdk.params import merge_params
    from tradewind.serialization import deserialize_dag
    from tradewind.state import RunState

    dag = dag_or_fail(s, dag_id)
    if not dag.is_active:
        fail(
            f"DAG {dag_id!r} is not active: its file is gone or no longer defines it",
            ExitCode.USAGE,
        )
    view = deserialize_dag(db_dags.get_latest_version(s, dag_id).document)
    try:
        merge_params(view.params, {}, conf)
    except ParamValidationError as exc:
        fail(f"--conf: {exc}", ExitCode.USAGE)
    infos = d.backfill_intervals(view.timetable, start, end)
    existing = {
        run.logical_date: run
        for run in db_runs.list_runs(s, dag_id=dag_id, logical_date_from=start, logical_date_to=end)
        if run.logical_date is not None
    }
    plan: list[_Planned] = []
    for info in infos:
        run = existing.get(info.logical_date)
        if run is None:
            run_id = d.run_id_for("backfill", info.logical_date)
            interval = (info.data_interval.start, info.data_interval.end)
            plan.append(_Planned(info.logical_date, run_id, "create", "", info.run_after, interval))
            continue
        if run.state in (RunState.QUEUED, RunState.RUNNING):
            plan.append(_Planned(info.logical_date, run.run_id, "skip", f"run is {run.state}"))
        elif run.state is RunState.FAILED and behavior in ("failed", "completed"):
            plan.append(_Planned(info.logical_date, run.run_id, "rerun", "run failed"))
        elif run.state is RunState.SUCCESS and behavior == "completed":
            plan.append(_Planned(info.logical_date, run.run_id, "rerun", "run succeeded"))
        else:
            plan.append(
                _Planned(info.logical_date, run.run_id, "skip", f"already has a {run.state} run")
            )
    return plan


def _create(
    s: Session,
    dag_id: str,
    start: datetime,
    end: datetime,
    conf: dict[str, Any],
    behavior: str,
    max_active_runs: int,
    plan: list[_Planned],
    now: datetime,
) -> int:
    from tradewind.db import backfills as db_backfills
    from tradewind.db import dags as db_dags
    from tradewind.db import runs as db_runs
    from tradewind.db import task_instances as db_tis
    from tradewind.serialization import deserialize_dag

    version = db_dags.get_latest_version(s, dag_id)
    view = deserialize_dag(version.document)
    backfill = db_backfills.create_backfill(
        s,
        dag_id,
        start,
        end,
        now=now,
        conf=conf,
        max_active_runs=max_active_runs,
        reprocess_behavior=behavior,
    )
    for item in plan:
        if item.action == "create":
            db_runs.create_run(
                s,
                view,
                run_id=item.run_id,
                run_type="backfill",
                run_after=item.run_after or now,
                now=now,
                dag_version_id=version.id,
                logical_date=item.logical_date,
                data_interval=item.interval,
                conf=conf,
                backfill_id=backfill.id,
            )
        elif item.action == "rerun":
            run = db_runs.get_run(s, dag_id, item.run_id)
            pinned = (
                deserialize_dag(db_dags.get_version(s, run.dag_version_id).document)
                if run.dag_version_id is not None
                else view
            )
            db_tis.clear_task_instances(
                s, pinned, [run.run_id], now=now, only_failed=behavior == "failed"
            )
            db_runs.set_run_fields(s, run.id, backfill_id=backfill.id, updated_at=now)
    if not any(item.action != "skip" for item in plan):
        db_backfills.complete_backfill(s, backfill.id, now=now)
    audit_change(
        s,
        "cli.dags.backfill",
        dag_id=dag_id,
        extra={
            "backfill_id": backfill.id,
            "from": iso(start),
            "to": iso(end),
            "reprocess_behavior": behavior,
            "max_active_runs": max_active_runs,
            "created": sum(1 for p in plan if p.action == "create"),
            "rerun": sum(1 for p in plan if p.action == "rerun"),
            "skipped": sum(1 for p in plan if p.action == "skip"),
        },
    )
    return backfill.id


def _scheduler_alive(s: Session, now: datetime) -> bool:
    from tradewind.db import jobs as db_jobs

    job = db_jobs.latest_job(s, "scheduler")
    if job is None or job.state != db_jobs.JOB_RUNNING or job.latest_heartbeat is None:
        return False
    beat = job.latest_heartbeat
    if beat.tzinfo is None:
        from datetime import UTC

        beat = beat.replace(tzinfo=UTC)
    return now - beat < _SCHEDULER_STALE


def _show_plan(
    plan: list[_Planned], backfill_id: int | None, dry_run: bool, output: str, wait_follows: bool
) -> None:
    counts = {a: sum(1 for p in plan if p.action == a) for a in ("create", "rerun", "skip")}
    head = "Dry run: would queue" if dry_run else f"Backfill {backfill_id}: queued"
    echo_err(
        f"{head} {counts['create']} new run(s), re-run {counts['rerun']}, "
        f"skip {counts['skip']} of {len(plan)} interval(s)."
    )
    if output == "json":
        if not wait_follows or dry_run:
            print_json({"backfill_id": backfill_id, "plan": [p.to_dict() for p in plan]})
        return
    print_table(
        ["logical_date", "run_id", "action", "reason"],
        [[iso(p.logical_date), p.run_id, p.action, p.reason] for p in plan],
        empty="No intervals in that range.",
    )


def _follow(database: Database, dag_id: str, run_ids: list[str]) -> dict[str, str]:
    """Poll the runs until every one finished; returns their states. Ctrl-C stops following."""
    import sqlalchemy as sa

    from tradewind.db.models import DagRun

    total = len(run_ids)
    bar = _Bar(total, f"Backfill of {dag_id}")
    states: dict[str, str] = {}
    last_line = ""
    try:
        while True:
            with database.session() as s:
                rows = s.execute(
                    sa.select(DagRun.run_id, DagRun.state).where(
                        DagRun.dag_id == dag_id, DagRun.run_id.in_(run_ids)
                    )
                ).all()
            states = {run_id: str(st) for run_id, st in rows}
            done = sum(1 for st in states.values() if st in ("success", "failed"))
            failed = sum(1 for st in states.values() if st == "failed")
            running = sum(1 for st in states.values() if st == "running")
            bar.update(done, running, failed)
            if not bar.enabled:
                line = f"{done}/{total} run(s) finished ({failed} failed, {running} running)"
                if line != last_line:
                    echo_err(line)
                    last_line = line
            if done >= total:
                return states
            time.sleep(_POLL_SECONDS)
    except KeyboardInterrupt:
        bar.close()
        echo_err("Stopped following; the backfill goes on in the scheduler.")
        raise click.exceptions.Exit(130) from None
    finally:
        bar.close()


class _Bar:
    """A rich progress bar of finished runs on stderr (terminals only)."""

    def __init__(self, total: int, title: str) -> None:
        self.enabled = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn(title),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}", style="dim"),
                console=Console(stderr=True),
                auto_refresh=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=total)

    def update(self, done: int, running: int, failed: int) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=done, description=f"{running} running, {failed} failed"
            )
            self._progress.refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
