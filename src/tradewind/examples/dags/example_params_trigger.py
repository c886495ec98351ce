"""A report that people trigger by hand, with a form built from its params.

``schedule=None`` means the DAG never runs on its own: a run starts when someone triggers it
from the UI, the CLI (``tradewind dags trigger example_params_trigger --conf '{...}'``) or the
REST API. Each ``Param`` carries a JSON schema, which the UI turns into a form field (a
drop-down for ``enum``, a number box with bounds for ``minimum``/``maximum``, a checkbox for a
boolean) and which is checked before any task runs, so a bad value is refused with the param's
name instead of failing a task half-way.

Values given in the trigger's conf override the defaults; tasks read the result as
``params["region"]`` in Python and ``{{ params.region }}`` in templates.

``dry_run`` defaults to true, so trying the DAG never "sends" anything: ``should_send`` (a
``@task.short_circuit``) skips ``send_report`` unless the run sets ``dry_run`` to false.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from tradewind import Param, dag, task
from tradewind.operators import BashOperator

PRODUCTS = ("anchor", "buoy", "compass", "deck-shoes", "lantern", "oilskin", "rope", "sextant")


@task
def build_report(params: Any = None, ds: str | None = None) -> dict[str, Any]:
    """The region's best sellers for the chosen day (figures derived from the inputs)."""
    day = params["report_date"] or ds or datetime.now().date().isoformat()
    sales = {
        product: zlib.crc32(f"{params['region']}|{day}|{product}".encode()) % 500
        for product in PRODUCTS
    }
    ranked = sorted(sales.items(), key=lambda item: (-item[1], item[0]))
    return {
        "region": params["region"],
        "day": day,
        "top": [name for name, _ in ranked[: params["top_n"]]],
    }


@task.short_circuit
def should_send(params: Any = None) -> bool:
    """Continue to delivery only when this is not a dry run."""
    return not params["dry_run"]


@task
def send_report(report: dict[str, Any], params: Any = None) -> str:
    """Deliver the report (a stand-in: a real DAG would call an e-mail or chat hook)."""
    recipients = ", ".join(params["recipients"])
    return f"sent {report['region']} top {len(report['top'])} for {report['day']} to {recipients}"


@dag(
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={
        "region": Param(
            "emea",
            type="string",
            enum=["emea", "americas", "apac"],
            description="Sales region to report on",
        ),
        "report_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to report on (YYYY-MM-DD); empty means the run's logical date",
        ),
        "top_n": Param(3, type="integer", minimum=1, maximum=len(PRODUCTS)),
        "dry_run": Param(True, type="boolean", description="Build the report but do not send it"),
        "recipients": Param(
            ["sales-leads@example.com"],
            type="array",
            items={"type": "string", "format": "email"},
            minItems=1,
        ),
    },
    tags=["example", "params", "manual"],
    doc_md=__doc__,
)
def example_params_trigger() -> None:
    """Build a regional best-seller report on demand; send it unless ``dry_run``."""
    report = build_report()
    announce = BashOperator(
        task_id="announce",
        bash_command='echo "report for {{ params.region }}, top {{ params.top_n }}"',
    )
    gate = should_send()
    report >> [announce, gate]
    gate >> send_report(report)


example_params_trigger()
