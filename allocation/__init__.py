"""costapp's allocation engine: Kubernetes node cost → pods, idle and shared cost.

Pure and vectorised: numpy and the standard library only, no Django. The cost model is
ALLOCATION_SPEC.md; ``python -m allocation allocate ...`` is its command line.

Typical use::

    from allocation import NodeHours, PodHours, Policy, allocate
    result = allocate(NodeHours.from_records(nodes), PodHours.from_records(pods),
                      Policy(idle="share-by-cluster"), aggregate=("namespace",), step="day")
    for line in result.to_records(): ...
"""

from __future__ import annotations

from allocation.engine import allocate, allocate_parts, result_from_parts
from allocation.errors import AllocationError
from allocation.records import (
    AllocationLine,
    Categorical,
    IdleColumns,
    IdleParts,
    NodeHour,
    NodeHours,
    Overhead,
    Parts,
    PodHour,
    PodHours,
    Policy,
    Result,
    Weights,
    WorkloadParts,
)
from allocation.rounding import round_largest_remainder
from allocation.share import SharedSpread, spread_shared
from allocation.split import node_prices, split_node_cost

__all__ = [
    "AllocationError",
    "AllocationLine",
    "Categorical",
    "IdleColumns",
    "IdleParts",
    "NodeHour",
    "NodeHours",
    "Overhead",
    "Parts",
    "PodHour",
    "PodHours",
    "Policy",
    "Result",
    "SharedSpread",
    "Weights",
    "WorkloadParts",
    "allocate",
    "allocate_parts",
    "node_prices",
    "result_from_parts",
    "round_largest_remainder",
    "split_node_cost",
    "spread_shared",
]
