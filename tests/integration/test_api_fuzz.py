"""A fuzz run of the published schema (schemathesis): whatever the requests, no 500s.

Bounded: a few generated requests per operation (derandomized, so a failure reproduces), which
keeps the whole run well under a minute.
"""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis
from api_support import basic, make_env
from hypothesis import HealthCheck, given, settings

# TRADEWIND_FUZZ_EXAMPLES raises it for a longer hunt by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("TRADEWIND_FUZZ_EXAMPLES", "8"))


def test_no_request_makes_the_server_fail(api_template: Path, tmp_path: Path) -> None:
    # given the app on a database with DAGs, runs and users, and its published schema
    env = make_env(api_template, tmp_path)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", env.app)
    headers = basic("admin")
    failures: list[str] = []
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            # when any request the schema allows is sent (as the admin)
            nonlocal calls
            calls += 1
            response = case.call(headers=headers)
            # expect no server error
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                    f"{response.status_code} {response.text[:200]}"
                )

        call()
    assert failures == []
    assert calls >= len(operations)
