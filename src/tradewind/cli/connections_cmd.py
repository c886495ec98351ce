"""``tradewind connections``: add, get, list and delete stored connections.

Passwords and extras are encrypted at rest with the Fernet key (created on first use when none
is configured). Passwords are never printed, and secret-looking extra fields are masked; every
change is written to the audit log with the same masking.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import audit_change, db_errors, now_utc, open_db

if TYPE_CHECKING:
    from tradewind.sdk.connection import Connection

__all__ = ["connections"]

_SECRETS = ("password", "extra")


@click.group()
def connections() -> None:
    """Add, get, list and delete connections."""


def _build(
    conn_id: str,
    uri: str | None,
    conn_json: str | None,
    fields: dict[str, Any],
) -> Connection:
    from tradewind.errors import TradewindError
    from tradewind.sdk.connection import Connection

    given = {k: v for k, v in fields.items() if v is not None}
    sources = [name for name, v in (("--conn-uri", uri), ("--conn-json", conn_json)) if v]
    if (set(given) - {"description"} and sources) or len(sources) > 1:
        fail(
            "give the connection as one of --conn-uri, --conn-json or --conn-type/--conn-host/…",
            ExitCode.USAGE,
        )
    try:
        if uri:
            conn = Connection.from_uri(conn_id, uri)
            if fields.get("description") is not None:
                conn.description = fields["description"]
            return conn
        if conn_json:
            return Connection.from_json(conn_id, conn_json)
        if "conn_type" not in given:
            fail(
                "a connection needs --conn-uri, --conn-json or at least --conn-type",
                ExitCode.USAGE,
            )
        if "extra" in given:
            extra = json.loads(given["extra"])
            if not isinstance(extra, dict):
                fail("--conn-extra must be a JSON object", ExitCode.USAGE)
            given["extra"] = extra
        return Connection(conn_id=conn_id, **given)
    except json.JSONDecodeError as exc:
        fail(f"invalid JSON: {exc}", ExitCode.USAGE)
    except (TradewindError, ValueError, TypeError) as exc:
        fail(str(exc), ExitCode.USAGE)


@connections.command("add")
@click.argument("conn_id")
@click.option("--conn-uri", default=None, help="The connection as a URI.")
@click.option("--conn-json", default=None, help="The connection as a JSON object.")
@click.option("--conn-type", default=None, help="Connection type (postgres, http, …).")
@click.option("--conn-host", default=None, help="Host.")
@click.option("--conn-login", default=None, help="Login.")
@click.option("--conn-password", default=None, help="Password.")
@click.option("--conn-schema", default=None, help="Schema (database name, path …).")
@click.option("--conn-port", type=int, default=None, help="Port.")
@click.option("--conn-extra", default=None, help="Extra fields as a JSON object.")
@click.option("--conn-description", default=None, help="What the connection is for.")
@pass_state
def add_connection(
    state: CliState,
    conn_id: str,
    conn_uri: str | None,
    conn_json: str | None,
    conn_type: str | None,
    conn_host: str | None,
    conn_login: str | None,
    conn_password: str | None,
    conn_schema: str | None,
    conn_port: int | None,
    conn_extra: str | None,
    conn_description: str | None,
) -> None:
    """Store a new connection CONN_ID (exit code 2 when the id is taken)."""
    from tradewind.db import connections as db_connections

    conn = _build(
        conn_id,
        conn_uri,
        conn_json,
        {
            "conn_type": conn_type,
            "host": conn_host,
            "login": conn_login,
            "password": conn_password,
            "schema": conn_schema,
            "port": conn_port,
            "extra": conn_extra,
            "description": conn_description,
        },
    )
    database = open_db(state, create_key=True)
    with db_errors(), database.session() as session:
        db_connections.add_connection(session, conn, fernet=database.fernet, now=now_utc())
        audit_change(
            session,
            "cli.connections.add",
            before=None,
            after=_fields(conn),
            secret_fields=_SECRETS,
            extra={"conn_id": conn_id},
        )
    echo_err(f"Connection {conn_id!r} added.")


def _fields(conn: Connection) -> dict[str, Any]:
    data = conn.to_dict()
    data.pop("conn_id")
    return data


@connections.command("get")
@click.argument("conn_id")
@output_option
@pass_state
def get_connection(state: CliState, conn_id: str, output: str) -> None:
    """Show connection CONN_ID (the password is never shown)."""
    from tradewind.db import connections as db_connections

    database = open_db(state)
    with db_errors(), database.session() as session:
        conn = db_connections.get_connection(session, conn_id, fernet=database.fernet)
    data = conn.to_dict(redact=True)
    if output == "json":
        print_json(data)
        return
    print_table(
        ["field", "value"],
        [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in data.items()],
    )


@connections.command("list")
@output_option
@pass_state
def list_connections(state: CliState, output: str) -> None:
    """List connections (without passwords)."""
    from tradewind.db import connections as db_connections

    database = open_db(state)
    with db_errors(), database.session() as session:
        items = db_connections.list_connections(session, fernet=database.fernet)
    rows = [c.to_dict(redact=True) for c in items]
    if output == "json":
        print_json(rows)
        return
    print_table(
        ["conn_id", "conn_type", "host", "port", "schema", "login", "description"],
        [
            [
                r["conn_id"],
                r["conn_type"],
                r["host"],
                r["port"],
                r["schema"],
                r["login"],
                r["description"],
            ]
            for r in rows
        ],
        empty="No connections.",
    )


@connections.command("delete")
@click.argument("conn_id")
@pass_state
def delete_connection(state: CliState, conn_id: str) -> None:
    """Delete connection CONN_ID (exit code 2 when it does not exist)."""
    from tradewind.db import connections as db_connections

    database = open_db(state)
    with db_errors(), database.session() as session:
        conn = db_connections.get_connection(session, conn_id, fernet=database.fernet)
        db_connections.delete_connection(session, conn_id)
        audit_change(
            session,
            "cli.connections.delete",
            before=_fields(conn),
            after=None,
            secret_fields=_SECRETS,
            extra={"conn_id": conn_id},
        )
    echo_err(f"Connection {conn_id!r} deleted.")
