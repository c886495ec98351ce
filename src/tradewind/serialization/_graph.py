"""Graph arithmetic shared by the writer and the read-only views: topological order and the
effective priority weights.

Both work on plain mappings (task id -> ids), so they serve a live DAG and a deserialized one
alike, and both are linear-ish: a 10,000-task chain is ordered and weighed in milliseconds.

Priority totals follow the weight rules: ``downstream`` adds the weights of *all distinct*
descendants, ``upstream`` of all distinct ancestors, ``absolute`` only the task's own. Summing
over distinct relatives (not over paths) needs set unions; they are done on Python integers used
as bit sets (one bit per task, in topological position), so a union is a single ``|`` on
machine words and no per-task Python set is built. Weighted sums come from population counts:
with ``w_i = m + sum_b 2^b * bit_b(w_i - m)`` (``m`` the smallest weight), the sum over a set
``S`` is ``m * |S| + sum_b 2^b * |S & mask_b|``, which needs one mask per binary digit of the
spread of weights — none at all when every weight is equal, as is typical.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tradewind.sdk.validation import order_task_ids

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


class CycleError(ValueError):
    """The graph has a cycle; ``task_ids`` are the tasks left unordered."""

    def __init__(self, task_ids: list[str]) -> None:
        self.task_ids = task_ids
        super().__init__(f"the tasks {', '.join(sorted(task_ids)[:10])} form a cycle")


def topological_order(
    task_ids: Sequence[str],
    upstream: Mapping[str, Iterable[str]],
    downstream: Mapping[str, Iterable[str]],
) -> list[str]:
    """Ids so that each follows its upstream ids; ties keep the order of ``task_ids``.

    Raises:
        CycleError: some tasks depend on each other in a circle.
    """
    order, left_over = order_task_ids(task_ids, upstream, downstream)
    if left_over:
        raise CycleError(left_over)
    return order


def clamp_int32(value: int) -> int:
    """``value`` limited to the 32-bit signed range (what the database column holds)."""
    return max(INT32_MIN, min(INT32_MAX, value))


def _bit_masks(order: Sequence[str], weights: Mapping[str, int]) -> tuple[int, list[int]]:
    """The smallest weight ``m`` and one bit set per binary digit of ``weight - m``."""
    low = min(weights[tid] for tid in order)
    spreads = [weights[tid] - low for tid in order]
    masks = []
    for bit in range(max(spreads).bit_length()):
        # Built from text in one go: OR-ing bits in one by one would be quadratic.
        digits = "".join("1" if (s >> bit) & 1 else "0" for s in reversed(spreads))
        masks.append(int(digits, 2))
    return low, masks


def _weighted(members: int, low: int, masks: list[int]) -> int:
    total = low * members.bit_count()
    for bit, mask in enumerate(masks):
        total += (members & mask).bit_count() << bit
    return total


def priority_weight_totals(
    order: Sequence[str],
    weights: Mapping[str, int],
    rules: Mapping[str, str],
    upstream: Mapping[str, Iterable[str]],
    downstream: Mapping[str, Iterable[str]],
) -> dict[str, int]:
    """Effective priority per task id, clamped to int32 (see the module docstring).

    ``order`` must be a topological order of every task; ``rules`` holds weight-rule values
    (``"downstream"``, ``"upstream"``, ``"absolute"``).
    """
    totals = {tid: weights[tid] for tid in order}
    if not order:
        return totals
    wanted = set(rules.values())
    needs_down = "downstream" in wanted
    needs_up = "upstream" in wanted
    if needs_down or needs_up:
        index = {tid: i for i, tid in enumerate(order)}
        low, masks = _bit_masks(order, weights)
        if needs_down:
            below: dict[str, int] = {}
            for tid in reversed(order):
                members = 0
                for child in downstream[tid]:
                    if child in index:
                        members |= below[child] | (1 << index[child])
                below[tid] = members
                if rules[tid] == "downstream":
                    totals[tid] += _weighted(members, low, masks)
        if needs_up:
            above: dict[str, int] = {}
            for tid in order:
                members = 0
                for parent in upstream[tid]:
                    if parent in index:
                        members |= above[parent] | (1 << index[parent])
                above[tid] = members
                if rules[tid] == "upstream":
                    totals[tid] += _weighted(members, low, masks)
    return {tid: clamp_int32(total) for tid, total in totals.items()}
