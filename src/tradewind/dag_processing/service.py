"""The DAG processor: keeps the metadata database in step with the DAG files.

:class:`DagProcessor` parses DAG files (each in its own process, see
:mod:`~tradewind.dag_processing.collection`) and writes what it found:

* every DAG through :func:`tradewind.db.dags.sync_dag`, which adds a new DAG version only when
  the serialized document's hash changed (runs stay pinned to the version they started with);
* the import errors of the parsed files replace the ones stored for them, and the DAGs of a
  file that failed get ``has_import_errors`` (they stay active: the file is still there);
* DAGs whose file is gone, is now ignored, or no longer defines them become inactive.

:meth:`DagProcessor.run_forever` notices changes within seconds without re-importing anything
that did not change: every ``poll_interval`` (1 s) it takes a snapshot of the modification
time and size of each ``.py`` file and ignore file under the DAGs folder (a stat walk, cheap
even for thousands of files) and re-parses only the files that changed, appeared or vanished.
Every ``full_interval`` seconds (``[scheduler] min_file_process_interval``) it re-parses
everything, which catches DAGs that change without their file changing (a helper module, a
config file the DAG file reads). An edited ignore file also triggers a full pass.

The processor is single-threaded on purpose: parsing forks, and forking a process that runs
other threads can deadlock the child.

Example::

    processor = DagProcessor(database, ParseOptions.from_settings(settings))
    report = processor.run_once()
    print(report.summary())
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tradewind.dag_processing.collection import (
    DagCollection,
    ParseOptions,
    collect_dags,
    parse_files,
)
from tradewind.dag_processing.discovery import (
    IGNORE_FILE_NAMES,
    is_ignored,
    might_contain_dag,
)
from tradewind.dag_processing.parser import FileResult, ImportErrorInfo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.db.database import Database

__all__ = ["JOB_TYPE", "DagProcessor", "ProcessingReport", "folder_snapshot"]

log = logging.getLogger("tradewind.dag_processor")

#: The ``job.job_type`` of a running DAG processor.
JOB_TYPE = "dag_processor"

#: path -> (modification time in ns, size in bytes)
Snapshot = dict[str, tuple[int, int]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ProcessingReport:
    """What one pass of the processor did.

    ``files`` are the files parsed; ``removed_files`` those that disappeared (or became
    ignored) since the previous pass. ``dags`` are the DAG ids written, ``new_versions`` the
    ones that got a new version, ``deactivated`` the ones marked inactive.
    """

    full: bool
    files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    dags: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    import_errors: list[ImportErrorInfo] = field(default_factory=list)
    duration: float = 0.0

    def summary(self) -> str:
        """One line for the log."""
        kind = "full parse" if self.full else "re-parse"
        parts = [
            f"{kind} of {len(self.files)} file(s) in {self.duration:.2f} s",
            f"{len(self.dags)} DAG(s)",
            f"{len(self.new_versions)} new version(s)",
        ]
        if self.import_errors:
            parts.append(f"{len(self.import_errors)} import error(s)")
        if self.removed_files:
            parts.append(f"{len(self.removed_files)} file(s) removed")
        if self.deactivated:
            parts.append(f"deactivated: {', '.join(self.deactivated)}")
        return "; ".join(parts)


def _is_ignore_file(name: str) -> bool:
    return name in IGNORE_FILE_NAMES


def folder_snapshot(folder: str | os.PathLike[str]) -> Snapshot:
    """(mtime_ns, size) of every ``.py`` file and ignore file under ``folder``.

    Hidden entries and ``__pycache__`` are skipped, as DAG discovery skips them; symlinked
    folders are followed once. Only ``stat`` calls: nothing is read.
    """
    root = os.path.abspath(os.fspath(folder))
    out: Snapshot = {}
    if os.path.isfile(root):
        try:
            st = os.stat(root)
        except OSError:
            return out
        return {root: (st.st_mtime_ns, st.st_size)}
    seen: set[str] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name == "__pycache__" or (name.startswith(".") and not _is_ignore_file(name)):
                continue
            try:
                if entry.is_dir():
                    stack.append(entry.path)
                elif name.endswith(".py") or _is_ignore_file(name):
                    st = entry.stat()
                    out[entry.path] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue
    return out


class DagProcessor:
    """Parses DAG files and writes DAGs, versions and import errors to the database.

    ``clock`` gives the timestamps written (``last_parsed_at``, import errors, versions).
    ``poll_interval`` is how often :meth:`run_forever` looks for changed files,
    ``full_interval`` how often it re-parses everything (None: only its first pass is a full
    one), ``heartbeat_interval`` how often its ``job`` row is refreshed.
    ``paused_upon_creation`` is the pause state of DAGs seen for the first time (unless the
    DAG sets ``is_paused_upon_creation``).
    """

    def __init__(
        self,
        db: Database,
        options: ParseOptions,
        *,
        clock: Callable[[], datetime] = _utcnow,
        poll_interval: float = 1.0,
        full_interval: float | None = 30.0,
        heartbeat_interval: float = 5.0,
        paused_upon_creation: bool = True,
    ) -> None:
        self.db = db
        self.options = options
        self.clock = clock
        self.poll_interval = poll_interval
        self.full_interval = full_interval
        self.heartbeat_interval = heartbeat_interval
        self.paused_upon_creation = paused_upon_creation
        self.job_id: int | None = None
        self._folder = Path(os.path.abspath(options.dags_folder))
        self._snapshot: Snapshot | None = None

    # -- files ---------------------------------------------------------------------------------
    def _root_for(self, path: str) -> Path:
        folder = self._folder
        return folder if folder.is_dir() else Path(path).parent

    def _is_dag_file(self, path: str) -> bool:
        """Whether discovery would pick ``path`` now (not ignored; mentions "dag" in safe mode)."""
        if not path.endswith(".py") or not os.path.isfile(path):
            return False
        if self._folder.is_dir() and is_ignored(path, self._folder):
            return False
        return not self.options.safe_mode or might_contain_dag(path)

    # -- passes --------------------------------------------------------------------------------
    def run_once(self) -> ProcessingReport:
        """Parse every DAG file (and the examples when configured) and write the outcome.

        DAGs not defined by any file any more become inactive; stored import errors of files
        that no longer exist are dropped.
        """
        started = time.monotonic()
        snapshot = folder_snapshot(self._folder)
        collection = collect_dags(self.options)
        report = ProcessingReport(full=True, files=[str(f) for f in collection.files])
        with self.db.session() as s:
            self._write_full(s, collection, report)
        self._snapshot = snapshot
        report.duration = time.monotonic() - started
        return report

    def _write_full(self, s: Session, collection: DagCollection, report: ProcessingReport) -> None:
        from tradewind.db import dags as db_dags
        from tradewind.db import import_errors as db_errors

        now = self.clock()
        for dag_id in sorted(collection.dags):
            self._sync(s, collection.dags[dag_id], now, report)
        parsed = {str(f) for f in collection.files}
        stale = {e.filename for e in db_errors.list_import_errors(s)} - parsed
        db_errors.replace_import_errors(s, parsed | stale, collection.import_errors, now=now)
        report.import_errors = list(collection.import_errors)
        keep = set(collection.dags) | self._dags_of(s, {e.path for e in collection.import_errors})
        report.deactivated = db_dags.deactivate_missing(s, keep)

    def process_files(
        self, changed: Iterable[str | os.PathLike[str]], removed: Iterable[str] = ()
    ) -> ProcessingReport:
        """Re-parse only ``changed`` files and forget ``removed`` ones.

        A changed file that discovery would not pick any more (now ignored, or no longer
        mentioning "dag" in safe mode) counts as removed. DAGs a re-parsed file no longer
        defines become inactive, as do the DAGs of removed files.
        """
        started = time.monotonic()
        gone = {os.path.abspath(os.fspath(p)) for p in removed}
        wanted: list[str] = []
        for path in sorted({os.path.abspath(os.fspath(p)) for p in changed}):
            if self._is_dag_file(path):
                wanted.append(path)
            else:
                gone.add(path)
        gone -= set(wanted)
        pairs = [(Path(p), self._root_for(p)) for p in wanted]
        results = parse_files(pairs, self.options) if pairs else []
        report = ProcessingReport(full=False, files=wanted, removed_files=sorted(gone))
        with self.db.session() as s:
            self._write_partial(s, results, gone, report)
        report.duration = time.monotonic() - started
        return report

    def _write_partial(
        self,
        s: Session,
        results: Sequence[FileResult],
        gone: Collection[str],
        report: ProcessingReport,
    ) -> None:
        from tradewind.db import dags as db_dags
        from tradewind.db import import_errors as db_errors
        from tradewind.db.models import Dag

        now = self.clock()
        errors: list[ImportErrorInfo] = []
        seen: set[str] = set()
        for result in results:
            errors.extend(result.import_errors)
            for parsed in result.dags:
                owner = s.get(Dag, parsed.dag_id)
                if (
                    owner is not None
                    and owner.is_active
                    and owner.fileloc not in (None, result.path)
                    and owner.fileloc not in gone
                    and os.path.exists(owner.fileloc or "")
                ):
                    # The id belongs to another file already; the full pass settles which
                    # one keeps it the same way every time (first in path order).
                    errors.append(
                        ImportErrorInfo(
                            path=result.path,
                            message=f"DAG id {parsed.dag_id!r} is defined in two files: "
                            f"{owner.fileloc} and {result.path} (the DAG from "
                            f"{owner.fileloc} is kept)",
                        )
                    )
                    continue
                seen.add(parsed.dag_id)
                self._sync(s, parsed.document, now, report)
        files = [r.path for r in results]
        db_errors.replace_import_errors(s, [*files, *gone], errors, now=now)
        report.import_errors = errors
        keep = seen | self._dags_of(s, {e.path for e in errors})
        within = [*files, *gone]
        if within:
            report.deactivated = db_dags.deactivate_missing(s, keep, within_files=within)

    def _sync(
        self, s: Session, document: dict[str, object], now: datetime, report: ProcessingReport
    ) -> None:
        from tradewind.db import dags as db_dags

        result = db_dags.sync_dag(
            s, document, now=now, paused_upon_creation=self.paused_upon_creation
        )
        report.dags.append(result.dag_id)
        if result.new_version:
            report.new_versions.append(result.dag_id)
            what = "new DAG" if result.created else f"version {result.version_number}"
            log.info("DAG %s: %s", result.dag_id, what)

    @staticmethod
    def _dags_of(s: Session, files: Collection[str]) -> set[str]:
        """Active DAGs defined in ``files`` (kept active while their file fails to import)."""
        if not files:
            return set()
        import sqlalchemy as sa

        from tradewind.db.models import Dag

        return set(s.scalars(sa.select(Dag.dag_id).where(Dag.fileloc.in_(sorted(files)))))

    # -- watching ------------------------------------------------------------------------------
    def check_for_changes(self) -> ProcessingReport | None:
        """Compare the folder with the last snapshot and re-parse what changed.

        Returns the report, or None when nothing changed. The first call (before any pass)
        does a full pass.
        """
        if self._snapshot is None:
            return self.run_once()
        current = folder_snapshot(self._folder)
        previous = self._snapshot
        changed = [p for p, sig in current.items() if previous.get(p) != sig]
        removed = [p for p in previous if p not in current]
        if not changed and not removed:
            return None
        if any(_is_ignore_file(os.path.basename(p)) for p in [*changed, *removed]):
            return self.run_once()
        self._snapshot = current
        return self.process_files(changed, removed)

    def run_forever(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Watch the DAGs folder until ``should_stop()`` is true (see the module docstring).

        Registers a ``job`` row (type ``dag_processor``) and heartbeats it.
        """
        from tradewind.db import jobs as db_jobs

        with self.db.session() as s:
            job = db_jobs.start_job(
                s, JOB_TYPE, hostname=socket.gethostname(), pid=os.getpid(), now=self.clock()
            )
            self.job_id = job.id
        state = db_jobs.JOB_SUCCESS
        try:
            self._loop(should_stop)
        except BaseException:
            state = db_jobs.JOB_FAILED
            raise
        finally:
            with self.db.session() as s:
                db_jobs.end_job(s, job.id, now=self.clock(), state=state)

    def _loop(self, should_stop: Callable[[], bool]) -> None:
        from tradewind.db import jobs as db_jobs

        next_full = 0.0
        next_beat = time.monotonic() + self.heartbeat_interval
        while not should_stop():
            mono = time.monotonic()
            report: ProcessingReport | None = None
            try:
                if mono >= next_full:
                    interval = self.full_interval
                    next_full = mono + max(interval, self.poll_interval) if interval else 1e300
                    report = self.run_once()
                else:
                    report = self.check_for_changes()
            except Exception:
                # A database hiccup (locked, connection lost) must not end the processor; the
                # next pass tries again, and a full pass soon after rewrites everything.
                log.exception("DAG processing pass failed; trying again shortly")
                next_full = min(next_full, mono + 10 * self.poll_interval)
                self._snapshot = None
            if report is not None and (report.full is False or report.new_versions):
                log.info("%s", report.summary())
            elif report is not None:
                log.debug("%s", report.summary())
            mono = time.monotonic()
            if mono >= next_beat and self.job_id is not None:
                with self.db.session() as s:
                    db_jobs.heartbeat(s, self.job_id, now=self.clock())
                next_beat = mono + self.heartbeat_interval
            _sleep_until(mono + self.poll_interval, should_stop)


def _sleep_until(deadline: float, should_stop: Callable[[], bool]) -> None:
    # Short naps, so a stop request (a signal handler setting a flag) is seen quickly.
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))
