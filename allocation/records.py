"""Frozen records: what goes into the engine and what comes out.

Units (ALLOCATION_SPEC.md): time in hours, CPU in cores, memory in GiB (2^30 bytes), GPUs in
devices, money in the cluster's billing currency, timestamps in UTC.

Two shapes of the same inputs:

* ``NodeHour`` / ``PodHour`` — one frozen object per row, convenient for small inputs and tests;
* ``NodeHours`` / ``PodHours`` — columnar tables of numpy arrays, what the engine computes on.
  ``from_records`` turns the first into the second.

String columns are held as ``Categorical`` (integer codes into a table of distinct values) so the
engine groups by integers, never by Python strings per row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from allocation.errors import (
    E_BAD_LABELS,
    E_BAD_TIMESTAMP,
    E_EMPTY_CELL,
    E_HOURS_RANGE,
    E_LENGTH_MISMATCH,
    E_NEGATIVE,
    E_NOT_FINITE,
    E_NOT_ON_THE_HOUR,
    E_POLICY_BAD_VALUE,
    E_POLICY_NOT_OBJECT,
    E_POLICY_UNKNOWN_KEY,
    E_TOO_LARGE,
    AllocationError,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

HOUR = 3600
"""Seconds in an hour; timestamps inside the engine are int64 epoch seconds (UTC)."""

Timestamp = datetime | int | np.datetime64
"""An hour start: an aware or naive-UTC ``datetime``, epoch seconds, or ``numpy.datetime64``."""

Basis = Literal["max", "request", "usage"]
IdlePolicy = Literal["separate", "share-by-node", "share-by-cluster"]
SharedSplit = Literal["weighted", "even"]

BASES: tuple[str, ...] = ("max", "request", "usage")
IDLE_POLICIES: tuple[str, ...] = ("separate", "share-by-node", "share-by-cluster")
SHARED_SPLITS: tuple[str, ...] = ("weighted", "even")
WEIGHT_PRESETS: tuple[str, ...] = ("opencost", "aws-split")


# ---------------------------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------------------------


def to_epoch_seconds(value: Timestamp) -> int:
    """Return ``value`` as integer epoch seconds, UTC (naive datetimes are taken as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[s]").astype(np.int64))
    return int(value)


def epoch_array(values: Any) -> IntArray:
    """Return a column of hour starts as int64 epoch seconds (accepts datetime64 or integers)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype.kind == "O":
        return np.fromiter((to_epoch_seconds(v) for v in arr), dtype=np.int64, count=arr.size)
    return arr.astype(np.int64)


def parse_timestamp(text: str) -> int:
    """Parse ISO 8601 (``2024-09-01T00:00:00Z``, ``+00:00`` or no offset = UTC) to epoch seconds.

    Raises ``ValueError`` when the text is not a timestamp.
    """
    parsed = datetime.fromisoformat(text.strip())
    return to_epoch_seconds(parsed)


def format_timestamp(epoch: int) -> str:
    """Epoch seconds → ``2024-09-01T00:00:00Z``."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Categorical string column
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Categorical:
    """A string column stored as integer codes into a table of distinct values.

    ``codes[i]`` is the index into ``categories`` of row i's value; a category may be ``None``
    (the cell was empty: "not known"). Categories may be any hashable object (the ``labels``
    column holds JSON strings or mappings).
    """

    codes: IntArray
    """Per row: index into ``categories`` (int64)."""
    categories: ObjectArray
    """Distinct values (object array of ``str``, ``None`` or, for labels, mappings)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", np.asarray(self.codes, dtype=np.int64))
        cats = np.empty(len(self.categories), dtype=object)
        cats[:] = list(self.categories)
        object.__setattr__(self, "categories", cats)

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> Categorical:
        """Intern a sequence of values (a Python loop over rows: for record-sized inputs)."""
        table: dict[Any, int] = {}
        codes = [table.setdefault(_hashable(v), len(table)) for v in values]
        cats = np.empty(len(table), dtype=object)
        for value, code in table.items():
            cats[code] = _unhashable(value)
        return cls(np.asarray(codes, dtype=np.int64), cats)

    def __len__(self) -> int:
        return int(self.codes.size)

    def values(self) -> ObjectArray:
        """The column decoded to an object array (one Python object per row)."""
        return self.categories[self.codes]


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ("__mapping__", tuple(sorted(value.items())))
    return value


def _unhashable(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__mapping__":
        return dict(value[1])
    return value


def as_categorical(values: Any) -> Categorical:
    """Accept a ``Categorical`` as is, or intern any other sequence of values."""
    if isinstance(values, Categorical):
        return values
    return Categorical.from_values(values)


# ---------------------------------------------------------------------------------------------
# Row records
# ---------------------------------------------------------------------------------------------


# The columns of each input table (spec §1), required then optional; the CSV reader and
# the tables' own checks both use these.
NODE_COLUMNS = (
    "cluster",
    "node",
    "hour_start",
    "hours",
    "cpu_cores",
    "ram_gib",
    "gpus",
    "cost",
    "node_pool",
    "capacity_type",
)
NODE_OPTIONAL_COLUMNS = ("instance_type", "zone", "price_source")
POD_COLUMNS = (
    "cluster",
    "namespace",
    "pod",
    "node",
    "hour_start",
    "hours",
    "cpu_request",
    "cpu_usage",
    "ram_request_gib",
    "ram_usage_gib",
    "gpu_request",
)
POD_OPTIONAL_COLUMNS = (
    "cpu_alloc",
    "ram_alloc_gib",
    "controller_kind",
    "controller",
    "team",
    "labels",
)


@dataclass(frozen=True)
class NodeHour:
    """One node during one UTC clock hour (ALLOCATION_SPEC.md §1)."""

    cluster: str
    """Cluster name."""
    node: str
    """Node name (unique within the cluster)."""
    hour_start: Timestamp
    """Start of the UTC clock hour [t, t+1h); must be on the hour."""
    hours: float
    """Part of the hour the node was observed, in hours, within (0, 1]."""
    cpu_cores: float
    """Node CPU *capacity* in cores (not allocatable)."""
    ram_gib: float
    """Node memory capacity in GiB."""
    gpus: float
    """Node GPU capacity in devices."""
    cost: float
    """Money this node cost during its ``hours`` (billing currency)."""
    node_pool: str | None = None
    """Node pool / node group name; None when not known."""
    capacity_type: str | None = None
    """``on-demand``, ``spot``, ``reserved`` or ``unknown``; None when not known."""
    instance_type: str | None = None
    """Instance type (e.g. ``m5.xlarge``); informational."""
    zone: str | None = None
    """Availability zone; informational."""
    price_source: str | None = None
    """Where ``cost`` came from (bill, catalog, custom); informational."""


@dataclass(frozen=True)
class PodHour:
    """One pod on one node during one UTC clock hour (ALLOCATION_SPEC.md §1).

    Requests and usage are time-averages over the pod's ``hours`` in that hour.
    """

    cluster: str
    """Cluster name."""
    namespace: str
    """Kubernetes namespace."""
    pod: str
    """Pod name."""
    node: str
    """Name of the node the pod ran on; must have a node-hour for the same hour."""
    hour_start: Timestamp
    """Start of the UTC clock hour; must be on the hour."""
    hours: float
    """Part of the hour the pod ran on the node, in hours, within (0, 1]."""
    cpu_request: float
    """Mean CPU request in cores."""
    cpu_usage: float
    """Mean CPU usage in cores."""
    ram_request_gib: float
    """Mean memory request in GiB."""
    ram_usage_gib: float
    """Mean memory usage in GiB."""
    gpu_request: float
    """Mean GPU request in devices."""
    cpu_alloc: float | None = None
    """Mean of max(request, usage) taken sample by sample, in cores; None when not known."""
    ram_alloc_gib: float | None = None
    """Mean of max(request, usage) taken sample by sample, in GiB; None when not known."""
    controller_kind: str | None = None
    """Owner kind (Deployment, StatefulSet, Job, ...); None when not known."""
    controller: str | None = None
    """Owner name; None when not known."""
    team: str | None = None
    """Team the pod's namespace belongs to; None when not known."""
    labels: Mapping[str, str] | str | None = None
    """Pod labels: a mapping or a JSON object string; None when not known."""


# ---------------------------------------------------------------------------------------------
# Columnar tables
# ---------------------------------------------------------------------------------------------


def _float_column(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _optional_float_column(values: Any) -> FloatArray | None:
    if values is None:
        return None
    arr = np.asarray(
        [math.nan if v is None else v for v in values] if isinstance(values, list) else values
    )
    if arr.dtype.kind == "O":
        arr = np.asarray([math.nan if v is None else v for v in arr])
    return arr.astype(np.float64)


@dataclass(frozen=True)
class NodeHours:
    """Node-hours as columns (one element per node-hour); see ``NodeHour`` for meanings and units.

    The constructor accepts plain sequences too and converts them: string columns to
    ``Categorical``, numbers to float64, ``hour_start`` (datetime64 or ints) to int64 epoch
    seconds. ``source`` and ``first_row`` only serve error messages: element i is reported as
    row ``first_row + i`` of ``source``.
    """

    cluster: Categorical
    node: Categorical
    hour_start: IntArray
    """Epoch seconds, UTC, on the hour."""
    hours: FloatArray
    cpu_cores: FloatArray
    ram_gib: FloatArray
    gpus: FloatArray
    cost: FloatArray
    node_pool: Categorical
    capacity_type: Categorical
    instance_type: Categorical | None = None
    zone: Categorical | None = None
    price_source: Categorical | None = None
    source: str = "<records>"
    first_row: int = 1
    rows: IntArray | None = None
    """Optional row number of each element, for error messages (CSV line numbers)."""

    def row_of(self, i: int) -> int:
        """Row number of element ``i`` in ``source``, for error messages."""
        return int(self.rows[i]) if self.rows is not None else self.first_row + i

    def __post_init__(self) -> None:
        for name in ("cluster", "node", "node_pool", "capacity_type"):
            object.__setattr__(self, name, as_categorical(getattr(self, name)))
        for name in ("instance_type", "zone", "price_source"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_categorical(getattr(self, name)))
        object.__setattr__(self, "hour_start", epoch_array(self.hour_start))
        if self.rows is not None:
            object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))
        for name in ("hours", "cpu_cores", "ram_gib", "gpus", "cost"):
            object.__setattr__(self, name, _float_column(getattr(self, name)))

    def __len__(self) -> int:
        return int(self.hours.size)

    @classmethod
    def from_records(
        cls, records: Iterable[NodeHour], *, source: str = "<records>", first_row: int = 1
    ) -> NodeHours:
        """Build the columnar table from ``NodeHour`` objects."""
        rows = list(records)
        return cls(
            cluster=Categorical.from_values(r.cluster for r in rows),
            node=Categorical.from_values(r.node for r in rows),
            hour_start=np.asarray([to_epoch_seconds(r.hour_start) for r in rows], np.int64),
            hours=np.asarray([r.hours for r in rows], np.float64),
            cpu_cores=np.asarray([r.cpu_cores for r in rows], np.float64),
            ram_gib=np.asarray([r.ram_gib for r in rows], np.float64),
            gpus=np.asarray([r.gpus for r in rows], np.float64),
            cost=np.asarray([r.cost for r in rows], np.float64),
            node_pool=Categorical.from_values(r.node_pool for r in rows),
            capacity_type=Categorical.from_values(r.capacity_type for r in rows),
            instance_type=Categorical.from_values(r.instance_type for r in rows),
            zone=Categorical.from_values(r.zone for r in rows),
            price_source=Categorical.from_values(r.price_source for r in rows),
            source=source,
            first_row=first_row,
        )

    def validate(self) -> None:
        """Check every column; raise ``AllocationError`` naming the source, row and column."""
        n = len(self)
        _check_lengths(
            self,
            n,
            NODE_COLUMNS + NODE_OPTIONAL_COLUMNS,
        )
        for name in ("cluster", "node"):
            _check_not_empty(self.source, self.row_of, name, getattr(self, name))
        _check_on_the_hour(self.source, self.row_of, self.hour_start)
        _check_hours(self.source, self.row_of, self.hours)
        for name in ("cpu_cores", "ram_gib", "gpus", "cost"):
            _check_quantity(self.source, self.row_of, name, getattr(self, name))


@dataclass(frozen=True)
class PodHours:
    """Pod-hours as columns (one element per pod per node per hour); see ``PodHour``.

    ``cpu_alloc`` / ``ram_alloc_gib`` are None when the column is absent; inside a column NaN
    means "not known" for that row. ``labels`` is parsed only when a ``label:<key>`` aggregate
    key is requested. The constructor converts plain sequences like ``NodeHours`` does.
    """

    cluster: Categorical
    namespace: Categorical
    pod: Categorical
    node: Categorical
    hour_start: IntArray
    """Epoch seconds, UTC, on the hour."""
    hours: FloatArray
    cpu_request: FloatArray
    cpu_usage: FloatArray
    ram_request_gib: FloatArray
    ram_usage_gib: FloatArray
    gpu_request: FloatArray
    cpu_alloc: FloatArray | None = None
    ram_alloc_gib: FloatArray | None = None
    controller_kind: Categorical | None = None
    controller: Categorical | None = None
    team: Categorical | None = None
    labels: Categorical | None = None
    source: str = "<records>"
    first_row: int = 1
    rows: IntArray | None = None
    """Optional row number of each element, for error messages (CSV line numbers)."""

    def row_of(self, i: int) -> int:
        """Row number of element ``i`` in ``source``, for error messages."""
        return int(self.rows[i]) if self.rows is not None else self.first_row + i

    def __post_init__(self) -> None:
        for name in ("cluster", "namespace", "pod", "node"):
            object.__setattr__(self, name, as_categorical(getattr(self, name)))
        for name in ("controller_kind", "controller", "team", "labels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_categorical(getattr(self, name)))
        object.__setattr__(self, "hour_start", epoch_array(self.hour_start))
        if self.rows is not None:
            object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))
        for name in (
            "hours",
            "cpu_request",
            "cpu_usage",
            "ram_request_gib",
            "ram_usage_gib",
            "gpu_request",
        ):
            object.__setattr__(self, name, _float_column(getattr(self, name)))
        for name in ("cpu_alloc", "ram_alloc_gib"):
            object.__setattr__(self, name, _optional_float_column(getattr(self, name)))

    def __len__(self) -> int:
        return int(self.hours.size)

    @classmethod
    def from_records(
        cls, records: Iterable[PodHour], *, source: str = "<records>", first_row: int = 1
    ) -> PodHours:
        """Build the columnar table from ``PodHour`` objects."""
        rows = list(records)

        def opt(values: list[float | None]) -> FloatArray | None:
            if all(v is None for v in values):
                return None
            return np.asarray([math.nan if v is None else v for v in values], np.float64)

        return cls(
            cluster=Categorical.from_values(r.cluster for r in rows),
            namespace=Categorical.from_values(r.namespace for r in rows),
            pod=Categorical.from_values(r.pod for r in rows),
            node=Categorical.from_values(r.node for r in rows),
            hour_start=np.asarray([to_epoch_seconds(r.hour_start) for r in rows], np.int64),
            hours=np.asarray([r.hours for r in rows], np.float64),
            cpu_request=np.asarray([r.cpu_request for r in rows], np.float64),
            cpu_usage=np.asarray([r.cpu_usage for r in rows], np.float64),
            ram_request_gib=np.asarray([r.ram_request_gib for r in rows], np.float64),
            ram_usage_gib=np.asarray([r.ram_usage_gib for r in rows], np.float64),
            gpu_request=np.asarray([r.gpu_request for r in rows], np.float64),
            cpu_alloc=opt([r.cpu_alloc for r in rows]),
            ram_alloc_gib=opt([r.ram_alloc_gib for r in rows]),
            controller_kind=Categorical.from_values(r.controller_kind for r in rows),
            controller=Categorical.from_values(r.controller for r in rows),
            team=Categorical.from_values(r.team for r in rows),
            labels=Categorical.from_values(r.labels for r in rows),
            source=source,
            first_row=first_row,
        )

    def validate(self) -> None:
        """Check every column; raise ``AllocationError`` naming the source, row and column.

        Cross-table checks (a pod-hour whose node-hour is missing) happen in ``allocate``.
        """
        n = len(self)
        _check_lengths(
            self,
            n,
            POD_COLUMNS + POD_OPTIONAL_COLUMNS,
        )
        for name in ("cluster", "namespace", "pod", "node"):
            _check_not_empty(self.source, self.row_of, name, getattr(self, name))
        _check_on_the_hour(self.source, self.row_of, self.hour_start)
        _check_hours(self.source, self.row_of, self.hours)
        for name in ("cpu_request", "cpu_usage", "ram_request_gib", "ram_usage_gib", "gpu_request"):
            _check_quantity(self.source, self.row_of, name, getattr(self, name))
        for name in ("cpu_alloc", "ram_alloc_gib"):
            col = getattr(self, name)
            if col is not None:
                _check_quantity(self.source, self.row_of, name, col, allow_nan=True)

    def label_values(self, key: str) -> Categorical:
        """The value of label ``key`` per row (None where absent), parsing each distinct labels
        cell once. Raises ``AllocationError`` for a cell that is not a JSON object."""
        n = len(self)
        if self.labels is None:
            return Categorical(np.zeros(n, np.int64), np.array([None], dtype=object))
        table: dict[str | None, int] = {}
        lut = np.empty(len(self.labels.categories), np.int64)
        for i, cell in enumerate(self.labels.categories):
            parsed = _parse_labels(cell)
            if parsed is None:
                row = self.row_of(int(np.flatnonzero(self.labels.codes == i)[0]))
                raise AllocationError(
                    E_BAD_LABELS.format(source=self.source, row=row, column="labels", value=cell)
                )
            value = parsed.get(key)
            text = None if value is None else str(value)
            lut[i] = table.setdefault(text, len(table))
        cats = np.empty(len(table), dtype=object)
        for text, code in table.items():
            cats[code] = text
        return Categorical(lut[self.labels.codes], cats)


def _parse_labels(cell: Any) -> Mapping[str, Any] | None:
    """A labels cell as a mapping ({} when empty); None when it is not a JSON object."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return {}
    if isinstance(cell, Mapping):
        return cell
    if isinstance(cell, str):
        try:
            parsed = json.loads(cell)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


RowOf = Callable[[int], int]


def _check_lengths(table: Any, n: int, names: Sequence[str]) -> None:
    for name in names:
        col = getattr(table, name)
        if col is None:
            continue
        size = len(col)
        if size != n:
            raise AllocationError(
                E_LENGTH_MISMATCH.format(
                    source=table.source, row=table.row_of(0), column=name, value=size, expected=n
                )
            )


def _check_not_empty(source: str, row_of: RowOf, name: str, col: Categorical) -> None:
    empty_cats = np.asarray([c is None or c == "" for c in col.categories], dtype=bool)
    if empty_cats.any():
        bad = empty_cats[col.codes]
        if bad.any():
            raise AllocationError(
                E_EMPTY_CELL.format(source=source, row=row_of(int(np.argmax(bad))), column=name)
            )


def _check_on_the_hour(source: str, row_of: RowOf, hour_start: IntArray) -> None:
    bad = hour_start % HOUR != 0
    if bad.any():
        i = int(np.argmax(bad))
        raise AllocationError(
            E_NOT_ON_THE_HOUR.format(
                source=source,
                row=row_of(i),
                column="hour_start",
                value=format_timestamp(int(hour_start[i])),
            )
        )


def _check_hours(source: str, row_of: RowOf, hours: FloatArray) -> None:
    _check_quantity(source, row_of, "hours", hours)
    bad = ~((hours > 0) & (hours <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise AllocationError(
            E_HOURS_RANGE.format(source=source, row=row_of(i), column="hours", value=hours[i])
        )


MAX_QUANTITY = 1e15
"""Largest accepted quantity or cost in an input cell (far above any real node or pod)."""


def _check_quantity(
    source: str, row_of: RowOf, name: str, col: FloatArray, *, allow_nan: bool = False
) -> None:
    bad = np.isinf(col) if allow_nan else ~np.isfinite(col)
    if bad.any():
        i = int(np.argmax(bad))
        raise AllocationError(
            E_NOT_FINITE.format(source=source, row=row_of(i), column=name, value=col[i])
        )
    huge = col > MAX_QUANTITY  # 1e308 is finite, but Σ or × overflows to inf, then NaN money
    if huge.any():
        i = int(np.argmax(huge))
        raise AllocationError(
            E_TOO_LARGE.format(source=source, row=row_of(i), column=name, value=col[i])
        )
    neg = col < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise AllocationError(
            E_NEGATIVE.format(source=source, row=row_of(i), column=name, value=col[i])
        )


def bad_timestamp(source: str, row: int, column: str, value: str) -> AllocationError:
    """The error for a cell that is not an ISO 8601 timestamp."""
    return AllocationError(
        E_BAD_TIMESTAMP.format(source=source, row=row, column=column, value=value)
    )


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    """A fixed cost of a cluster that joins the shared pool (ALLOCATION_SPEC.md §5)."""

    cluster: str
    """Cluster the cost belongs to."""
    name: str
    """What it is (``control-plane``, ``nat-gateway``, ...); informational."""
    hourly: float
    """Money per hour; accrues in every hour in which the cluster has node-hours."""


@dataclass(frozen=True)
class Weights:
    """Reference weights that split a node's cost into CPU, RAM and GPU parts (§2)."""

    cpu: float
    """Weight per core."""
    ram: float
    """Weight per GiB."""
    gpu: float
    """Weight per GPU."""


PRESET_WEIGHTS: dict[str, tuple[Weights, Weights]] = {
    # (weights for nodes without GPUs, weights for nodes with GPUs)
    "opencost": (Weights(0.031611, 0.004237, 0.95), Weights(0.031611, 0.004237, 0.95)),
    "aws-split": (Weights(9.0, 1.0, 0.0), Weights(0.9, 0.1, 9.0)),
}

_POLICY_KEYS = ("basis", "weights", "idle", "shared_namespaces", "shared_split", "overhead")


@dataclass(frozen=True)
class Policy:
    """How costs are allocated (ALLOCATION_SPEC.md §2–§5). Invalid values raise
    ``AllocationError`` at construction."""

    basis: str = "max"
    """``max`` (default), ``request`` or ``usage``: what a pod is charged for."""
    weights: str | Mapping[str, float] = "opencost"
    """A preset name (``opencost``, ``aws-split``) or ``{"cpu": w, "ram": w, "gpu": w}``
    (missing keys count as 0)."""
    idle: str = "separate"
    """``separate`` (default), ``share-by-node`` or ``share-by-cluster``."""
    shared_namespaces: tuple[str, ...] = ()
    """Namespaces whose cost is spread over the other workloads of their cluster."""
    shared_split: str = "weighted"
    """``weighted`` (default, by own cost) or ``even`` (equal per result line)."""
    overhead: tuple[Overhead, ...] = ()
    """Fixed hourly costs per cluster that join the shared pool."""
    source: str = field(default="<policy>", compare=False)
    """Where the policy came from, for error messages."""

    def __post_init__(self) -> None:
        src = self.source
        _check_choice(src, "basis", self.basis, BASES)
        _check_choice(src, "idle", self.idle, IDLE_POLICIES)
        _check_choice(src, "shared_split", self.shared_split, SHARED_SPLITS)
        if isinstance(self.weights, str):
            _check_choice(src, "weights", self.weights, WEIGHT_PRESETS)
        elif isinstance(self.weights, Mapping):
            for key, value in self.weights.items():
                if key not in ("cpu", "ram", "gpu"):
                    raise AllocationError(
                        E_POLICY_UNKNOWN_KEY.format(
                            source=src, key=f"weights.{key}", allowed="cpu, ram, gpu"
                        )
                    )
                if not _is_number(value) or not math.isfinite(value) or value < 0:
                    raise AllocationError(
                        E_POLICY_BAD_VALUE.format(
                            source=src,
                            key=f"weights.{key}",
                            value=value,
                            allowed="a finite number >= 0",
                        )
                    )
        else:
            raise AllocationError(
                E_POLICY_BAD_VALUE.format(
                    source=src,
                    key="weights",
                    value=self.weights,
                    allowed="a preset name or an object with cpu, ram, gpu",
                )
            )
        object.__setattr__(self, "shared_namespaces", tuple(self.shared_namespaces))
        object.__setattr__(self, "overhead", tuple(self.overhead))
        for ns in self.shared_namespaces:
            if not isinstance(ns, str) or not ns:
                raise AllocationError(
                    E_POLICY_BAD_VALUE.format(
                        source=src,
                        key="shared_namespaces",
                        value=ns,
                        allowed="namespace names",
                    )
                )
        for item in self.overhead:
            ok = (
                isinstance(item, Overhead)
                and isinstance(item.cluster, str)
                and _is_number(item.hourly)
                and math.isfinite(item.hourly)
                and item.hourly >= 0
            )
            if not ok:
                raise AllocationError(
                    E_POLICY_BAD_VALUE.format(
                        source=src,
                        key="overhead",
                        value=item,
                        allowed="cluster, name and hourly >= 0",
                    )
                )

    def weights_for(self, has_gpu: bool) -> Weights:
        """The weights that apply to a node with (or without) GPUs."""
        if isinstance(self.weights, str):
            return PRESET_WEIGHTS[self.weights][1 if has_gpu else 0]
        w = self.weights
        return Weights(float(w.get("cpu", 0.0)), float(w.get("ram", 0.0)), float(w.get("gpu", 0.0)))

    @classmethod
    def from_dict(cls, d: Any, source: str = "policy.json") -> Policy:
        """Build a policy from its JSON form (ALLOCATION_SPEC.md §8), rejecting unknown keys
        and values with an ``AllocationError`` that names ``source`` and the key."""
        if not isinstance(d, Mapping):
            raise AllocationError(E_POLICY_NOT_OBJECT.format(source=source, key="", value=d))
        for key in d:
            if key not in _POLICY_KEYS:
                raise AllocationError(
                    E_POLICY_UNKNOWN_KEY.format(
                        source=source, key=key, allowed=", ".join(_POLICY_KEYS)
                    )
                )
        kwargs: dict[str, Any] = {"source": source}
        for key in ("basis", "idle", "shared_split"):
            if key in d:
                kwargs[key] = d[key]
        if "weights" in d:
            w = d["weights"]
            if not isinstance(w, (str, Mapping)):
                raise AllocationError(
                    E_POLICY_BAD_VALUE.format(
                        source=source,
                        key="weights",
                        value=w,
                        allowed="a preset name or an object with cpu, ram, gpu",
                    )
                )
            kwargs["weights"] = w if isinstance(w, str) else dict(w)
        if "shared_namespaces" in d:
            ns = d["shared_namespaces"]
            if not isinstance(ns, list) or not all(isinstance(x, str) and x for x in ns):
                raise AllocationError(
                    E_POLICY_BAD_VALUE.format(
                        source=source,
                        key="shared_namespaces",
                        value=ns,
                        allowed="a list of namespace names",
                    )
                )
            kwargs["shared_namespaces"] = tuple(ns)
        if "overhead" in d:
            kwargs["overhead"] = tuple(
                _overhead_from_dict(x, source) for x in _as_list(d["overhead"], source)
            )
        for key in ("basis", "idle", "shared_split"):
            if key in kwargs and not isinstance(kwargs[key], str):
                raise AllocationError(
                    E_POLICY_BAD_VALUE.format(
                        source=source, key=key, value=kwargs[key], allowed="a string"
                    )
                )
        return cls(**kwargs)


def _as_list(value: Any, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise AllocationError(
            E_POLICY_BAD_VALUE.format(
                source=source, key="overhead", value=value, allowed="a list of objects"
            )
        )
    return value


def _overhead_from_dict(item: Any, source: str) -> Overhead:
    allowed = ("cluster", "name", "hourly")
    if not isinstance(item, Mapping):
        raise AllocationError(E_POLICY_NOT_OBJECT.format(source=source, key="overhead", value=item))
    for key in item:
        if key not in allowed:
            raise AllocationError(
                E_POLICY_UNKNOWN_KEY.format(
                    source=source, key=f"overhead.{key}", allowed=", ".join(allowed)
                )
            )
    cluster = item.get("cluster")
    hourly: Any = item.get("hourly")
    name = item.get("name", "")
    if not isinstance(cluster, str) or not cluster:
        raise AllocationError(
            E_POLICY_BAD_VALUE.format(
                source=source, key="overhead.cluster", value=cluster, allowed="a cluster name"
            )
        )
    if not _is_number(hourly) or not math.isfinite(hourly) or hourly < 0:
        raise AllocationError(
            E_POLICY_BAD_VALUE.format(
                source=source, key="overhead.hourly", value=hourly, allowed="a finite number >= 0"
            )
        )
    if not isinstance(name, str):
        raise AllocationError(
            E_POLICY_BAD_VALUE.format(
                source=source, key="overhead.name", value=name, allowed="a string"
            )
        )
    return Overhead(cluster=cluster, name=name, hourly=float(hourly))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choice(source: str, key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise AllocationError(
            E_POLICY_BAD_VALUE.format(
                source=source, key=key, value=value, allowed="one of " + ", ".join(allowed)
            )
        )


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------

QUANTITY_COLUMNS = ("cpu_core_hours", "ram_gib_hours", "gpu_hours")
COST_COLUMNS = ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost", "total_cost")
EFFICIENCY_COLUMNS = ("cpu_efficiency", "ram_efficiency", "total_efficiency")
USAGE_COLUMNS = (
    "cpu_usage_core_hours",
    "cpu_request_core_hours",
    "ram_usage_gib_hours",
    "ram_request_gib_hours",
)
NUMERIC_COLUMNS = QUANTITY_COLUMNS + COST_COLUMNS + EFFICIENCY_COLUMNS


def output_header(keys: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``result.csv`` (ALLOCATION_SPEC.md §8) for these aggregate keys."""
    return ("kind", *keys, "window_start", "window_end", *NUMERIC_COLUMNS)


@dataclass(frozen=True)
class AllocationLine:
    """One result line as a Python object (see ``Result`` for each column's meaning)."""

    kind: str
    """``workload`` or ``idle``."""
    keys: Mapping[str, str]
    """Aggregate key → value (``__unallocated__``, ``__idle__``, ``__shared__`` are markers)."""
    window_start: datetime
    """Start of the line's step, UTC (inclusive)."""
    window_end: datetime
    """End of the line's step, UTC (exclusive)."""
    cpu_core_hours: float
    ram_gib_hours: float
    gpu_hours: float
    cpu_cost: float
    ram_cost: float
    gpu_cost: float
    idle_cost: float
    shared_cost: float
    total_cost: float
    cpu_efficiency: float
    ram_efficiency: float
    total_efficiency: float
    cpu_usage_core_hours: float
    cpu_request_core_hours: float
    ram_usage_gib_hours: float
    ram_request_gib_hours: float


@dataclass(frozen=True)
class Result:
    """The allocation: one element per result line in every column.

    Columns (``columns[name]``, also ``result[name]``):

    * ``kind`` — ``workload`` or ``idle``;
    * one column per aggregate key (object arrays of ``str``);
    * ``window_start``, ``window_end`` — the line's step bounds, ``datetime64[s]`` UTC;
    * ``cpu_core_hours, ram_gib_hours, gpu_hours`` — charged resource-hours, unscaled (on idle
      lines: unallocated capacity-hours);
    * ``cpu_cost, ram_cost, gpu_cost`` — money for the line's own use (on idle lines: idle money);
    * ``idle_cost`` — idle shared in (0 on idle lines); ``shared_cost`` — shared namespaces and
      overhead spread in; ``total_cost`` — the sum of the five;
    * ``cpu_efficiency, ram_efficiency, total_efficiency`` — §6;
    * ``cpu_usage_core_hours, cpu_request_core_hours, ram_usage_gib_hours,
      ram_request_gib_hours`` — the sums efficiency is made of, so lines can be recombined.
    """

    keys: tuple[str, ...]
    columns: Mapping[str, npt.NDArray[Any]]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.columns[name]

    def __len__(self) -> int:
        return int(self.columns["kind"].size)

    @property
    def header(self) -> tuple[str, ...]:
        """Output column names in ``result.csv`` order."""
        return output_header(self.keys)

    def rows(self) -> list[tuple[Any, ...]]:
        """Lines as tuples in ``header`` order; timestamps as epoch seconds (int)."""
        cols: list[list[Any]] = []
        for name in self.header:
            col = self.columns[name]
            if name in ("window_start", "window_end"):
                cols.append(col.astype(np.int64).tolist())
            else:
                cols.append(col.tolist())
        return list(zip(*cols, strict=True))

    def to_records(self) -> list[AllocationLine]:
        """Lines as ``AllocationLine`` objects."""
        names = [f.name for f in fields(AllocationLine)]
        numeric = [n for n in names if n not in ("kind", "keys", "window_start", "window_end")]
        lists = {n: self.columns[n].tolist() for n in numeric}
        kinds = self.columns["kind"].tolist()
        key_lists = {k: self.columns[k].tolist() for k in self.keys}
        starts = self.columns["window_start"].astype(np.int64).tolist()
        ends = self.columns["window_end"].astype(np.int64).tolist()
        out = []
        for i, kind in enumerate(kinds):
            out.append(
                AllocationLine(
                    kind=kind,
                    keys={k: key_lists[k][i] for k in self.keys},
                    window_start=datetime.fromtimestamp(starts[i], tz=UTC),
                    window_end=datetime.fromtimestamp(ends[i], tz=UTC),
                    **{n: lists[n][i] for n in numeric},
                )
            )
        return out


# ---------------------------------------------------------------------------------------------
# Parts: the lower-level output that the Django app stores
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadParts:
    """Workload money and quantities, one element per (aggregate keys, cluster, step,
    is_shared) — a result line split by cluster and by shared-namespace membership.

    Every amount is a sum over the part's pod-hours. Quantities are unscaled resource-hours.
    """

    keys: Mapping[str, Categorical]
    """Aggregate key → value per part (``__unallocated__`` where the pod had none)."""
    cluster: IntArray
    """Cluster code per part (index into ``Parts.clusters``)."""
    step: IntArray
    """Step code per part (index into ``Parts.step_starts``)."""
    is_shared: BoolArray
    """True for parts of the policy's shared namespaces."""
    cpu_core_hours: FloatArray
    """Charged core-hours (alloc · hours), unscaled."""
    ram_gib_hours: FloatArray
    """Charged GiB-hours, unscaled."""
    gpu_hours: FloatArray
    """Requested GPU-hours."""
    cpu_cost: FloatArray
    """Money for CPU (after the no-over-commit scaling)."""
    ram_cost: FloatArray
    """Money for RAM."""
    gpu_cost: FloatArray
    """Money for GPUs."""
    idle_by_node: FloatArray
    """Idle money the part receives under ``share-by-node``."""
    idle_by_cluster: FloatArray
    """Idle money the part receives under ``share-by-cluster``."""
    cpu_usage_core_hours: FloatArray
    """Σ cpu_usage · hours (core-hours)."""
    cpu_request_core_hours: FloatArray
    """Σ cpu_request · hours (core-hours)."""
    ram_usage_gib_hours: FloatArray
    """Σ ram_usage_gib · hours (GiB-hours)."""
    ram_request_gib_hours: FloatArray
    """Σ ram_request_gib · hours (GiB-hours)."""

    def __len__(self) -> int:
        return int(self.cluster.size)

    def idle_share(self, idle: str) -> FloatArray:
        """Idle money received under idle policy ``idle`` (0 under ``separate``)."""
        if idle == "share-by-node":
            return self.idle_by_node
        if idle == "share-by-cluster":
            return self.idle_by_cluster
        return np.zeros(self.cluster.size, np.float64)


@dataclass(frozen=True)
class IdleColumns:
    """What stays ``__idle__`` under one idle policy, per idle part."""

    cpu_core_hours: FloatArray
    """Unallocated core-hours (capacity-hours − allocated, not below 0) where CPU idle stays."""
    ram_gib_hours: FloatArray
    """Unallocated GiB-hours where RAM idle stays."""
    gpu_hours: FloatArray
    """Unallocated GPU-hours where GPU idle stays."""
    cpu_cost: FloatArray
    """Idle CPU money that stays."""
    ram_cost: FloatArray
    """Idle RAM money that stays."""
    gpu_cost: FloatArray
    """Idle GPU money that stays."""


@dataclass(frozen=True)
class IdleParts:
    """Idle, one element per (node-side aggregate keys, cluster, step).

    Pod-side keys hold ``__idle__``. ``separate`` holds all idle; ``by_node`` what stays when
    idle is shared by node (no pod on that node used that resource that hour); ``by_cluster``
    likewise cluster-wide.
    """

    keys: Mapping[str, Categorical]
    """Aggregate key → value per part."""
    cluster: IntArray
    """Cluster code per part."""
    step: IntArray
    """Step code per part."""
    separate: IdleColumns
    """Idle under ``separate``."""
    by_node: IdleColumns
    """Idle that stays under ``share-by-node``."""
    by_cluster: IdleColumns
    """Idle that stays under ``share-by-cluster``."""

    def __len__(self) -> int:
        return int(self.cluster.size)

    def for_policy(self, idle: str) -> IdleColumns:
        """The idle columns that apply under idle policy ``idle``."""
        if idle == "share-by-node":
            return self.by_node
        if idle == "share-by-cluster":
            return self.by_cluster
        return self.separate


@dataclass(frozen=True)
class Parts:
    """Everything ``allocate`` needs, computed in one pass, before the idle policy and shared
    costs are applied (see ``allocation.allocate_parts``)."""

    keys: tuple[str, ...]
    """Aggregate keys, in order."""
    step: str
    """``hour``, ``day``, ``month`` or ``window``."""
    clusters: ObjectArray
    """Cluster name per cluster code."""
    step_starts: IntArray
    """Step start per step code, epoch seconds UTC (inclusive)."""
    step_ends: IntArray
    """Step end per step code, epoch seconds UTC (exclusive)."""
    cluster_hours: IntArray
    """Shape (n_clusters, n_steps): distinct hours in which the cluster has node-hours."""
    node_cost: FloatArray
    """Shape (n_clusters, n_steps): Σ node cost (for conservation checks)."""
    workload: WorkloadParts
    """Workload parts."""
    idle: IdleParts
    """Idle parts."""

    def overhead(self, overhead: Sequence[Overhead]) -> FloatArray:
        """Shape (n_clusters, n_steps): overhead money accrued (hourly × cluster_hours).
        Overhead of a cluster without node-hours accrues nothing."""
        out = np.zeros(self.cluster_hours.shape, np.float64)
        index = {name: i for i, name in enumerate(self.clusters.tolist())}
        for item in overhead:
            i = index.get(item.cluster)
            if i is not None:
                out[i] += item.hourly * self.cluster_hours[i]
        return out
