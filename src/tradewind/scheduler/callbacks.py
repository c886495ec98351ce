"""DAG-level callbacks (``on_success_callback`` / ``on_failure_callback``), run outside the
scheduler in a child process, so a slow or crashing callback never stalls scheduling.

The child imports the DAG file, calls each callback with a context holding ``dag``,
``dag_run`` (id, type, logical date, data interval, conf, state), ``run_id`` and ``reason``
(``success``, ``task_failure``, ``all_tasks_deadlocked`` or ``timed_out``), and writes what it
logs to ``<log_folder>/dag_id=<id>/run_id=<id>/dag_callback.log``. An exception in a callback
is logged, never raised.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def callback_log_path(log_folder: str | Path, dag_id: str, run_id: str) -> Path:
    """Where a run's DAG-callback output goes."""
    safe = run_id.replace("/", "_")
    return Path(log_folder) / f"dag_id={dag_id}" / f"run_id={safe}" / "dag_callback.log"


def start_dag_callback(
    *,
    fileloc: str | None,
    dag_id: str,
    run_id: str,
    kind: str,
    reason: str,
    log_folder: str | Path,
    run_info: dict[str, Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the child that runs the DAG's ``on_<kind>_callback``; returns it (reap it later)."""
    path = callback_log_path(log_folder, dag_id, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "tradewind.scheduler.callbacks",
        "--fileloc", fileloc or "", "--dag-id", dag_id, "--run-id", run_id,
        "--kind", kind, "--reason", reason, "--run-info", json.dumps(run_info or {}),
    ]  # fmt: skip
    with open(path, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    for name in ("--fileloc", "--dag-id", "--run-id", "--kind", "--reason", "--run-info"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s - %(message)s"
    )
    log = logging.getLogger("tradewind.dag_callback")
    from tradewind.dag_processing import load_dag_from_file

    dag = load_dag_from_file(args.fileloc, args.dag_id)
    callbacks = getattr(dag, f"on_{args.kind}_callback", None)
    if not callbacks:
        return 0
    info = json.loads(args.run_info)
    dag_run = SimpleNamespace(run_id=args.run_id, dag_id=args.dag_id, **info)
    context = {"dag": dag, "dag_run": dag_run, "run_id": args.run_id, "reason": args.reason}
    for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
        name = getattr(callback, "__qualname__", repr(callback))
        try:
            log.info("running DAG %s callback %s (reason: %s)", args.kind, name, args.reason)
            callback(context)
        except Exception:
            log.exception("DAG %s callback %s failed", args.kind, name)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
