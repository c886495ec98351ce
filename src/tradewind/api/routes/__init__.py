"""The API's routes, one module per resource; :data:`ROUTERS` in the order they are mounted
(more specific paths before ones with a catch-all parameter in the same place)."""

from __future__ import annotations

from fastapi import APIRouter

from tradewind.api.routes import (
    connections,
    dag_runs,
    dags,
    monitoring,
    pools,
    task_data,
    task_instances,
    users,
    variables,
)

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [
    monitoring.router,
    dags.router,
    dag_runs.router,
    task_data.router,
    task_instances.router,
    variables.router,
    connections.router,
    pools.router,
    users.router,
]
