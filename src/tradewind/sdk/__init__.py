"""The authoring SDK: everything a DAG file uses to define pipelines.

Names are loaded on first use (PEP 562), so ``import tradewind.sdk`` costs almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DAG": "tradewind.sdk.dag_definition",
    "dag": "tradewind.sdk.dag_definition",
    "task": "tradewind.sdk.decorators",
    "task_group": "tradewind.sdk.decorators",
    "setup": "tradewind.sdk.decorators",
    "teardown": "tradewind.sdk.decorators",
    "TaskGroup": "tradewind.sdk.taskgroup",
    "BaseOperator": "tradewind.sdk.baseoperator",
    "XComArg": "tradewind.sdk.xcom_arg",
    "Param": "tradewind.sdk.params",
    "ParamsDict": "tradewind.sdk.params",
    "Asset": "tradewind.sdk.assets",
    "AssetAlias": "tradewind.sdk.assets",
    "chain": "tradewind.sdk.edges",
    "chain_linear": "tradewind.sdk.edges",
    "cross_downstream": "tradewind.sdk.edges",
    "Label": "tradewind.sdk.edges",
    "TriggerRule": "tradewind.sdk.trigger_rule",
    "WeightRule": "tradewind.sdk.trigger_rule",
    "Context": "tradewind.sdk.context",
    "get_current_context": "tradewind.sdk.context",
    "Connection": "tradewind.sdk.connection",
    "Variable": "tradewind.sdk.variable",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from tradewind.sdk.assets import Asset, AssetAlias
    from tradewind.sdk.baseoperator import BaseOperator
    from tradewind.sdk.connection import Connection
    from tradewind.sdk.context import Context, get_current_context
    from tradewind.sdk.dag_definition import DAG, dag
    from tradewind.sdk.decorators import setup, task, task_group, teardown
    from tradewind.sdk.edges import Label, chain, chain_linear, cross_downstream
    from tradewind.sdk.params import Param, ParamsDict
    from tradewind.sdk.taskgroup import TaskGroup
    from tradewind.sdk.trigger_rule import TriggerRule, WeightRule
    from tradewind.sdk.variable import Variable
    from tradewind.sdk.xcom_arg import XComArg
