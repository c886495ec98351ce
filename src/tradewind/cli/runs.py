"""``tradewind runs``: DAG runs in the metadata database."""

from __future__ import annotations

import click

from tradewind.cli._engine import iso
from tradewind.cli._output import output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import db_errors, open_db

__all__ = ["runs"]

_STATES = ("queued", "running", "success", "failed")


@click.group()
def runs() -> None:
    """List DAG runs."""


def _duration(start: object, end: object) -> float | None:
    from datetime import datetime

    if isinstance(start, datetime) and isinstance(end, datetime):
        return round((end - start).total_seconds(), 3)
    return None


@runs.command("list")
@click.option("--dag-id", "-d", default=None, help="Only runs of this DAG.")
@click.option(
    "--state",
    "states",
    type=click.Choice(_STATES),
    multiple=True,
    help="Only runs in this state (repeatable).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Most runs to show (newest first).",
)
@output_option
@pass_state
def list_runs(
    state: CliState, dag_id: str | None, states: tuple[str, ...], limit: int, output: str
) -> None:
    """List runs, newest first, with their start and end times."""
    from tradewind.db import runs as db_runs
    from tradewind.state import RunState

    database = open_db(state)
    with db_errors(), database.session() as s:
        rows = [
            {
                "dag_id": r.dag_id,
                "run_id": r.run_id,
                "run_type": r.run_type,
                "state": str(r.state),
                "logical_date": iso(r.logical_date),
                "start_date": iso(r.start_date),
                "end_date": iso(r.end_date),
                "duration": _duration(r.start_date, r.end_date),
                "backfill_id": r.backfill_id,
            }
            for r in db_runs.list_runs(
                s,
                dag_id=dag_id,
                states=[RunState(x) for x in states] or None,
                limit=limit,
            )
        ]
    if output == "json":
        print_json(rows)
        return
    print_table(
        ["dag_id", "run_id", "type", "state", "logical_date", "start", "end", "seconds"],
        [
            [
                r["dag_id"],
                r["run_id"],
                r["run_type"],
                r["state"],
                r["logical_date"],
                r["start_date"],
                r["end_date"],
                r["duration"],
            ]
            for r in rows
        ],
        empty="No runs.",
    )
