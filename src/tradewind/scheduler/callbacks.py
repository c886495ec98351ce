"""DAG-level callbacks (``on_success_callback`` / ``on_failure_callback``), run outside the
scheduler in a child process, so a slow or crashing callback never stalls scheduling.

The scheduler starts the child (:func:`start_dag_callback`) once the transaction that finished
the run has committed (:func:`when_committed`), so what the child reads is what the run ended
with, and a rolled-back finish never calls anything. It passes the run's identity, its row
fields (:func:`run_info`, a few hundred bytes: a large ``conf`` is left to the database) and,
in the child's environment (``TRADEWIND__DATABASE__URL``), the database it uses; the child
otherwise runs under the scheduler's settings.

The child (``python -m tradewind.scheduler.callbacks``) imports the DAG file, reads the run and
its task instances from the metadata database, and calls each callback with the Airflow
context of one of those task instances plus ``reason`` (``success``, ``task_failure``,
``all_tasks_deadlocked`` or ``timed_out``): ``dag_run`` with its task instances, ``ti``,
``task``, ``ds``, ``params``, ``var``, ``conn``, ``macros`` ... and ``ti.xcom_pull`` reading the
run's XComs (see :mod:`tradewind.scheduler.callback_context`). Stored variables and connections
are visible to ``var``/``conn``, ``Variable.get`` and hooks.

It writes what it logs to ``<log_folder>/dag_id=<id>/run_id=<id>/dag_callback.log``, with
masked secrets replaced by ``***``. An exception in a callback is logged, never raised; a
callback whose context cannot be fully built (no database, a run or task gone) still runs
with what is there, and the log says what is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.config import Settings
    from tradewind.db.database import Database
    from tradewind.scheduler.callback_context import CallbackDagRun

__all__ = [
    "DATABASE_URL_ENV",
    "MAX_CONF_ARGUMENT",
    "callback_log_path",
    "run_info",
    "start_dag_callback",
    "when_committed",
]

#: The environment variable through which the child gets the scheduler's database.
DATABASE_URL_ENV = "TRADEWIND__DATABASE__URL"
#: Largest ``conf`` (as JSON) passed on the command line; a larger one is read from the DB.
MAX_CONF_ARGUMENT = 8192

log = logging.getLogger("tradewind.scheduler")


def callback_log_path(log_folder: str | Path, dag_id: str, run_id: str) -> Path:
    """Where a run's DAG-callback output goes."""
    safe = run_id.replace("/", "_")
    return Path(log_folder) / f"dag_id={dag_id}" / f"run_id={safe}" / "dag_callback.log"


def run_info(run: Any, *, state: Any) -> dict[str, Any]:
    """The fields of a ``dag_run`` row as JSON values, with ``state`` (the state the run just
    reached). The child uses them only when it cannot read the run from the database."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    info: dict[str, Any] = {
        "id": run.id,
        "run_type": str(run.run_type),
        "state": str(getattr(state, "value", state)),
        "clear_number": run.clear_number,
    }
    for name in ("logical_date", "data_interval_start", "data_interval_end", "run_after"):
        info[name] = iso(getattr(run, name))
    for name in ("queued_at", "start_date", "end_date"):
        info[name] = iso(getattr(run, name))
    conf = run.conf or {}
    if len(json.dumps(conf, default=str)) <= MAX_CONF_ARGUMENT:
        info["conf"] = conf
    return info


def start_dag_callback(
    *,
    fileloc: str | None,
    dag_id: str,
    run_id: str,
    kind: str,
    reason: str,
    log_folder: str | Path,
    run_info: dict[str, Any] | None = None,
    database_url: Any = None,
) -> subprocess.Popen[bytes]:
    """Start the child that runs the DAG's ``on_<kind>_callback``; returns it (reap it later).

    ``database_url`` (text or a SQLAlchemy URL) is the database the child reads the run from;
    it goes through the child's environment, never its command line, as it may hold a
    password. None leaves the child with the database of its settings.
    """
    path = callback_log_path(log_folder, dag_id, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "tradewind.scheduler.callbacks",
        "--fileloc", fileloc or "", "--dag-id", dag_id, "--run-id", run_id,
        "--kind", kind, "--reason", reason, "--run-info", json.dumps(run_info or {}),
    ]  # fmt: skip
    env = dict(os.environ)
    if database_url is not None:
        render = getattr(database_url, "render_as_string", None)
        env[DATABASE_URL_ENV] = render(hide_password=False) if render else str(database_url)
    with open(path, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def when_committed(session: Session | None, action: Callable[[], None]) -> None:
    """Call ``action`` once the session's transaction commits (at once when there is none),
    never when it rolls back. An exception from ``action`` is logged, not raised: the commit
    has happened, and the scheduler must go on."""

    def run() -> None:
        try:
            action()
        except Exception:
            log.exception("could not start a DAG callback")

    if session is None or not session.in_transaction():
        run()
        return
    import sqlalchemy as sa

    pending = [True]

    def on_commit(_session: Session) -> None:
        if pending:
            pending.clear()
            run()

    def on_rollback(_session: Session) -> None:
        pending.clear()

    sa.event.listen(session, "after_commit", on_commit, once=True)
    sa.event.listen(session, "after_rollback", on_rollback, once=True)


# -- the child process ----------------------------------------------------------------------------


class _RedactingFormatter(logging.Formatter):
    """Formats records (message and traceback) with masked secrets replaced by ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        from tradewind.sdk.secrets import redact

        return redact(super().format(record))


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _load_settings(child_log: logging.Logger) -> Settings | None:
    from tradewind.config import load_settings

    try:
        settings = load_settings()
    except Exception as exc:
        child_log.warning("cannot load the settings (%s); going on without them", exc)
        return None
    from tradewind.dag_processing.parser import apply_parse_settings

    apply_parse_settings(
        default_timezone=settings.core.default_timezone,
        max_map_length=settings.core.max_map_length,
    )
    return settings


def _dags_root(fileloc: str, settings: Settings | None) -> str | None:
    """The DAGs folder when it holds ``fileloc`` (it goes on ``sys.path``, as for tasks)."""
    if settings is None:
        return None
    folder = Path(settings.core.dags_folder).absolute()
    return str(folder) if Path(fileloc).absolute().is_relative_to(folder) else None


def _database_url(settings: Settings | None) -> tuple[str | None, str | None]:
    """(URL, None), or (None, why there is no usable database)."""
    from sqlalchemy.engine import make_url

    url = settings.database.url if settings is not None else os.environ.get(DATABASE_URL_ENV)
    if not url:
        return None, "no metadata database is configured for the callback process"
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    if parsed.get_backend_name() == "sqlite" and in_memory:
        return None, "the scheduler's database is in memory, out of the callback process's reach"
    return url, None


@contextmanager
def _open_database(settings: Settings | None, child_log: logging.Logger) -> Iterator[Any]:
    """Yields ``(database, None)`` or ``(None, why not)``; registers the database as a
    secrets backend meanwhile, so ``Variable.get`` and hooks see stored values."""
    url, missing = _database_url(settings)
    if url is None:
        yield None, missing
        return
    from tradewind.db.database import Database
    from tradewind.db.task_data import DbSecretsBackend
    from tradewind.sdk import secrets

    fernet = None
    if settings is not None:
        from tradewind.db.crypto import get_fernet

        try:
            fernet = get_fernet(settings)
        except Exception as exc:
            child_log.warning("cannot read the Fernet key (%s): encrypted secrets stay hidden", exc)
    try:
        # Only reads: no need to take SQLite's write lock for them.
        database = Database.from_url(url, fernet=fernet, sqlite_immediate=False)
    except Exception as exc:
        yield None, f"cannot open the metadata database ({type(exc).__name__}: {exc})"
        return
    backend = DbSecretsBackend(database.session_factory, fernet=fernet)
    secrets.register_backend(backend)
    try:
        yield database, None
    finally:
        secrets.unregister_backend(backend)
        database.dispose()


def _read_run(database: Database, dag_id: str, run_id: str) -> CallbackDagRun:
    from tradewind.db import runs as db_runs
    from tradewind.db import task_instances as db_tis
    from tradewind.scheduler.callback_context import RUN_FIELDS, TI_FIELDS, run_from_fields

    with database.session() as s:
        row = db_runs.get_run(s, dag_id, run_id)
        fields = {name: getattr(row, name) for name in RUN_FIELDS}
        tis = [
            {name: getattr(ti, name) for name in TI_FIELDS}
            for ti in db_tis.list_tis(s, dag_id, run_id)
        ]
    return run_from_fields(fields, tis)


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    for name in ("--fileloc", "--dag-id", "--run-id", "--kind", "--reason", "--run-info"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    _setup_logging()
    child_log = logging.getLogger("tradewind.dag_callback")
    settings = _load_settings(child_log)
    from tradewind.dag_processing import load_dag_from_file

    try:
        dag = load_dag_from_file(args.fileloc, args.dag_id, root=_dags_root(args.fileloc, settings))
    except Exception:
        child_log.exception("cannot load DAG %s from %s", args.dag_id, args.fileloc)
        return 1
    callbacks = getattr(dag, f"on_{args.kind}_callback", None)
    if not callbacks:
        return 0
    from tradewind.scheduler.callback_context import build_callback_context, run_from_fields
    from tradewind.sdk.context import set_current_context

    try:
        info = json.loads(args.run_info or "{}")
    except ValueError:
        info = {}
    with _open_database(settings, child_log) as (database, missing):
        run = None
        if database is not None:
            try:
                run = _read_run(database, args.dag_id, args.run_id)
            except Exception as exc:
                missing = f"cannot read the run from the metadata database ({exc})"
        if run is None:
            run = run_from_fields({**info, "dag_id": args.dag_id, "run_id": args.run_id})
        xcom = None
        if missing is None and database is not None:
            from tradewind.db.task_data import DbTaskDataService

            xcom = DbTaskDataService(database.session_factory, fernet=database.fernet)
        built = build_callback_context(
            dag, run=run, kind=args.kind, reason=args.reason, xcom=xcom, xcom_missing=missing
        )
        if missing is not None:
            child_log.warning(
                "the callback gets a partial context (run fields only, no task instance): %s",
                missing,
            )
        for note in built.notes:
            child_log.warning("the callback gets a partial context: %s", note)
        if built.ti is not None:
            child_log.info(
                "context: task instance %r of run %s (%s), %d task instance(s) in the run",
                built.ti,
                run.run_id,
                run.state,
                len(run.get_task_instances()),
            )
        for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
            name = _callable_name(callback)
            child_log.info("running DAG %s callback %s (reason: %s)", args.kind, name, args.reason)
            try:
                with set_current_context(built.context):
                    callback(built.context)
            except KeyboardInterrupt:
                raise
            except BaseException:
                child_log.exception(
                    "DAG %s callback %s failed; the error is ignored", args.kind, name
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
