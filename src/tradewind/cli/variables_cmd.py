"""``tradewind variables``: set, get, list, delete, import and export stored variables.

Values are encrypted at rest with the Fernet key (created on first use when none is
configured). Listings never show values; every change is written to the audit log with the
value masked.

The import/export file is a JSON object: ``{"key": value}``, where a value that is not a
string is stored as its JSON text, or ``{"key": {"value": ..., "description": "..."}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import audit_change, db_errors, now_utc, open_db

__all__ = ["variables"]

_SECRET = ("val",)


@click.group()
def variables() -> None:
    """Set, get, list, delete, import and export variables."""


def _state(value: str, description: str | None) -> dict[str, Any]:
    return {"val": value, "description": description}


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("-j", "--json", "as_json", is_flag=True, help="VALUE is JSON: check and store it.")
@click.option("--description", default=None, help="What the variable is for.")
@pass_state
def set_variable(
    state: CliState, key: str, value: str, as_json: bool, description: str | None
) -> None:
    """Create or replace variable KEY."""
    from tradewind.db import variables as db_variables
    from tradewind.errors import VariableNotFound

    if as_json:
        try:
            value = json.dumps(json.loads(value))
        except json.JSONDecodeError as exc:
            fail(f"VALUE is not valid JSON: {exc}", ExitCode.USAGE)
    database = open_db(state, create_key=True)
    with db_errors(), database.session() as session:
        try:
            row = db_variables.get_variable_row(session, key)
            before: dict[str, Any] | None = _state(
                db_variables.variable_value(row, database.fernet), row.description
            )
        except VariableNotFound:
            before = None
        row = db_variables.set_variable(
            session, key, value, fernet=database.fernet, now=now_utc(), description=description
        )
        after = _state(value, row.description)
        audit_change(
            session,
            "cli.variables.set",
            before=before,
            after=after,
            secret_fields=_SECRET,
            extra={"key": key},
        )
    echo_err(f"Variable {key!r} set.")


@variables.command("get")
@click.argument("key")
@click.option("-j", "--json", "as_json", is_flag=True, help="Parse the value as JSON.")
@click.option("--default", default=None, help="Print this when the variable does not exist.")
@pass_state
def get_variable(state: CliState, key: str, as_json: bool, default: str | None) -> None:
    """Print the value of variable KEY (exit code 2 when it does not exist)."""
    from tradewind.db import variables as db_variables
    from tradewind.errors import VariableNotFound

    database = open_db(state)
    with db_errors(), database.session() as session:
        try:
            value = db_variables.get_variable(session, key, fernet=database.fernet)
        except VariableNotFound:
            if default is None:
                raise
            value = default
    if as_json:
        try:
            print_json(json.loads(value))
        except json.JSONDecodeError as exc:
            fail(f"variable {key!r} is not valid JSON: {exc}", ExitCode.FAILURE)
    else:
        click.echo(value)


@variables.command("list")
@output_option
@pass_state
def list_variables(state: CliState, output: str) -> None:
    """List variable keys and descriptions (never values)."""
    from tradewind.db import variables as db_variables

    database = open_db(state)
    with db_errors(), database.session() as session:
        rows = [
            {"key": r.key, "description": r.description, "is_encrypted": r.is_encrypted}
            for r in db_variables.list_variables(session)
        ]
    if output == "json":
        print_json(rows)
        return
    print_table(
        ["key", "description", "encrypted"],
        [[r["key"], r["description"], r["is_encrypted"]] for r in rows],
        empty="No variables.",
    )


@variables.command("delete")
@click.argument("key")
@pass_state
def delete_variable(state: CliState, key: str) -> None:
    """Delete variable KEY (exit code 2 when it does not exist)."""
    from tradewind.db import variables as db_variables

    database = open_db(state)
    with db_errors(), database.session() as session:
        row = db_variables.get_variable_row(session, key)
        before = _state(db_variables.variable_value(row, database.fernet), row.description)
        db_variables.delete_variable(session, key)
        audit_change(
            session,
            "cli.variables.delete",
            before=before,
            after=None,
            secret_fields=_SECRET,
            extra={"key": key},
        )
    echo_err(f"Variable {key!r} deleted.")


def _read_import(path: str) -> dict[str, tuple[str, str | None]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON: {exc}", ExitCode.USAGE)
    if not isinstance(data, dict):
        fail(f"{path} must hold a JSON object of key: value", ExitCode.USAGE)
    out: dict[str, tuple[str, str | None]] = {}
    for key, item in data.items():
        description = None
        if isinstance(item, dict) and "value" in item and set(item) <= {"value", "description"}:
            description = item.get("description")
            item = item["value"]
        out[key] = (item if isinstance(item, str) else json.dumps(item), description)
    return out


@variables.command("import")
@click.argument("file", metavar="FILE")
@pass_state
def import_variables(state: CliState, file: str) -> None:
    """Create or replace the variables in a JSON FILE ("-" reads stdin)."""
    from tradewind.db import variables as db_variables

    items = _read_import(file)
    database = open_db(state, create_key=True)
    with db_errors(), database.session() as session:
        now = now_utc()
        for key, (value, description) in items.items():
            db_variables.set_variable(
                session, key, value, fernet=database.fernet, now=now, description=description
            )
        audit_change(session, "cli.variables.import", extra={"file": file, "keys": sorted(items)})
    echo_err(f"Imported {len(items)} variable(s).")


@variables.command("export")
@click.argument("file", metavar="FILE")
@pass_state
def export_variables(state: CliState, file: str) -> None:
    """Write every variable to a JSON FILE ("-" writes stdout). The file holds the values in
    plain text: keep it safe."""
    from tradewind.db import variables as db_variables

    database = open_db(state)
    with db_errors(), database.session() as session:
        data: dict[str, Any] = {}
        for row in db_variables.list_variables(session):
            text = db_variables.variable_value(row, database.fernet)
            try:
                value: Any = json.loads(text)
            except json.JSONDecodeError:
                value = text
            if isinstance(value, str):
                value = text  # '"x"' must come back as '"x"', not as 'x'
            data[row.key] = (
                {"value": value, "description": row.description} if row.description else value
            )
        audit_change(session, "cli.variables.export", extra={"file": file, "keys": sorted(data)})
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if file == "-":
        click.echo(text, nl=False)
    else:
        try:
            Path(file).write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {file}: {exc.strerror or exc}", ExitCode.FAILURE)
        echo_err(f"Exported {len(data)} variable(s) to {file}.")
