"""``tradewind db``: create, upgrade, check, reset and clean the metadata database.

Also the helpers the other database-backed command groups share (``variables``,
``connections``, ``pools``): :func:`open_db` opens the configured database (creating an empty
SQLite one on first use), :func:`db_errors` turns Tradewind errors into exit codes, and
:func:`audit_change` writes the audit row every change made through the CLI gets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.config import Settings
    from tradewind.db.database import Database

__all__ = ["audit_change", "confirm_or_fail", "db", "db_errors", "now_utc", "open_db"]


def now_utc() -> datetime:
    """The current time (aware UTC): the CLI is where the real clock is read."""
    return datetime.now(UTC)


def _display_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)


def open_db(state: CliState, *, create_key: bool = False, require_schema: bool = True) -> Database:
    """The configured database, ready for queries.

    A SQLite database without any schema is created on the spot (a fresh
    ``$TRADEWIND_HOME`` just works); a database behind the newest migration, or an empty
    PostgreSQL one, exits with a hint to run ``tradewind db migrate``. ``create_key`` generates
    the Fernet key file on first use when no key is configured.
    """
    from tradewind.db.database import Database
    from tradewind.db.migrate import HEAD_REVISION, current_revision

    settings = state.settings()
    with db_errors():
        database = Database.from_settings(settings, create_key=create_key)
        if not require_schema:
            return database
        current = current_revision(database.engine)
    if current == HEAD_REVISION:
        return database
    if current is None and database.engine.dialect.name == "sqlite":
        with db_errors():
            database.migrate()
        echo_err(f"Created the metadata database at {_display_url(settings)}.")
        return database
    what = "has no Tradewind schema" if current is None else f"is at revision {current}"
    fail(
        f"the metadata database {_display_url(settings)} {what}; this Tradewind needs "
        f"revision {HEAD_REVISION}",
        ExitCode.FAILURE,
        hint="run `tradewind db migrate`",
    )


@contextmanager
def db_errors() -> Iterator[None]:
    """Exit with a message instead of a traceback: unknown ids and bad values exit 2, other
    Tradewind and database errors exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from tradewind.errors import (
        AlreadyExists,
        InvalidArgumentError,
        NotFound,
        TradewindError,
    )

    try:
        yield
    except (NotFound, AlreadyExists, InvalidArgumentError) as exc:
        fail(str(exc), ExitCode.USAGE)
    except TradewindError as exc:
        fail(str(exc), ExitCode.FAILURE)
    except SQLAlchemyError as exc:
        fail(f"database error: {exc.__class__.__name__}: {exc}", ExitCode.FAILURE)


def audit_change(
    session: Session,
    event: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    secret_fields: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    **ids: Any,
) -> None:
    """Append the audit row of a CLI change: actor = the OS user, ``extra`` holding the
    before/after of the changed fields (secrets masked) plus ``extra``."""
    from tradewind.db import audit

    data: dict[str, Any] = dict(extra or {})
    if before is not None or after is not None:
        data.update(audit.changes(before, after, secret_fields=secret_fields))
    audit.record(
        session, event, actor=audit.current_actor(), when=now_utc(), extra=data or None, **ids
    )


def confirm_or_fail(action: str, yes: bool) -> None:
    """Ask before ``action`` ("this deletes …") on a terminal; elsewhere ``--yes`` is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(
            f"{action}; not confirmed (no terminal to ask on)",
            ExitCode.USAGE,
            hint="pass --yes to confirm",
        )
    click.confirm(f"{action[:1].upper()}{action[1:]}. Continue?", abort=True, err=True)


def _parse_before(settings: Settings, text: str) -> datetime:
    from zoneinfo import ZoneInfo

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-01-31 or "
            "2024-01-31T12:00:00+00:00)",
            param_hint="--before",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(settings.core.default_timezone))
    return value.astimezone(UTC)


@click.group()
def db() -> None:
    """Create, upgrade, check, reset and clean the metadata database."""


@db.command("migrate")
@output_option
@pass_state
def migrate_cmd(state: CliState, output: str) -> None:
    """Create the database or upgrade it to the newest schema (safe to run again).

    Also creates the Fernet key ($TRADEWIND_HOME/fernet.key) when none is configured.
    """
    settings = state.settings()
    database = open_db(state, create_key=True, require_schema=False)
    with db_errors():
        before = database.check()
        after = database.migrate()
        with database.session() as session:
            audit_change(
                session, "cli.db.migrate", extra={"from": before.current, "to": after.current}
            )
    if output == "json":
        print_json({"url": _display_url(settings), "from": before.current, "to": after.current})
        return
    if before.current == after.current:
        click.echo(f"The database at {_display_url(settings)} is up to date ({after.current}).")
    else:
        start = before.current or "empty"
        click.echo(
            f"Migrated the database at {_display_url(settings)} from {start} to {after.current}."
        )


@db.command("check")
@output_option
@pass_state
def check_cmd(state: CliState, output: str) -> None:
    """Check that the database is reachable and up to date (exit code 1 when it is not)."""
    from sqlalchemy.engine import make_url

    settings = state.settings()
    url = make_url(settings.database.url)
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).expanduser().exists():
        # Checking must not create the file (connecting to SQLite would).
        fail(
            f"there is no database at {path}",
            ExitCode.FAILURE,
            hint="run `tradewind db migrate` to create it",
        )
    database = open_db(state, require_schema=False)
    with db_errors():
        status = database.check()
    if output == "json":
        print_json({"url": _display_url(settings), **status.to_dict()})
    elif status.up_to_date:
        click.echo(f"The database at {_display_url(settings)} is up to date ({status.head}).")
    else:
        pending = ", ".join(status.pending)
        click.echo(
            f"The database at {_display_url(settings)} is at {status.current or 'no revision'}; "
            f"pending migrations: {pending}."
        )
    if not status.up_to_date:
        if output != "json":
            echo_err("hint: run `tradewind db migrate`")
        raise click.exceptions.Exit(int(ExitCode.FAILURE))


@db.command("reset")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def reset_cmd(state: CliState, yes: bool) -> None:
    """Delete every table and all data, then create the schema again."""
    from tradewind.db.migrate import reset

    settings = state.settings()
    confirm_or_fail(f"this deletes ALL data in {_display_url(settings)}", yes)
    database = open_db(state, create_key=True, require_schema=False)
    with db_errors():
        status = reset(database.engine)
        with database.session() as session:
            audit_change(session, "cli.db.reset", extra={"to": status.current})
    click.echo(f"Reset the database at {_display_url(settings)} ({status.current}).")


def _split_tables(values: tuple[str, ...]) -> list[str] | None:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return names or None


@db.command("clean")
@click.option(
    "--before",
    "before_text",
    required=True,
    metavar="DATE",
    help="Delete rows older than this ISO date or date-time (naive: core.default_timezone).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option(
    "--tables",
    multiple=True,
    metavar="NAMES",
    help="Tables to clean (comma-separated or repeated); default: all of them.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@output_option
@pass_state
def clean_cmd(
    state: CliState,
    before_text: str,
    dry_run: bool,
    tables: tuple[str, ...],
    batch_size: int,
    yes: bool,
    output: str,
) -> None:
    """Delete old finished runs (with their task instances, XComs and history), old audit
    rows, import errors, jobs and asset events, in small batches."""
    from tradewind.db.retention import CLEANABLE_TABLES, clean

    settings = state.settings()
    before = _parse_before(settings, before_text)
    selected = _split_tables(tables)
    unknown = sorted(set(selected or ()) - set(CLEANABLE_TABLES))
    if unknown:
        raise click.BadParameter(
            f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(CLEANABLE_TABLES)}",
            param_hint="--tables",
        )
    database = open_db(state)
    if not dry_run:
        confirm_or_fail(f"this deletes rows older than {before.isoformat()}", yes)
    progress = _CleanProgress(enabled=sys.stderr.isatty() and not dry_run)
    with db_errors():
        try:
            counts = clean(
                database.session_factory,
                before,
                tables=selected,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            progress.close()
        if not dry_run:
            with database.session() as session:
                audit_change(
                    session,
                    "cli.db.clean",
                    extra={"before": before.isoformat(), "deleted": counts},
                )
    if output == "json":
        print_json({"before": before.isoformat(), "dry_run": dry_run, "rows": counts})
        return
    title = "Rows that would be deleted" if dry_run else "Rows deleted"
    print_table(["table", "rows"], [[t, n] for t, n in counts.items()], title=title)
    if dry_run:
        echo_err("Dry run: nothing was deleted.")


class _CleanProgress:
    """One status line on stderr, rewritten after each batch (terminals only)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._shown = False

    def __call__(self, table: str, deleted: int) -> None:
        if self.enabled:
            click.echo(f"\r\x1b[2KCleaning {table}: {deleted} rows deleted", nl=False, err=True)
            self._shown = True

    def close(self) -> None:
        if self._shown:
            click.echo("\r\x1b[2K", nl=False, err=True)
