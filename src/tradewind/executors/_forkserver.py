"""The local executor's fork server: a lean, clean process that forks the workers.

Forking workers straight from the scheduler's process would give each of them (and every task
process they fork) the scheduler's whole address space: SQLAlchemy, the database driver, open
connections. Forking costs grow with that memory (about 1.7 ms per try from a 30 MB process,
3.7 ms from a 70 MB one on our 2-core machines), and the scheduler's state has no business
in task processes. So the executor starts this module once, in a fresh interpreter::

    python -m tradewind.executors._forkserver <socket fd> <parent pid>

It reads one ``config`` message (``sys.path``, the settings DAG files are defined under, the
worker configuration and the modules to preload), imports and warms up the task runtime,
answers ``{"op": "ready"}``, and then forks one worker per ``{"op": "spawn", "spare": bool}``
message (the worker's channel comes with it, SCM_RIGHTS). It starts with ``LD_BIND_NOW`` set
(unless the environment had it already) and drops it from its environment at once: every
dynamic symbol is resolved before the first fork, so no task process writes to the symbol
tables it shares with its worker. It is a child subreaper
(``PR_SET_CHILD_SUBREAPER``): processes orphaned below it are reaped here, never left as
zombies. It exits when the executor closes the socket, and dies with the executor
(``PR_SET_PDEATHSIG``); its workers die with it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradewind.executors._worker import WorkerConfig

__all__ = ["launch_forkserver", "main"]


# Set (with LD_BIND_NOW) for the fork server when the executor added LD_BIND_NOW itself.
_BIND_NOW_MARK = "TRADEWIND_FORKSERVER_BIND_NOW"


def launch_forkserver(
    config: WorkerConfig, preload: Sequence[str]
) -> tuple[subprocess.Popen[bytes], socket.socket, dict[str, Any]]:
    """Start a fork server (in the executor's process): returns the process, this side's
    socket to it, and the ``config`` message to send it first."""
    from tradewind.sdk.mapping import get_max_map_length
    from tradewind.sdk.timezone import get_default_timezone, tz_name

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = dict(os.environ)
    if "LD_BIND_NOW" not in env:
        # Resolve every dynamic symbol when the fork server starts, rather than in each task
        # process the first time it calls a C function its worker never called (a write to
        # a shared page, so a page copied in every task process).
        env["LD_BIND_NOW"] = env[_BIND_NOW_MARK] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(theirs.fileno()), str(os.getpid())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal is the scheduler's to handle
        env=env,
    )
    theirs.close()
    message = {
        "op": "config",
        "sys_path": [p for p in sys.path if isinstance(p, str) and p],
        "settings": {
            "default_timezone": tz_name(get_default_timezone()),
            "max_map_length": get_max_map_length(),
        },
        "worker": {
            "dags_folder": str(config.dags_folder) if config.dags_folder else None,
            "import_timeout": config.import_timeout,
            "hostname": config.hostname,
            "max_cached_dags": config.max_cached_dags,
            "spare": config.spare,
        },
        "preload": list(preload),
    }
    return process, ours, message


def _apply_settings(settings: dict[str, Any]) -> None:
    from tradewind.dag_processing.parser import apply_parse_settings

    apply_parse_settings(
        default_timezone=settings.get("default_timezone"),
        max_map_length=settings.get("max_map_length"),
    )


def _serve(sock: socket.socket) -> None:
    from tradewind.executors._warmup import warm_up_runtime
    from tradewind.executors._worker import (
        WorkerConfig,
        _FrameReader,
        _Stop,
        fork_worker,
        release_free_memory,
        set_child_subreaper,
    )
    from tradewind.runtime.supervisor import encode_frame

    reader = _FrameReader(sock)
    config_message = reader.read_message()
    for entry in reversed(config_message.get("sys_path") or []):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    _apply_settings(config_message.get("settings") or {})
    raw = config_message["worker"]
    config = WorkerConfig(
        dags_folder=Path(raw["dags_folder"]) if raw.get("dags_folder") else None,
        import_timeout=raw.get("import_timeout"),
        hostname=str(raw["hostname"]),
        max_cached_dags=int(raw.get("max_cached_dags", 64)),
        spare=bool(raw.get("spare", True)),
    )
    for name in config_message.get("preload") or ():
        try:
            importlib.import_module(name)
        except Exception:
            continue
    warm_up_runtime(through_supervisor=True)
    gc.collect()
    release_free_memory()
    gc.freeze()
    sock.sendall(encode_frame({"op": "ready", "pid": os.getpid()}))

    # Orphaned descendants (task processes whose worker died, commands they left behind)
    # become this process's children; SIGCHLD wakes the loop to reap whatever exited.
    set_child_subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    own_fds = [sock.fileno(), wake_r, wake_w]

    def spawn(message: dict[str, Any]) -> None:
        if message.get("op") != "spawn" or not reader.fds:
            return
        channel = socket.socket(fileno=reader.fds.pop(0))
        spare = bool(message.get("spare", config.spare))
        try:
            fork_worker(channel, replace(config, spare=spare), own_fds)
        except OSError as exc:
            sock.sendall(encode_frame({"op": "spawn_failed", "error": str(exc)}))
        finally:
            channel.close()

    while True:
        # Messages may have arrived together with the previous ones: handle the buffered first.
        while (message := reader.next_message()) is not None:
            spawn(message)
        watched: list[Any] = [sock, wake_r]
        readable, _, _ = select.select(watched, [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            _reap_all()
        if sock in readable:
            try:
                reader.receive_some()
            except _Stop:
                return


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``<socket fd> <parent pid>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    fd, parent_pid = int(args[0]), int(args[1])
    if os.environ.pop(_BIND_NOW_MARK, None):
        # The executor asked the dynamic loader to bind every symbol at start-up (done by
        # now); tasks and the commands they start must not inherit that.
        os.environ.pop("LD_BIND_NOW", None)
    from tradewind.executors._worker import set_parent_death_signal

    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        return 0  # the executor is already gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    try:
        _serve(sock)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    os._exit(main())
