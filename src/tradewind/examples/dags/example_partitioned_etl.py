"""Fan-out over partitions listed in a config file: one TaskGroup per partition, then a join.

The partitions (regional order feeds) are listed in ``partitions.json`` next to this file. The
file is read when the DAG is parsed, and a loop builds one :class:`~tradewind.TaskGroup` per
entry, each ``extract >> transform >> load``; every group then feeds ``publish_manifest``::

    start >> [emea.extract >> emea.transform >> emea.load,
              americas.extract >> ...,
              apac.extract >> ...] >> publish_manifest

Adding a region is a config change: edit ``partitions.json`` and the next parse has one more
group. Keep such a config small and local (a file next to the DAG, or a Tradewind variable read
inside tasks); never call a database or an API at parse time, because every parse would pay
for it.

Tasks inside a group are named ``<group>.<task>`` (``emea.extract``), which is the id to use
with ``ti.xcom_pull(task_ids=...)``. The callables are plain functions run by
``PythonOperator``; they receive ``op_kwargs`` plus the context keys they name (``ds``, ``ti``).

Output: one JSON file per partition and a ``_manifest.json`` under
``$TRADEWIND_HOME/examples/partitioned_etl/<ds>/`` (the system temp folder when
``TRADEWIND_HOME`` is not set), resolved when the tasks run. Files are overwritten, so a
re-run of a date replaces its output.
"""

from __future__ import annotations

import json
import os
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tradewind import DAG, TaskGroup
from tradewind.operators import EmptyOperator, PythonOperator

CONFIG_PATH = Path(__file__).with_name("partitions.json")
# Read once per parse: a small local file is cheap; the DAG's shape follows its content.
PARTITIONS: list[dict[str, Any]] = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))["partitions"]


def output_dir(ds: str) -> Path:
    """Where the run for ``ds`` writes its files (created if missing)."""
    home = os.environ.get("TRADEWIND_HOME")
    if not home:
        import tempfile

        home = tempfile.gettempdir()
    path = Path(home).expanduser() / "examples" / "partitioned_etl" / ds
    path.mkdir(parents=True, exist_ok=True)
    return path


def extract_orders(
    partition: str, orders_per_day: int, ds: str | None = None
) -> list[dict[str, Any]]:
    """The partition's orders for the day ``ds`` (derived from the date: no network needed)."""
    orders = []
    for n in range(orders_per_day):
        order_id = f"{partition}-{ds}-{n:04d}"
        amount_cents = 500 + zlib.crc32(order_id.encode()) % 20_000
        orders.append({"order_id": order_id, "amount_cents": amount_cents})
    return orders


def transform_orders(
    partition: str, currency: str, to_eur: float, ti: Any = None
) -> dict[str, Any]:
    """Convert the extracted orders to euro cents and total them."""
    orders = ti.xcom_pull(task_ids=f"{partition}.extract")
    amounts = [round(order["amount_cents"] * to_eur) for order in orders]
    return {
        "partition": partition,
        "source_currency": currency,
        "orders": len(amounts),
        "revenue_eur_cents": sum(amounts),
        "largest_order_eur_cents": max(amounts, default=0),
    }


def load_partition(partition: str, ds: str | None = None, ti: Any = None) -> str:
    """Write the partition's summary to its file for the day; return the file's path."""
    summary = ti.xcom_pull(task_ids=f"{partition}.transform")
    path = output_dir(ds or "unknown") / f"{partition}.json"
    path.write_text(json.dumps(summary, sort_keys=True, indent=2), encoding="utf-8")
    return str(path)


def publish_manifest(
    partitions: list[str], ds: str | None = None, ti: Any = None
) -> dict[str, Any]:
    """Join: read every partition's file back and write the day's manifest."""
    paths = ti.xcom_pull(task_ids=[f"{name}.load" for name in partitions])
    summaries = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    manifest = {
        "ds": ds,
        "partitions": sorted(s["partition"] for s in summaries),
        "orders": sum(s["orders"] for s in summaries),
        "revenue_eur_cents": sum(s["revenue_eur_cents"] for s in summaries),
    }
    target = output_dir(ds or "unknown") / "_manifest.json"
    target.write_text(json.dumps(manifest, sort_keys=True, indent=2), encoding="utf-8")
    return manifest


with DAG(
    "example_partitioned_etl",
    description="One TaskGroup per partition listed in partitions.json, joined by a manifest",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["example", "taskgroup", "fan-out"],
    doc_md=__doc__,
) as dag:
    start = EmptyOperator(task_id="start")
    join = PythonOperator(
        task_id="publish_manifest",
        python_callable=publish_manifest,
        op_kwargs={"partitions": [p["name"] for p in PARTITIONS]},
    )

    for partition in PARTITIONS:
        name = partition["name"]
        with TaskGroup(name, tooltip=f"{name} orders ({partition['currency']})") as group:
            extract = PythonOperator(
                task_id="extract",
                python_callable=extract_orders,
                op_kwargs={"partition": name, "orders_per_day": partition["orders_per_day"]},
            )
            transform = PythonOperator(
                task_id="transform",
                python_callable=transform_orders,
                op_kwargs={
                    "partition": name,
                    "currency": partition["currency"],
                    "to_eur": partition["to_eur"],
                },
            )
            load = PythonOperator(
                task_id="load",
                python_callable=load_partition,
                op_kwargs={"partition": name},
            )
            extract >> transform >> load
        start >> group >> join
