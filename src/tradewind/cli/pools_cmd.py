"""``tradewind pools``: set, get, list and delete pools (every change is audited)."""

from __future__ import annotations

from typing import Any

import click

from tradewind.cli._output import echo_err, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import audit_change, db_errors, open_db

__all__ = ["pools"]

_COLUMNS = ["pool", "slots", "occupied", "running", "queued", "open", "description"]


@click.group()
def pools() -> None:
    """Set, get, list and delete pools."""


def _pool_state(row: Any) -> dict[str, Any]:
    return {
        "slots": row.slots,
        "description": row.description,
        "include_deferred": row.include_deferred,
    }


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=click.IntRange(min=0))
@click.option("--description", default=None, help="What the pool is for.")
@click.option(
    "--include-deferred/--no-include-deferred",
    default=None,
    help="Whether deferred tasks hold slots of the pool.",
)
@pass_state
def set_pool(
    state: CliState, name: str, slots: int, description: str | None, include_deferred: bool | None
) -> None:
    """Create pool NAME or change its number of SLOTS."""
    from tradewind.db import pools as db_pools
    from tradewind.errors import NotFound

    database = open_db(state)
    with db_errors(), database.session() as session:
        try:
            before: dict[str, Any] | None = _pool_state(db_pools.get_pool(session, name))
        except NotFound:
            before = None
        row = db_pools.set_pool(
            session, name, slots, description=description, include_deferred=include_deferred
        )
        audit_change(
            session,
            "cli.pools.set",
            before=before,
            after=_pool_state(row),
            extra={"pool": name},
        )
    echo_err(f"Pool {name!r} set to {slots} slot(s).")


def _stats(state: CliState, names: list[str] | None) -> list[dict[str, Any]]:
    from tradewind.db import pools as db_pools

    database = open_db(state)
    with db_errors(), database.session() as session:
        if names is not None:
            for name in names:
                db_pools.get_pool(session, name)  # NotFound for an unknown name
        return [s.to_dict() for s in db_pools.pool_stats(session, names)]


def _show(rows: list[dict[str, Any]], output: str, *, single: bool) -> None:
    if output == "json":
        print_json(rows[0] if single else rows)
        return
    print_table(_COLUMNS, [[r[c] for c in _COLUMNS] for r in rows], empty="No pools.")


@pools.command("get")
@click.argument("name")
@output_option
@pass_state
def get_pool(state: CliState, name: str, output: str) -> None:
    """Show pool NAME with the slots in use (exit code 2 when it does not exist)."""
    _show(_stats(state, [name]), output, single=True)


@pools.command("list")
@output_option
@pass_state
def list_pools(state: CliState, output: str) -> None:
    """List pools with their slots in use and open."""
    _show(_stats(state, None), output, single=False)


@pools.command("delete")
@click.argument("name")
@pass_state
def delete_pool(state: CliState, name: str) -> None:
    """Delete pool NAME (default_pool cannot be deleted)."""
    from tradewind.db import pools as db_pools

    database = open_db(state)
    with db_errors(), database.session() as session:
        before = _pool_state(db_pools.get_pool(session, name))
        db_pools.delete_pool(session, name)
        audit_change(session, "cli.pools.delete", before=before, after=None, extra={"pool": name})
    echo_err(f"Pool {name!r} deleted.")
