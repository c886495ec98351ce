"""Dynamic task mapping: one task per file found at run time, then a reduce.

How many files arrive each day is only known when the run happens, so the DAG cannot list one
task per file when it is parsed. Mapping solves that: ``stage_files`` returns a list of paths,
and each mapped task below becomes one task instance per path (``map_index`` 0, 1, 2 …) when
that list is known.

* ``count_paid.partial(status="paid").expand(path=files)``: ``partial`` fixes the arguments
  shared by every instance, ``expand`` names the one that varies. ``sum_counts`` receives the
  instances' results as one list (in map-index order) and adds them up: the reduce step.
* ``archive_file.expand_kwargs(files.map(archive_kwargs))``: one instance per dict of
  arguments. ``.map`` reshapes each upstream item (here a path into
  ``{"path": ..., "archive_name": ...}``) lazily, when the mapped task runs.
* ``validate_file.expand(path=files)``: a mapped ``@task_group``. Every task inside the group
  is mapped with the same index, so ``check_header`` for file 2 reads the header that
  ``read_header`` produced for file 2.

A zero-length list skips the mapped task instead of failing it, so a day with no files ends
with skipped tasks rather than errors.

This example writes to ``$TRADEWIND_HOME/examples/landing/<ds>/`` and
``$TRADEWIND_HOME/examples/archive/<ds>/`` (the system temp folder when ``TRADEWIND_HOME`` is
not set); the files of a date are rewritten on every run of that date.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tradewind import dag, task, task_group

#: Files a day brings, by region, and how many order lines each holds.
DAILY_FILES = {"north": 120, "south": 80, "west": 45}
HEADER = ["order_id", "region", "amount_cents", "status"]


def data_dir(*parts: str) -> Path:
    """A folder under ``$TRADEWIND_HOME/examples`` (created if missing)."""
    home = os.environ.get("TRADEWIND_HOME")
    if not home:
        import tempfile

        home = tempfile.gettempdir()
    path = Path(home).expanduser().joinpath("examples", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def archive_kwargs(path: str) -> dict[str, str]:
    """The arguments of one ``archive_file`` instance, from one staged file's path."""
    return {"path": path, "archive_name": f"{Path(path).stem}.csv.gz"}


@task
def stage_files(ds: str | None = None) -> list[str]:
    """Land the day's files (a stand-in for a download) and return their paths."""
    import csv

    landing = data_dir("landing", ds or "unknown")
    paths = []
    for region, lines in DAILY_FILES.items():
        path = landing / f"orders_{region}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for n in range(lines):
                status = "refunded" if n % 4 == 0 else "paid"
                writer.writerow([f"{region}-{ds}-{n:04d}", region, 100 + 37 * n, status])
        paths.append(str(path))
    return paths


@task
def count_paid(path: str, status: str) -> int:
    """Count the lines of one file with the given status (one mapped instance per file)."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for row in csv.DictReader(handle) if row["status"] == status)


@task
def sum_counts(counts: list[int]) -> int:
    """Reduce: the mapped results arrive as one list."""
    return sum(counts)


@task
def archive_file(path: str, archive_name: str, ds: str | None = None) -> str:
    """Compress one file into the day's archive folder (one instance per dict of kwargs)."""
    import gzip
    import shutil

    target = data_dir("archive", ds or "unknown") / archive_name
    with open(path, "rb") as source, gzip.open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return str(target)


@task
def read_header(path: str) -> list[str]:
    """The first line of one file."""
    with open(path, encoding="utf-8") as handle:
        return handle.readline().strip().split(",")


@task
def check_header(path: str, header: list[str]) -> dict[str, Any]:
    """Whether the file's header is the expected one."""
    return {"file": Path(path).name, "ok": header == HEADER}


@task_group
def validate_file(path: str) -> Any:
    """Read and check one file's header; the whole group is mapped over the files."""
    return check_header(path, read_header(path))


@task
def publish_report(
    paid_orders: int, checks: list[dict[str, Any]], archived: list[str]
) -> dict[str, Any]:
    """Join the three mapped branches into one report."""
    bad = sorted(c["file"] for c in checks if not c["ok"])
    if bad:
        raise ValueError(f"unexpected header in: {', '.join(bad)}")
    return {"paid_orders": paid_orders, "files_checked": len(checks), "archived": len(archived)}


@dag(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["example", "mapping"],
    doc_md=__doc__,
)
def example_dynamic_mapping() -> None:
    """Map over the files a day brings: count, archive and validate each, then reduce.

    See the module docstring of ``example_dynamic_mapping.py`` for a walk-through.
    """
    files = stage_files()
    total = sum_counts(count_paid.partial(status="paid").expand(path=files))
    archived = archive_file.expand_kwargs(files.map(archive_kwargs))
    checks = validate_file.expand(path=files)
    publish_report(total, checks, archived)


example_dynamic_mapping()
