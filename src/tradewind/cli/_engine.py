"""What the engine commands share: dates, conf, the schema check, stop signals, logging, and
finding a DAG in the database or (for ``dags test``/``tasks test``) in its file.

Kept light: only click and the CLI's own helpers are imported at module level, so listing the
commands of a group that uses this module stays instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli._output import ExitCode, echo_err, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.cli._state import CliState
    from tradewind.config import Settings
    from tradewind.db.database import Database
    from tradewind.db.models import Dag
    from tradewind.sdk.dag_definition import DAG

__all__ = [
    "StopFlag",
    "dag_or_fail",
    "database_at_head",
    "display_url",
    "iso",
    "load_live_dag",
    "parse_conf",
    "parse_when",
    "setup_logging",
    "stdout_to_stderr",
    "touch_run",
]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime (naive ones are UTC), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def parse_when(text: str | None, settings: Settings, option: str) -> datetime | None:
    """An ISO date or date-time from the command line, as aware UTC (naive values are in
    ``core.default_timezone``); a bad value is a usage error naming ``option``."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-01-31 or "
            "2024-01-31T12:00:00+00:00)",
            param_hint=option,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(settings.core.default_timezone))
    return value.astimezone(UTC)


def parse_conf(text: str | None) -> dict[str, Any]:
    """``--conf``: a JSON object (``{}`` when not given); anything else is a usage error."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--conf") from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"must be a JSON object like '{{\"key\": 1}}', got {type(value).__name__}",
            param_hint="--conf",
        )
    return value


def display_url(settings: Settings) -> str:
    """The database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)


def database_at_head(settings: Settings, *, create_key: bool = False) -> Database:
    """The configured database, or exit 1 when its schema is not at the newest revision.

    Long-running components use this instead of creating the schema on the fly: starting a
    scheduler against an old schema would fail later and less clearly.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from tradewind.db.database import Database
    from tradewind.db.migrate import HEAD_REVISION, current_revision
    from tradewind.errors import TradewindError

    try:
        database = Database.from_settings(settings, create_key=create_key)
        current = current_revision(database.engine)
    except (TradewindError, SQLAlchemyError) as exc:
        fail(f"cannot open the metadata database {display_url(settings)}: {exc}")
    if current != HEAD_REVISION:
        what = "has no Tradewind schema" if current is None else f"is at revision {current}"
        fail(
            f"the metadata database {display_url(settings)} {what}; this Tradewind needs "
            f"revision {HEAD_REVISION}",
            ExitCode.FAILURE,
            hint="run `tradewind db migrate` first",
        )
    return database


def dag_or_fail(session: Session, dag_id: str) -> Dag:
    """The DAG row ``dag_id``, or exit 2 naming it, with close matches and a hint."""
    import difflib

    import sqlalchemy as sa

    from tradewind.db.models import Dag

    row = session.get(Dag, dag_id)
    if row is not None:
        return row
    known = list(session.scalars(sa.select(Dag.dag_id)))
    close = difflib.get_close_matches(dag_id, known, n=5, cutoff=0.5)
    suggestion = f"; did you mean: {', '.join(close)}?" if close else ""
    fail(
        f"DAG {dag_id!r} is not in the metadata database{suggestion}",
        ExitCode.USAGE,
        hint=None
        if close
        else "DAGs reach the database through `tradewind dag-processor` (or run "
        "`tradewind dags reserialize` once)",
    )


def touch_run(session: Session, dag_id: str, run_id: str, now: datetime) -> None:
    """Mark a run as changed so a running scheduler looks at it again at its next poll."""
    import sqlalchemy as sa

    from tradewind.db.models import DagRun

    session.execute(
        sa.update(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )


class StopFlag:
    """Becomes true on SIGINT or SIGTERM (installed by :meth:`install`); a second Ctrl-C
    while stopping exits at once, for a component that hangs on its way out."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requested = False

    def install(self) -> StopFlag:
        """Install the handlers (main thread only); returns self."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            os._exit(130)
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def setup_logging(settings: Settings) -> None:
    """Log records of this process to stderr at ``logging.level``."""
    import logging

    logging.basicConfig(
        level=settings.logging.level,
        stream=sys.stderr,
        format="[%(asctime)s] %(levelname)s %(name)s - %(message)s",
    )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (``print`` and file descriptor 1, e.g. by DAG files
    and subprocesses) to stderr meanwhile, so stdout can hold just one JSON document."""
    sys.stdout.flush()
    saved_fd = os.dup(1)
    saved = sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = saved
        os.dup2(saved_fd, 1)
        os.close(saved_fd)


# --- finding a DAG in its file -----------------------------------------------------------------


def _candidate_files(state: CliState) -> list[tuple[Path, Path]]:
    from tradewind.dag_processing import example_dags_folder, find_dag_files

    settings = state.settings()
    folder = Path(os.path.abspath(state.effective_dags_folder()))
    root = folder if folder.is_dir() else folder.parent
    pairs = [
        (f, root) for f in find_dag_files(folder, safe_mode=settings.core.dag_discovery_safe_mode)
    ]
    examples = settings.core.load_examples if state.load_examples is None else state.load_examples
    if examples:
        ex = example_dags_folder()
        pairs += [(f, ex) for f in find_dag_files(ex, safe_mode=False)]
    return pairs


def _mentions(path: Path, dag_id: str) -> bool:
    try:
        return dag_id.encode("utf-8") in path.read_bytes()
    except OSError:
        return False


def load_live_dag(state: CliState, dag_id: str) -> DAG:
    """Import the file that defines ``dag_id`` in this process and return the live DAG.

    Fast path: only files whose text mentions the id are imported, in discovery order. When
    none defines it (an id built at run time), the folder is parsed as DAG processing does to
    find its file. Exits 2 for an unknown id (with close matches) and 1 when the DAG's file
    fails to import or the DAG is invalid.
    """
    from tradewind.dag_processing import load_dag_from_file
    from tradewind.dag_processing.parser import apply_parse_settings
    from tradewind.errors import DagDefinitionError, DagFileError, NotFound

    settings = state.settings()
    apply_parse_settings(
        default_timezone=settings.core.default_timezone,
        max_map_length=settings.core.max_map_length,
    )
    pairs = _candidate_files(state)
    roots = {str(f): r for f, r in pairs}
    tried: set[str] = set()
    first_error: DagFileError | None = None

    def attempt(path: str) -> DAG | None:
        nonlocal first_error
        tried.add(path)
        try:
            return load_dag_from_file(path, dag_id, root=roots.get(path))
        except NotFound:
            return None
        except DagFileError as exc:
            first_error = first_error or exc
            return None
        except DagDefinitionError as exc:
            fail(str(exc))

    for path, _ in pairs:
        if _mentions(path, dag_id):
            dag = attempt(str(path))
            if dag is not None:
                return dag
    collection = state.collect()
    defined_in = collection.dag_files.get(dag_id)
    if defined_in is not None and defined_in not in tried:
        dag = attempt(defined_in)
        if dag is not None:
            return dag
    if first_error is not None:
        _report_file_error(first_error)
    close = collection.close_matches(dag_id)
    suggestion = f"; did you mean: {', '.join(close)}?" if close else ""
    broken = {e.path for e in collection.import_errors}
    hint = (
        f"{len(broken)} DAG file(s) could not be imported; see `tradewind dags list-import-errors`"
        if broken
        else None
    )
    fail(
        f"DAG {dag_id!r} not found in {state.effective_dags_folder()}{suggestion}",
        ExitCode.USAGE,
        hint=hint,
    )


def _report_file_error(exc: Any) -> None:
    echo_err(getattr(exc, "traceback", "") or "")
    fail(f"the DAG file failed to import: {exc}")
