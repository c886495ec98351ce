"""Import errors: the DAG files that failed at their latest parse.

DAG processing calls :func:`replace_import_errors` after parsing a set of files: the errors of
those files are replaced by the new ones (none when the files are fixed), and the DAGs defined
in them get their ``has_import_errors`` flag set accordingly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import Dag, DagImportError

__all__ = [
    "ImportErrorLike",
    "count_import_errors",
    "list_import_errors",
    "replace_import_errors",
]


class ImportErrorLike(Protocol):
    """What an import error needs (``tradewind.dag_processing.parser.ImportErrorInfo`` fits)."""

    @property
    def path(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def line(self) -> int | None: ...
    @property
    def traceback(self) -> str: ...
    @property
    def relative_path(self) -> str | None: ...


def replace_import_errors(
    session: Session,
    filenames: Collection[str],
    errors: Iterable[ImportErrorLike],
    *,
    now: datetime,
) -> int:
    """Replace the import errors of ``filenames`` with ``errors``; returns how many are stored.

    Errors for files outside ``filenames`` are added too (their file counts as parsed).
    """
    new = list(errors)
    files = set(filenames) | {e.path for e in new}
    file_list = sorted(files)
    session.execute(sa.delete(DagImportError).where(DagImportError.filename.in_(file_list)))
    if new:
        session.execute(
            sa.insert(DagImportError),
            [
                {
                    "filename": e.path,
                    "relative_filename": e.relative_path,
                    "line": e.line,
                    "message": e.message,
                    "stacktrace": e.traceback or None,
                    "timestamp": now,
                }
                for e in new
            ],
        )
    failing = sorted({e.path for e in new})
    session.execute(
        sa.update(Dag)
        .where(Dag.fileloc.in_(file_list))
        .values(has_import_errors=Dag.fileloc.in_(failing) if failing else False)
        .execution_options(synchronize_session="fetch")
    )
    return len(new)


def list_import_errors(
    session: Session, *, filenames: Collection[str] | None = None
) -> list[DagImportError]:
    """Stored import errors, by file name then line."""
    statement = sa.select(DagImportError).order_by(
        DagImportError.filename, DagImportError.line, DagImportError.id
    )
    if filenames is not None:
        statement = statement.where(DagImportError.filename.in_(list(filenames)))
    return list(session.scalars(statement))


def count_import_errors(session: Session) -> int:
    """How many import errors are stored."""
    return int(session.scalar(sa.select(sa.func.count()).select_from(DagImportError)) or 0)
