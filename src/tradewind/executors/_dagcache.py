"""Imported DAGs kept between tries, so a try does not import its DAG file again.

An entry is keyed by ``(fileloc, dag_id)`` and stamped with the DAG version the scheduler
pinned and the file's modification time and size; a try whose stamp differs imports the file
afresh (a changed file or a new version invalidates the entry).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from tradewind.dag_processing.parser import import_time_limit

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

__all__ = ["DagCache", "dag_root"]

Stamp = tuple[int, int, int]


def dag_root(fileloc: str, dags_folder: Path | None) -> str:
    """The folder put on ``sys.path`` for ``fileloc``: the DAGs folder holding it, else its own."""
    if dags_folder is not None:
        folder = os.path.abspath(dags_folder)
        if os.path.abspath(fileloc).startswith(folder + os.sep):
            return folder
    return os.path.dirname(os.path.abspath(fileloc))


class DagCache:
    """A bounded, least-recently-used cache of live DAGs loaded from their files."""

    def __init__(
        self,
        *,
        dags_folder: Path | None = None,
        max_entries: int = 64,
        import_timeout: float | None = None,
    ) -> None:
        self.dags_folder = dags_folder
        self.max_entries = max_entries
        self.import_timeout = import_timeout
        self._entries: OrderedDict[tuple[str, str], tuple[Stamp, DAG]] = OrderedDict()
        #: Bumped whenever an entry is added or dropped (a process forked at an older
        #: generation may lack an entry this one has).
        self.generation = 0

    @staticmethod
    def stamp(fileloc: str, dag_version_id: int) -> Stamp | None:
        """The stamp of the file as it is now (None when it cannot be read)."""
        try:
            st = os.stat(fileloc)
        except OSError:
            return None
        return (dag_version_id, st.st_mtime_ns, st.st_size)

    def cached(self, fileloc: str, dag_id: str, dag_version_id: int) -> DAG | None:
        """The cached DAG when its stamp still matches, else None (no import)."""
        stamp = self.stamp(fileloc, dag_version_id)
        entry = self._entries.get((fileloc, dag_id))
        if entry is None or stamp is None or entry[0] != stamp:
            return None
        self._entries.move_to_end((fileloc, dag_id))
        return entry[1]

    def load(self, fileloc: str, dag_id: str, dag_version_id: int) -> DAG:
        """The DAG from the cache, or imported now (and cached). Raises like
        :func:`~tradewind.dag_processing.parser.load_dag_from_file`."""
        from tradewind.dag_processing.parser import load_dag_from_file

        found = self.cached(fileloc, dag_id, dag_version_id)
        if found is not None:
            return found
        stamp = self.stamp(fileloc, dag_version_id)
        self._forget(fileloc, dag_id)
        dag = load_dag_from_file(fileloc, dag_id, root=dag_root(fileloc, self.dags_folder))
        if stamp is not None:
            self._entries[(fileloc, dag_id)] = (stamp, dag)
            self.generation += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return dag

    def _forget(self, fileloc: str, dag_id: str) -> None:
        if self._entries.pop((fileloc, dag_id), None) is not None:
            self.generation += 1

    def preload(self, fileloc: str, dag_id: str, dag_version_id: int) -> DAG | None:
        """Like :meth:`load` but never raises (under ``import_timeout``): None on any failure.

        Used by a warm worker before it forks the task process; the task process then
        reports the failure properly when it imports the file itself.
        """
        try:
            # Whatever the file prints goes to stderr, never into this process's stdout.
            with import_time_limit(self.import_timeout), contextlib.redirect_stdout(sys.stderr):
                return self.load(fileloc, dag_id, dag_version_id)
        except KeyboardInterrupt:
            raise
        except BaseException:
            self._forget(fileloc, dag_id)
            return None
