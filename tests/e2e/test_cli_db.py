"""``tradewind db|variables|connections|pools`` run as users run them: real subprocesses, a
temporary ``$TRADEWIND_HOME``, and the SQLite file inspected directly afterwards."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tradewind.db.migrate import HEAD_REVISION


class Cli:
    """Runs ``python -m tradewind.cli.main`` with a private home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND")}
        self.env.update({"TRADEWIND_HOME": str(home), "TRADEWIND__CORE__LOAD_EXAMPLES": "false"})

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradewind.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self(*args, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.home / "tradewind.db") as conn:
            return conn.execute(sql).fetchall()

    def audit(self) -> list[tuple[str, str, dict]]:
        return [
            (event, actor, json.loads(extra) if extra else {})
            for event, actor, extra in self.rows(
                "SELECT event, actor, extra FROM audit_log ORDER BY id"
            )
        ]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def test_db_migrate_check_and_reset(cli: Cli) -> None:
    # given a fresh home: check reports the missing schema with exit code 1
    fresh = cli("db", "check")
    assert fresh.returncode == 1 and "tradewind db migrate" in fresh.stderr
    # when migrating
    out = cli.ok("db", "migrate")
    # expect the database and a private Fernet key
    assert f"from empty to {HEAD_REVISION}" in out.stdout
    key = cli.home / "fernet.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    status = json.loads(cli.ok("db", "check", "--output", "json").stdout)
    assert status["up_to_date"] and status["pending"] == []
    assert "up to date" in cli.ok("db", "migrate").stdout
    # reset needs --yes without a terminal
    refused = cli("db", "reset")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    cli.ok("variables", "set", "k", "v")
    cli.ok("db", "reset", "--yes")
    assert cli.rows("SELECT key FROM variable") == []
    assert [e[0] for e in cli.audit()] == ["cli.db.reset"]


def test_first_command_on_a_fresh_home_creates_the_sqlite_database(cli: Cli) -> None:
    result = cli.ok("variables", "list", "-o", "json")
    assert json.loads(result.stdout) == []
    assert "Created the metadata database" in result.stderr


def test_variables_round_trip_encrypted_and_audited(cli: Cli, tmp_path: Path) -> None:
    cli.ok("db", "migrate")
    cli.ok("variables", "set", "api_key", "s3cret-value", "--description", "the API key")
    cli.ok("variables", "set", "limits", '{"rows": 10}', "--json")
    cli.ok("variables", "set", "api_key", "rotated-value")
    # values come back in plain text
    assert cli.ok("variables", "get", "api_key").stdout == "rotated-value\n"
    assert json.loads(cli.ok("variables", "get", "limits", "--json").stdout) == {"rows": 10}
    # unknown keys: exit code 2, unless a default is given
    missing = cli("variables", "get", "nope")
    assert missing.returncode == 2 and "variable 'nope' not found" in missing.stderr
    assert cli.ok("variables", "get", "nope", "--default", "d").stdout == "d\n"
    # listings show keys, never values
    listing = cli.ok("variables", "list", "-o", "json").stdout
    assert [v["key"] for v in json.loads(listing)] == ["api_key", "limits"]
    assert "rotated" not in listing
    # at rest the value is ciphertext
    [(raw, encrypted)] = cli.rows("SELECT val, is_encrypted FROM variable WHERE key='api_key'")
    assert encrypted == 1 and "rotated" not in raw
    # export and import round-trip, descriptions included
    exported = tmp_path / "vars.json"
    cli.ok("variables", "export", str(exported))
    data = json.loads(exported.read_text())
    assert data == {
        "api_key": {"value": "rotated-value", "description": "the API key"},
        "limits": {"rows": 10},
    }
    cli.ok("variables", "delete", "api_key")
    assert cli("variables", "delete", "api_key").returncode == 2
    cli.ok("variables", "import", str(exported))
    assert cli.ok("variables", "get", "api_key").stdout == "rotated-value\n"
    assert cli.ok("variables", "export", "-").stdout.strip().startswith("{")
    # every change is audited by the OS user, with values masked
    events = cli.audit()
    assert [e[0] for e in events] == [
        "cli.db.migrate",
        "cli.variables.set",
        "cli.variables.set",
        "cli.variables.set",
        "cli.variables.export",
        "cli.variables.delete",
        "cli.variables.import",
        "cli.variables.export",
    ]
    assert {actor for _, actor, _ in events} == {getpass.getuser()}
    change = events[3][2]
    assert change["before"] == {"val": "***"} and change["after"] == {"val": "***"}
    assert events[1][2]["after"] == {"val": "***", "description": "the API key"}
    assert "s3cret" not in json.dumps(events) and "rotated" not in json.dumps(events)


def test_connections_never_show_the_password(cli: Cli) -> None:
    cli.ok("db", "migrate")
    cli.ok(
        "connections",
        "add",
        "warehouse",
        "--conn-uri",
        "postgres://etl:hunter22@db.example:5432/sales?sslmode=require",
    )
    cli.ok(
        "connections",
        "add",
        "api",
        "--conn-type",
        "http",
        "--conn-host",
        "api.example",
        "--conn-password",
        "pw-hunter",
        "--conn-extra",
        '{"token": "tok-hunter", "v": "1"}',
        "--conn-description",
        "the API",
    )
    cli.ok("connections", "add", "js", "--conn-json", '{"conn_type": "sqlite", "host": "/x.db"}')
    duplicate = cli("connections", "add", "api", "--conn-type", "http")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    bad = cli("connections", "add", "x", "--conn-uri", "a://b", "--conn-type", "http")
    assert bad.returncode == 2
    shown = json.loads(cli.ok("connections", "get", "warehouse", "-o", "json").stdout)
    assert shown["password"] == "***" and shown["login"] == "etl" and shown["port"] == 5432
    api = json.loads(cli.ok("connections", "get", "api", "-o", "json").stdout)
    assert api["extra"] == {"token": "***", "v": "1"} and api["description"] == "the API"
    table = cli.ok("connections", "get", "api").stdout
    listing = (
        cli.ok("connections", "list").stdout + cli.ok("connections", "list", "-o", "json").stdout
    )
    assert "hunter" not in table + listing
    assert [
        c["conn_id"] for c in json.loads(cli.ok("connections", "list", "-o", "json").stdout)
    ] == [
        "api",
        "js",
        "warehouse",
    ]
    # at rest the password and extra are ciphertext
    [(password, extra, flags)] = cli.rows(
        "SELECT password, extra, is_encrypted + is_extra_encrypted FROM connection "
        "WHERE conn_id='api'"
    )
    assert "hunter" not in password + extra and flags == 2
    cli.ok("connections", "delete", "api")
    assert cli("connections", "get", "api").returncode == 2
    events = cli.audit()
    assert [e[0] for e in events if e[0].startswith("cli.connections")] == [
        "cli.connections.add",
        "cli.connections.add",
        "cli.connections.add",
        "cli.connections.delete",
    ]
    assert "hunter" not in json.dumps(events)
    assert events[2][2]["after"]["host"] == "api.example"


def test_pools(cli: Cli) -> None:
    cli.ok("db", "migrate")
    cli.ok("pools", "set", "etl", "4", "--description", "ETL slots")
    cli.ok("pools", "set", "etl", "6")
    pool = json.loads(cli.ok("pools", "get", "etl", "-o", "json").stdout)
    assert (pool["slots"], pool["open"], pool["description"]) == (6, 6, "ETL slots")
    names = [p["pool"] for p in json.loads(cli.ok("pools", "list", "-o", "json").stdout)]
    assert names == ["default_pool", "etl"]
    assert "default_pool" in cli.ok("pools", "list").stdout
    assert cli("pools", "get", "nope").returncode == 2
    assert cli("pools", "set", "bad", "-1").returncode == 2
    assert cli("pools", "delete", "default_pool").returncode == 2
    cli.ok("pools", "delete", "etl")
    events = [e for e in cli.audit() if e[0].startswith("cli.pools")]
    assert [e[0] for e in events] == ["cli.pools.set", "cli.pools.set", "cli.pools.delete"]
    assert events[1][2]["before"] == {"slots": 4} and events[1][2]["after"] == {"slots": 6}


def test_db_clean(cli: Cli) -> None:
    cli.ok("db", "migrate")
    cli.ok("pools", "set", "p", "1")
    dry = json.loads(
        cli.ok("db", "clean", "--before", "2999-01-01", "--dry-run", "-o", "json").stdout
    )
    assert dry["dry_run"] and dry["rows"]["audit_log"] == 2 and dry["rows"]["dag_run"] == 0
    refused = cli("db", "clean", "--before", "2999-01-01")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert cli("db", "clean", "--before", "yesterday", "--yes").returncode == 2
    assert cli("db", "clean", "--before", "2999-01-01", "--tables", "dag", "--yes").returncode == 2
    done = cli.ok("db", "clean", "--before", "2999-01-01", "--tables", "audit_log", "--yes")
    assert "audit_log" in done.stdout and "2" in done.stdout
    # only the record of the clean itself remains
    assert [e[0] for e in cli.audit()] == ["cli.db.clean"]
