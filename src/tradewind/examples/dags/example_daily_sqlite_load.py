"""Idempotent daily load into SQLite, keyed on the run's data interval.

Each run of this DAG owns exactly one data interval ``[data_interval_start, data_interval_end)``
(with ``schedule="@daily"``, the run for 2024-03-05 covers 2024-03-05T00:00 to 2024-03-06T00:00
UTC and starts after that day has ended). The load deletes whatever the table holds for that
interval and inserts the interval's rows again, in one transaction, so running a date twice, or
clearing and re-running it after a fix, leaves the table exactly as one clean run would.

Tasks:

* ``create_tables``: ``CREATE TABLE IF NOT EXISTS`` for the fact and summary tables.
* ``extract``: produces the interval's sales (one row per store and hour). A real pipeline would
  read an API or a file drop here; this one derives the values from the interval itself, so it
  needs no network and always gives the same rows for the same dates.
* ``load``: ``DELETE`` the interval's rows, then ``INSERT`` the extracted ones.
* ``summarize``: recomputes the interval's totals and upserts them into the summary table.

Every value goes to SQLite as a bound parameter (``?``), never formatted into the SQL text.

**Connection.** Tasks use the connection ``tradewind_examples_sqlite``, for example::

    export TRADEWIND_CONN_TRADEWIND_EXAMPLES_SQLITE='sqlite:////data/warehouse.db'

When it is not configured, the tasks fall back to the file
``$TRADEWIND_HOME/examples/tradewind_examples.db`` (or the same under the system temp folder when
``TRADEWIND_HOME`` is not set). The lookup happens when a task runs, never while the DAG file is
parsed, so parsing stays fast and does no I/O.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewind import DAG, task

if TYPE_CHECKING:
    from tradewind.hooks import SqliteHook

CONN_ID = "tradewind_examples_sqlite"
STORES = ("harbour", "market_street", "old_town")

CREATE_SALES = """
CREATE TABLE IF NOT EXISTS store_sales (
    sold_at       TEXT    NOT NULL,  -- start of the hour, UTC, 'YYYY-MM-DDTHH:MM:SSZ'
    store         TEXT    NOT NULL,
    units         INTEGER NOT NULL,
    revenue_cents INTEGER NOT NULL,
    PRIMARY KEY (sold_at, store)
)
"""

CREATE_DAILY = """
CREATE TABLE IF NOT EXISTS store_sales_daily (
    interval_start TEXT PRIMARY KEY,
    interval_end   TEXT    NOT NULL,
    row_count      INTEGER NOT NULL,
    units          INTEGER NOT NULL,
    revenue_cents  INTEGER NOT NULL
)
"""


def default_database_path() -> Path:
    """The SQLite file used when the connection is not configured (see the module docstring)."""
    home = os.environ.get("TRADEWIND_HOME")
    if not home:
        import tempfile

        home = tempfile.gettempdir()
    path = Path(home).expanduser() / "examples" / "tradewind_examples.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sqlite_hook() -> SqliteHook:
    """A hook for ``tradewind_examples_sqlite``, falling back to :func:`default_database_path`.

    Called inside tasks only: the connection is looked up when a task runs.
    """
    from tradewind import Connection
    from tradewind.errors import ConnectionNotFound
    from tradewind.hooks import SqliteHook

    class _HookWithLocalDefault(SqliteHook):
        # ``get_connection`` is the hook's single lookup point, so a default belongs here.
        @classmethod
        def get_connection(cls, conn_id: str) -> Connection:
            try:
                return super().get_connection(conn_id)
            except ConnectionNotFound:
                path = str(default_database_path())
                return Connection(conn_id=conn_id, conn_type="sqlite", host=path)

    return _HookWithLocalDefault(sqlite_conn_id=CONN_ID)


def utc_key(moment: datetime) -> str:
    """The text form stored in ``sold_at``: fixed width, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def interval_keys(start: datetime | None, end: datetime | None) -> tuple[str, str]:
    """The interval's bounds as stored in ``sold_at``; a run without an interval is an error."""
    if start is None or end is None:
        # A manual run triggered without a logical date has no data interval to load.
        raise ValueError("this DAG loads one data interval per run: trigger it with a logical date")
    return utc_key(start), utc_key(end)


def _hours(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += timedelta(hours=1)


def generate_sales(start: datetime, end: datetime) -> list[tuple[str, str, int, int]]:
    """Sales rows ``(sold_at, store, units, revenue_cents)`` for every hour of ``[start, end)``.

    A pure function of its arguments (a checksum stands in for the source system), which is
    what makes re-running a date reproduce it exactly.
    """
    rows = []
    for hour in _hours(start, end):
        sold_at = utc_key(hour)
        for store in STORES:
            seed = zlib.crc32(f"{store}|{sold_at}".encode())
            units = seed % 17
            unit_price_cents = 250 + (seed >> 8) % 900
            rows.append((sold_at, store, units, units * unit_price_cents))
    return rows


@task
def create_tables() -> None:
    """Create the tables on first use; a no-op afterwards."""
    sqlite_hook().run([CREATE_SALES, CREATE_DAILY])


@task
def extract(data_interval_start: Any = None, data_interval_end: Any = None) -> list[list[Any]]:
    """The interval's sales rows (the interval comes from the run's context)."""
    # Rows travel through XCom here because a day is small (72 rows); a large extract would
    # be staged to a file and only its path passed on.
    interval_keys(data_interval_start, data_interval_end)
    return [list(row) for row in generate_sales(data_interval_start, data_interval_end)]


@task
def load(
    rows: list[list[Any]], data_interval_start: Any = None, data_interval_end: Any = None
) -> int:
    """Replace the interval's rows: DELETE then INSERT, committed together."""
    from contextlib import closing

    start, end = interval_keys(data_interval_start, data_interval_end)
    # One connection and one transaction: a failure between the two statements rolls the
    # delete back, so readers never see the interval half-loaded.
    with closing(sqlite_hook().get_conn()) as conn, conn:
        deleted = conn.execute(
            "DELETE FROM store_sales WHERE sold_at >= ? AND sold_at < ?", (start, end)
        ).rowcount
        conn.executemany(
            "INSERT INTO store_sales (sold_at, store, units, revenue_cents) VALUES (?, ?, ?, ?)",
            [tuple(row) for row in rows],
        )
    print(f"interval [{start}, {end}): replaced {deleted} row(s) with {len(rows)}")
    return len(rows)


@task
def summarize(data_interval_start: Any = None, data_interval_end: Any = None) -> dict[str, int]:
    """Recompute the interval's totals from the table and upsert them into the summary."""
    start, end = interval_keys(data_interval_start, data_interval_end)
    hook = sqlite_hook()
    row_count, units, revenue = hook.get_first(
        "SELECT count(*), coalesce(sum(units), 0), coalesce(sum(revenue_cents), 0) "
        "FROM store_sales WHERE sold_at >= ? AND sold_at < ?",
        parameters=(start, end),
    )
    hook.insert_rows(
        "store_sales_daily",
        [(start, end, row_count, units, revenue)],
        target_fields=["interval_start", "interval_end", "row_count", "units", "revenue_cents"],
        replace=True,  # keyed on interval_start, so a re-run overwrites its own summary row
    )
    return {"row_count": row_count, "units": units, "revenue_cents": revenue}


with DAG(
    "example_daily_sqlite_load",
    description="Idempotent daily load of store sales into SQLite, keyed on the data interval",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["example", "sqlite", "idempotent"],
    doc_md=__doc__,
) as dag:
    tables = create_tables()
    loaded = load(extract())
    tables >> loaded
    loaded >> summarize()
