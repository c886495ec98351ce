"""``tradewind users`` and ``tradewind api-server`` as people run them: real subprocesses on a
temporary ``$TRADEWIND_HOME``, the server on a free port, called over HTTP with basic auth."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

WAIT_SECONDS = 60.0


def _env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND")}
    env.update(
        {
            "TRADEWIND_HOME": str(home),
            "TRADEWIND__CORE__LOAD_EXAMPLES": "true",
            "TRADEWIND__API__PORT": str(port),
            "TRADEWIND__API__HOST": "127.0.0.1",
        }
    )
    return env


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tradewind.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_users_commands(tmp_path: Path) -> None:
    env = _env(tmp_path, _free_port())
    # given a user created with a random password (printed once, on stdout)
    created = _cli(
        env,
        "users",
        "create",
        "-u",
        "ada",
        "-r",
        "Op",
        "-e",
        "ada@example.com",
        "--use-random-password",
    )
    secret = created.stdout.strip()
    assert len(secret) >= 12 and "created" in created.stderr
    # expect it listed with its role, as JSON
    listed = json.loads(_cli(env, "users", "list", "--output", "json").stdout)
    assert [(u["username"], u["roles"], u["email"]) for u in listed] == [
        ("ada", ["Op"], "ada@example.com")
    ]
    # and errors named: a taken name, an unknown role, an unknown user
    again = _cli(env, "users", "create", "-u", "ada", "-r", "Op", "-p", "12345678", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
    role = _cli(env, "users", "create", "-u", "bob", "-r", "Boss", "-p", "12345678", check=False)
    assert role.returncode == 2 and "role 'Boss' not found" in role.stderr
    reset = _cli(env, "users", "reset-password", "-u", "ada", "-p", "new-password")
    assert "changed" in reset.stderr
    _cli(env, "users", "delete", "-u", "ada", "-y")
    assert json.loads(_cli(env, "users", "list", "-o", "json").stdout) == []
    gone = _cli(env, "users", "delete", "-u", "ada", "-y", check=False)
    assert gone.returncode == 2


def test_api_server_serves_the_api_with_basic_auth(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path, port)
    # given a migrated database with the example DAGs and an admin
    _cli(env, "db", "migrate")
    _cli(env, "dags", "reserialize")
    _cli(env, "users", "create", "-u", "admin", "-r", "Admin", "-p", "admin-password")
    # when the API server runs as its own process
    server = subprocess.Popen(
        [sys.executable, "-m", "tradewind.cli.main", "api-server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"the server did not start:\n{server.stdout.read() if server.stdout else ''}"
                    )
                time.sleep(0.2)
        # expect it to answer: health without login, DAGs with basic auth, 401 without
        assert health.json()["metadatabase"]["status"] == "healthy"
        auth = ("admin", "admin-password")
        dags = httpx.get(f"{base}/dags", auth=auth, timeout=10).json()
        assert dags["total_entries"] > 0
        assert httpx.get(f"{base}/dags", timeout=10).status_code == 401
        dag_id = dags["dags"][0]["dag_id"]
        # (new DAGs start paused)
        unpaused = httpx.patch(
            f"{base}/dags/{dag_id}", json={"is_paused": False}, auth=auth, timeout=10
        )
        assert unpaused.json()["is_paused"] is False
        events = httpx.get(f"{base}/eventLogs?event=api.dags.patch", auth=auth, timeout=10).json()
        assert events["event_logs"][0]["owner"] == "admin"
        assert json.loads(events["event_logs"][0]["extra"])["client"] == "127.0.0.1"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
