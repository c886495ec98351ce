"""Trigger rules and priority weight rules, with the same names and values as Airflow."""

from __future__ import annotations

from enum import StrEnum


class TriggerRule(StrEnum):
    """When a task may run, judged from the finished states of its direct upstream tasks."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALL_SKIPPED = "all_skipped"
    ALWAYS = "always"

    @classmethod
    def is_valid(cls, value: object) -> bool:
        """Whether ``value`` names a trigger rule."""
        return value in cls._value2member_map_

    @classmethod
    def all_triggers(cls) -> set[str]:
        """Every trigger rule value."""
        return {m.value for m in cls}


class WeightRule(StrEnum):
    """How a task's effective priority is computed from ``priority_weight``.

    ``downstream`` (the default) adds the weights of every descendant, so long chains start
    early; ``upstream`` adds every ancestor's; ``absolute`` uses the task's own weight.
    """

    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"
    ABSOLUTE = "absolute"

    @classmethod
    def is_valid(cls, value: object) -> bool:
        """Whether ``value`` names a weight rule."""
        return value in cls._value2member_map_
