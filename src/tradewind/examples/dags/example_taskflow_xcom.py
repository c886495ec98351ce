"""TaskFlow: extract -> transform -> load passing values through XCom, plus a templated Bash task.

With ``@task``, calling a task function inside the ``@dag`` function returns a reference to its
future result. Passing that reference to another task does two things: it adds the dependency,
and at run time the real value is read from XCom and handed over as a normal argument.

* ``extract`` returns a list of orders; its size comes from the ``sample_size`` param.
* ``transform`` uses ``multiple_outputs=True``: each key of the returned dict is also pushed as
  its own XCom, so ``summary["order_count"]`` references just that value.
* ``load`` receives two of those values as plain arguments.
* ``report`` is a classic ``BashOperator`` whose command is a Jinja template: ``{{ ds }}`` is
  the run's logical date, ``{{ ti.xcom_pull(task_ids='transform', key='revenue') }}`` reads an
  XCom pushed by ``transform``, and ``{{ params.currency }}`` a param. Its last line of output
  becomes its own XCom.

Params are validated with their JSON schema before any task runs: triggering with
``{"sample_size": 0}`` fails at once, naming the param, because of ``minimum=1``. The defaults
apply to scheduled runs; a manual trigger may override them through the run's conf.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tradewind import Param, dag, task
from tradewind.operators import BashOperator

UNIT_PRICES = (12.5, 7.0, 30.25, 4.75)

REPORT_COMMAND = (
    'echo "{{ ds }}: '
    "{{ ti.xcom_pull(task_ids='transform', key='order_count') }} orders, "
    "revenue {{ ti.xcom_pull(task_ids='transform', key='revenue') }} {{ params.currency }}\""
)


@task
def extract(params: Any = None, ds: str | None = None) -> list[dict[str, Any]]:
    """The day's orders (derived from the date, so no network is needed)."""
    orders = []
    for n in range(params["sample_size"]):
        orders.append(
            {
                "order_id": f"{ds}-{n:03d}",
                "quantity": 1 + n % 3,
                "unit_price": UNIT_PRICES[n % len(UNIT_PRICES)],
            }
        )
    return orders


@task(multiple_outputs=True)
def transform(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of the orders; each key is pushed as its own XCom too."""
    revenue = sum(o["quantity"] * o["unit_price"] for o in orders)
    return {
        "order_count": len(orders),
        "revenue": round(revenue, 2),
        "average_order": round(revenue / len(orders), 2) if orders else 0.0,
    }


@task
def load(order_count: int, revenue: float, params: Any = None) -> str:
    """Receives two of transform's outputs as ordinary arguments."""
    line = f"{order_count} orders worth {revenue:.2f} {params['currency']}"
    print(f"loading: {line}")
    return line


@dag(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "sample_size": Param(
            10, type="integer", minimum=1, maximum=1000, description="How many orders to extract"
        ),
        "currency": Param("EUR", type="string", enum=["EUR", "USD", "GBP"]),
    },
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["example", "taskflow", "xcom"],
    doc_md=__doc__,
)
def example_taskflow_xcom() -> None:
    """Extract, transform and load orders through XCom, then report with a templated command."""
    summary = transform(extract())
    stored = load(summary["order_count"], summary["revenue"])
    report = BashOperator(task_id="report", bash_command=REPORT_COMMAND)
    stored >> report


example_taskflow_xcom()
