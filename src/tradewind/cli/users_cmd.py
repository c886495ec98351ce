"""``tradewind users create|list|delete|reset-password``: the people and scripts that log in
to the API and web UI (every change is audited).

Options follow Airflow's ``airflow users`` command (``-u``, ``-r``, ``-e``, ``-f``, ``-l``,
``-p``, ``--use-random-password``). A random password is printed once, on stdout.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tradewind.cli._output import ExitCode, echo_err, fail, output_option, print_json, print_table
from tradewind.cli._state import CliState, pass_state
from tradewind.cli.db_cmd import audit_change, confirm_or_fail, db_errors, now_utc, open_db

__all__ = ["users"]


@click.group()
def users() -> None:
    """Create, list and delete users; reset their passwords."""


def _password(password: str | None, use_random: bool) -> tuple[str, bool]:
    """The password to set and whether it was generated (and must be shown)."""
    from tradewind.db.users import generate_password

    if password is not None and use_random:
        raise click.UsageError("give --password or --use-random-password, not both")
    if use_random:
        return generate_password(), True
    if password is not None:
        return password, False
    if not sys.stdin.isatty():
        fail(
            "no password given and no terminal to ask for one",
            ExitCode.USAGE,
            hint="pass --password or --use-random-password",
        )
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True), False


def _needs_server_extra() -> None:
    try:
        import argon2  # noqa: F401
    except ImportError:
        fail(
            "hashing passwords needs argon2-cffi",
            ExitCode.FAILURE,
            hint="pip install 'tradewind[server]'",
        )


_PASSWORD = click.option("--password", "-p", default=None, help="The password (else prompted).")
_RANDOM = click.option(
    "--use-random-password", is_flag=True, help="Generate a password and print it once."
)


@users.command("create")
@click.option("--username", "-u", required=True, help="Login name.")
@click.option(
    "--role",
    "-r",
    "roles",
    multiple=True,
    required=True,
    help="Role (Admin, Op, User, Viewer or your own; repeatable).",
)
@click.option("--email", "-e", default=None, help="E-mail address.")
@click.option("--firstname", "-f", default=None, help="First name.")
@click.option("--lastname", "-l", default=None, help="Last name.")
@_PASSWORD
@_RANDOM
@pass_state
def create_user(
    state: CliState,
    username: str,
    roles: tuple[str, ...],
    email: str | None,
    firstname: str | None,
    lastname: str | None,
    password: str | None,
    use_random_password: bool,
) -> None:
    """Create a user with one or more roles."""
    from tradewind.db import roles as db_roles
    from tradewind.db import users as db_users

    _needs_server_extra()
    secret, generated = _password(password, use_random_password)
    database = open_db(state)
    now = now_utc()
    with db_errors(), database.session() as session:
        db_roles.sync_builtin_roles(session, now=now)
        user = db_users.create_user(
            session,
            username,
            secret,
            now=now,
            roles=list(roles),
            email=email,
            first_name=firstname,
            last_name=lastname,
        )
        audit_change(
            session,
            "cli.users.create",
            after={"username": user.username, "email": email, "roles": list(roles)},
        )
    echo_err(f"User {username!r} created with role(s) {', '.join(roles)}.")
    if generated:
        echo_err("Its password (shown only now):")
        click.echo(secret)


@users.command("list")
@output_option
@pass_state
def list_users(state: CliState, output: str) -> None:
    """List users with their roles."""
    from tradewind.cli._engine import iso
    from tradewind.db import roles as db_roles
    from tradewind.db import users as db_users

    database = open_db(state)
    with db_errors(), database.session() as session:
        rows = db_users.list_users(session)
        roles = db_roles.roles_of_users(session, [u.id for u in rows])
        data: list[dict[str, Any]] = [
            {
                "username": u.username,
                "email": u.email,
                "first_name": u.first_name,
                "last_name": u.last_name,
                "roles": roles[u.id],
                "active": u.active,
                "created_on": iso(u.created_at),
                "last_login": iso(u.last_login),
                "failed_login_count": u.failed_login_count,
                "locked_until": iso(u.locked_until),
            }
            for u in rows
        ]
    if output == "json":
        print_json(data)
        return
    print_table(
        ["username", "email", "roles", "active", "last_login"],
        [[d["username"], d["email"] or "", ", ".join(d["roles"]), d["active"], d["last_login"] or ""]
         for d in data],
    )  # fmt: skip


@users.command("delete")
@click.option("--username", "-u", required=True, help="The user to delete.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete_user(state: CliState, username: str, yes: bool) -> None:
    """Delete a user with their API tokens."""
    from tradewind.db import users as db_users

    database = open_db(state)
    with db_errors(), database.session() as session:
        db_users.get_user(session, username)
    confirm_or_fail(f"this deletes user {username!r} and their API tokens", yes)
    with db_errors(), database.session() as session:
        db_users.delete_user(session, username)
        audit_change(session, "cli.users.delete", before={"username": username})
    echo_err(f"User {username!r} deleted.")


@users.command("reset-password")
@click.option("--username", "-u", required=True, help="The user whose password to set.")
@_PASSWORD
@_RANDOM
@pass_state
def reset_password(
    state: CliState, username: str, password: str | None, use_random_password: bool
) -> None:
    """Set a new password for a user (also lifts a lock from failed logins)."""
    from tradewind.db import users as db_users

    _needs_server_extra()
    database = open_db(state)
    with db_errors(), database.session() as session:
        db_users.get_user(session, username)
    secret, generated = _password(password, use_random_password)
    with db_errors(), database.session() as session:
        db_users.set_password(session, username, secret, now=now_utc())
        audit_change(
            session,
            "cli.users.reset_password",
            before={"password": "old"},
            after={"password": "new"},
            secret_fields=("password",),
            extra={"user": username},
        )
    echo_err(f"Password of {username!r} changed.")
    if generated:
        echo_err("The new password (shown only now):")
        click.echo(secret)
