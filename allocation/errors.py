"""The engine's one error class and the message templates it raises with.

Every message that a user can see is a module-level template here, so tests assert on the same
text the engine prints. Row numbers follow the CSV file: the header is row 1 and the first data
row is row 2. Records handed to the Python API are numbered from 1 unless the caller says
otherwise (``first_row``).
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "E_BAD_AGGREGATE_KEY",
    "E_BAD_LABELS",
    "E_BAD_STEP",
    "E_BAD_TIMESTAMP",
    "E_DUPLICATE_AGGREGATE_KEY",
    "E_DUPLICATE_NODE_HOUR",
    "E_EMPTY_CELL",
    "E_TOO_LARGE",
    "E_HOURS_RANGE",
    "E_LENGTH_MISMATCH",
    "E_DUPLICATE_COLUMN",
    "E_MISSING_COLUMN",
    "E_NEGATIVE",
    "E_NOT_A_NUMBER",
    "E_NOT_FINITE",
    "E_NOT_ON_THE_HOUR",
    "E_NO_NODE_HOUR",
    "E_POLICY_BAD_JSON",
    "E_POLICY_BAD_VALUE",
    "E_POLICY_NOT_OBJECT",
    "E_POLICY_UNKNOWN_KEY",
    "E_READ_FAILED",
    "E_ROUNDING_NOT_FINITE",
    "E_ZERO_WEIGHTED_CAPACITY",
]


class AllocationError(ValueError):
    """Bad input or a bad policy: the engine stopped and produced nothing.

    The message names the file (or ``<records>``), the row and the column at fault.
    """


# -- input cells (file, row, column) -------------------------------------------------------------
E_MISSING_COLUMN = "{source}: row {row}, column {column}: required column is missing"
E_DUPLICATE_COLUMN = "{source}: row {row}, column {column}: column appears more than once"
E_EMPTY_CELL = "{source}: row {row}, column {column}: required value is empty"
E_NOT_A_NUMBER = "{source}: row {row}, column {column}: {value!r} is not a number"
E_NOT_FINITE = "{source}: row {row}, column {column}: value must be finite, got {value}"
E_TOO_LARGE = (
    "{source}: row {row}, column {column}: {value} is too large (at most 1e15; sums of such "
    "values would overflow)"
)
E_NEGATIVE = "{source}: row {row}, column {column}: must not be negative, got {value}"
E_HOURS_RANGE = "{source}: row {row}, column {column}: hours must be in (0, 1], got {value}"
E_BAD_TIMESTAMP = (
    "{source}: row {row}, column {column}: {value!r} is not an ISO 8601 timestamp "
    "(e.g. 2024-09-01T00:00:00Z)"
)
E_NOT_ON_THE_HOUR = (
    "{source}: row {row}, column {column}: {value} is not the start of a UTC clock hour"
)
E_BAD_LABELS = "{source}: row {row}, column {column}: labels must be a JSON object, got {value!r}"
E_NO_NODE_HOUR = (
    "{source}: row {row}, column {column}: pod-hour has no node-hour "
    "(cluster {cluster!r}, node {node!r}, hour_start {hour})"
)
E_DUPLICATE_NODE_HOUR = (
    "{source}: row {row}, column {column}: duplicate node-hour "
    "(cluster {cluster!r}, node {node!r}, hour_start {hour})"
)
E_ZERO_WEIGHTED_CAPACITY = (
    "{source}: row {row}, column {column}: node-hour costs {value} but its weighted capacity "
    "is 0, so its cost cannot be split into CPU, RAM and GPU"
)
E_LENGTH_MISMATCH = (
    "{source}: row {row}, column {column}: column has {value} values, expected {expected}"
)
E_READ_FAILED = "{source}: cannot read file: {value}"

# -- policy (file, key) ----------------------------------------------------------------------------
E_POLICY_BAD_JSON = "{source}: not valid JSON: {value}"
E_POLICY_NOT_OBJECT = "{source}: key {key!r}: expected a JSON object, got {value!r}"
E_POLICY_UNKNOWN_KEY = "{source}: unknown key {key!r} (allowed: {allowed})"
E_POLICY_BAD_VALUE = "{source}: key {key!r}: {value!r} is not valid ({allowed})"

# -- call arguments --------------------------------------------------------------------------------
E_BAD_AGGREGATE_KEY = (
    "aggregate key {key!r} is not one of cluster, node, node_pool, capacity_type, namespace, "
    "controller_kind, controller, pod, team, label:<key>"
)
E_DUPLICATE_AGGREGATE_KEY = "aggregate key {key!r} is given twice"
E_BAD_STEP = "step {step!r} is not one of hour, day, month, window"
E_ROUNDING_NOT_FINITE = "amount {index} is not a finite number: {value!r}"
