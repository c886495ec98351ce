"""A small process supervisor for ``tradewind standalone``.

It starts each component as its own ``tradewind <command>`` process, restarts one that exits
unexpectedly (with a growing back-off, so a component that cannot start does not spin), and on
Ctrl-C or SIGTERM stops them all: SIGTERM first, SIGKILL for any still running after the grace
period. Components inherit the terminal, so their logs appear as they write them.

Kept free of heavy imports: the supervisor idles for as long as the stack runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Seconds a component must stay up for its restart back-off to reset.
_STABLE_AFTER = 30.0
_MAX_BACKOFF = 30.0


@dataclass
class Component:
    """One supervised process: a name and the ``tradewind`` arguments that run it."""

    name: str
    args: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)


class Supervisor:
    """Runs components until told to stop; see the module docstring."""

    def __init__(
        self,
        components: Sequence[Component],
        *,
        env: dict[str, str] | None = None,
        grace_seconds: float = 10.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.components = list(components)
        self.env = env
        self.grace_seconds = grace_seconds
        self.say = say or (lambda msg: print(f"[standalone] {msg}", file=sys.stderr, flush=True))
        self._stopping = False

    def _spawn(self, comp: Component) -> None:
        cmd = [sys.executable, "-m", "tradewind.cli.main", *comp.args]
        comp.process = subprocess.Popen(cmd, env=self.env)
        comp.started_at = time.monotonic()
        comp.restart_at = None
        self.say(f"started {comp.name} (pid {comp.process.pid})")

    def request_stop(self, *_: object) -> None:
        """Ask the supervisor to stop every component (signal-handler safe)."""
        self._stopping = True

    def run(self, *, poll_seconds: float = 0.5, until: Callable[[], bool] | None = None) -> int:
        """Supervise until Ctrl-C/SIGTERM (or ``until()`` is true); returns an exit code."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for comp in self.components:
                self._spawn(comp)
            while not self._stopping and not (until and until()):
                self._check(time.monotonic())
                time.sleep(poll_seconds)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()
        return 0

    def _check(self, now: float) -> None:
        for comp in self.components:
            proc = comp.process
            if comp.restart_at is not None:
                if now >= comp.restart_at:
                    comp.restarts += 1
                    self._spawn(comp)
                continue
            if proc is None or proc.poll() is None:
                continue
            uptime = now - comp.started_at
            if uptime > _STABLE_AFTER:
                comp.backoff = 1.0
            self.say(
                f"{comp.name} exited with code {proc.returncode}; restarting in {comp.backoff:.0f} s"
            )
            comp.restart_at = now + comp.backoff
            comp.backoff = min(comp.backoff * 2, _MAX_BACKOFF)

    def _stop_all(self) -> None:
        live = [c for c in self.components if c.process is not None and c.process.poll() is None]
        if live:
            self.say("stopping " + ", ".join(c.name for c in live))
        for comp in live:
            assert comp.process is not None
            try:
                comp.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace_seconds
        for comp in live:
            assert comp.process is not None
            try:
                comp.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{comp.name} did not stop within {self.grace_seconds:.0f} s; killing it")
                comp.process.kill()
                comp.process.wait()
        self.say("stopped")


def components_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment components run with: this one, plus ``extra``."""
    env = dict(os.environ)
    env.update(extra or {})
    return env
