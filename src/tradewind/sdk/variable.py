"""``Variable``: read key/value settings that DAGs share, Airflow-style.

Values come from :mod:`tradewind.sdk.secrets` (environment ``TRADEWIND_VAR_<KEY>``, then
``AIRFLOW_VAR_<KEY>``, then registered backends such as the metadata database). Task code
only reads variables; they are written with the engine's CLI (``tradewind variables set``) or
its REST API, so the audit log sees every change.
"""

from __future__ import annotations

import json
from typing import Any

from tradewind.errors import TradewindError, VariableNotFound
from tradewind.sdk import secrets
from tradewind.sdk.params import NOTSET

__all__ = ["NOTSET", "Variable"]


_READ_ONLY = (
    "variables are read-only in task and DAG code; write them with the engine's CLI "
    "(`tradewind variables set KEY VALUE`) or its REST API"
)


class Variable:
    """Access to variables by key; there are no instances, only class methods.

    Example::

        bucket = Variable.get("landing_bucket", default="s3://tmp")
        limits = Variable.get("limits", deserialize_json=True)  # a dict from JSON
    """

    @classmethod
    def get(cls, key: str, default: Any = NOTSET, deserialize_json: bool = False) -> Any:
        """The variable's value, parsed from JSON when ``deserialize_json`` is true.

        Returns ``default`` (as given, never parsed) when the variable does not exist; raises
        :class:`VariableNotFound` (a ``KeyError``) when it does not and no default was given.
        Raises :class:`TradewindError` when ``deserialize_json`` is set and the value is not
        valid JSON.
        """
        try:
            value = secrets.get_variable(key)
        except VariableNotFound:
            if default is NOTSET:
                raise
            return default
        if not deserialize_json:
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise TradewindError(f"variable {key!r} is not valid JSON ({exc})") from None

    @classmethod
    def set(cls, key: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Not available to DAG code: raises :class:`TradewindError` saying where to write."""
        raise TradewindError(f"cannot set variable {key!r}: {_READ_ONLY}")

    @classmethod
    def update(cls, key: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Not available to DAG code: raises :class:`TradewindError` saying where to write."""
        raise TradewindError(f"cannot update variable {key!r}: {_READ_ONLY}")

    @classmethod
    def delete(cls, key: str, *args: Any, **kwargs: Any) -> None:
        """Not available to DAG code: raises :class:`TradewindError` saying where to write."""
        raise TradewindError(f"cannot delete variable {key!r}: {_READ_ONLY}")
