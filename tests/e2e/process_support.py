"""Helpers for tests that run real ``tradewind`` processes: run a command, start one in the
background in a session of its own, wait for a condition, stop or kill them whatever happened.

``tests/`` is not a package: tests in ``tests/e2e`` import this module by name; tests elsewhere
put this folder on ``sys.path`` first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TRADEWIND = [sys.executable, "-m", "tradewind.cli.main"]


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run ``tradewind ARGS`` to completion; its stdout (the test fails on a non-zero exit)."""
    proc = subprocess.run(
        [*TRADEWIND, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout.strip()


def start_in_background(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``tradewind ARGS`` in the background, in a session of its own, logging to a file (a
    pipe nobody reads could fill up and stall it)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*TRADEWIND, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_groups(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGKILL each process's whole session (its workers and task processes too)."""
    for proc in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """``check()``'s first true value, polling; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout:g} s for {what}")
        time.sleep(interval)


def stop_gracefully(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then its exit code (killed, and the test failed, after 30 s)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the scheduler did not stop on SIGTERM") from None
