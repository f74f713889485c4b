"""CSV and JSON input/output for the command line (ALLOCATION_SPEC.md §8).

Reading checks every cell and raises ``AllocationError`` naming the file, the row (the header
is row 1) and the column. Writing goes to a temporary file in the target directory that is
renamed into place only when complete, so a failure never leaves a partial result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from allocation.errors import (
    E_DUPLICATE_COLUMN,
    E_EMPTY_CELL,
    E_MISSING_COLUMN,
    E_NOT_A_NUMBER,
    E_NOT_FINITE,
    E_POLICY_BAD_JSON,
    E_READ_FAILED,
    AllocationError,
)
from allocation.records import (
    NODE_COLUMNS,
    NODE_OPTIONAL_COLUMNS,
    POD_COLUMNS,
    POD_OPTIONAL_COLUMNS,
    Categorical,
    NodeHours,
    PodHours,
    Policy,
    Result,
    bad_timestamp,
    parse_timestamp,
)

__all__ = [
    "NODE_COLUMNS",
    "NODE_OPTIONAL_COLUMNS",
    "POD_COLUMNS",
    "POD_OPTIONAL_COLUMNS",
    "format_number",
    "read_node_hours",
    "read_pod_hours",
    "read_policy",
    "write_result",
]

_NUMERIC = {
    "hours",
    "cpu_cores",
    "ram_gib",
    "gpus",
    "cost",
    "cpu_request",
    "cpu_usage",
    "ram_request_gib",
    "ram_usage_gib",
    "gpu_request",
    "cpu_alloc",
    "ram_alloc_gib",
}
# String columns whose cell may be empty ("not known"); other required ones may not.
_MAY_BE_EMPTY = {"node_pool", "capacity_type"}


class _Column:
    """Accumulates one column's cells while reading."""

    def __init__(self, name: str, required: bool, source: str) -> None:
        self.name = name
        self.required = required
        self.source = source
        self.numbers: list[float] = []
        self.codes: list[int] = []
        self.table: dict[str | None, int] = {}
        self.times: dict[str, int] = {}
        self.epochs: list[int] = []

    def add(self, cell: str, row: int) -> None:
        name = self.name
        if name in _NUMERIC:
            self.numbers.append(self._number(cell, row))
        elif name == "hour_start":
            self.epochs.append(self._timestamp(cell, row))
        else:
            value: str | None = cell if cell != "" else None
            if value is None and self.required and name not in _MAY_BE_EMPTY:
                raise AllocationError(E_EMPTY_CELL.format(source=self.source, row=row, column=name))
            self.codes.append(self.table.setdefault(value, len(self.table)))

    def _number(self, cell: str, row: int) -> float:
        text = cell.strip()
        if text == "":
            if self.required:
                raise AllocationError(
                    E_EMPTY_CELL.format(source=self.source, row=row, column=self.name)
                )
            return math.nan
        try:
            value = float(text)
        except ValueError:
            raise AllocationError(
                E_NOT_A_NUMBER.format(source=self.source, row=row, column=self.name, value=cell)
            ) from None
        if not math.isfinite(value):
            raise AllocationError(
                E_NOT_FINITE.format(source=self.source, row=row, column=self.name, value=cell)
            )
        return value

    def _timestamp(self, cell: str, row: int) -> int:
        cached = self.times.get(cell)
        if cached is not None:
            return cached
        if cell.strip() == "":
            raise AllocationError(
                E_EMPTY_CELL.format(source=self.source, row=row, column=self.name)
            )
        try:
            value = parse_timestamp(cell)
        except ValueError:
            raise bad_timestamp(self.source, row, self.name, cell) from None
        self.times[cell] = value
        return value

    def result(self) -> Any:
        if self.name in _NUMERIC:
            return np.asarray(self.numbers, dtype=np.float64)
        if self.name == "hour_start":
            return np.asarray(self.epochs, dtype=np.int64)
        cats = np.empty(len(self.table), dtype=object)
        cats[:] = list(self.table)
        return Categorical(np.asarray(self.codes, dtype=np.int64), cats)


def _read_table(
    path: str | Path, required: Sequence[str], optional: Sequence[str]
) -> dict[str, Any]:
    source = str(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise AllocationError(E_READ_FAILED.format(source=source, value=exc.strerror)) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader, [])]
            index: dict[str, int] = {}
            for i, name in enumerate(header):
                if name in index and name in (*required, *optional):  # which one is meant?
                    raise AllocationError(
                        E_DUPLICATE_COLUMN.format(source=source, row=1, column=name)
                    )
                index.setdefault(name, i)
            for name in required:
                if name not in index:
                    raise AllocationError(
                        E_MISSING_COLUMN.format(source=source, row=1, column=name)
                    )
            columns = [
                (index[name], _Column(name, name in required, source))
                for name in (*required, *optional)
                if name in index
            ]
            rows: list[int] = []
            adders: list[tuple[int, Callable[[str, int], None]]] = [
                (i, col.add) for i, col in columns
            ]
            for cells in reader:
                row = reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue
                rows.append(row)
                width = len(cells)
                for i, add in adders:
                    add(cells[i] if i < width else "", row)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise AllocationError(E_READ_FAILED.format(source=source, value=exc)) from None
    out = {col.name: col.result() for _, col in columns}
    out["rows"] = np.asarray(rows, dtype=np.int64)
    return out


def read_node_hours(path: str | Path) -> NodeHours:
    """Read and validate a node-hours CSV (§1)."""
    cols = _read_table(path, NODE_COLUMNS, NODE_OPTIONAL_COLUMNS)
    nodes = NodeHours(source=str(path), **cols)
    nodes.validate()
    return nodes


def read_pod_hours(path: str | Path) -> PodHours:
    """Read and validate a pod-hours CSV (§1)."""
    cols = _read_table(path, POD_COLUMNS, POD_OPTIONAL_COLUMNS)
    pods = PodHours(source=str(path), **cols)
    pods.validate()
    return pods


def read_policy(path: str | Path | None) -> Policy:
    """Read ``policy.json`` (§8); the default policy when ``path`` is None."""
    if path is None:
        return Policy()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AllocationError(E_READ_FAILED.format(source=source, value=exc.strerror)) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise AllocationError(E_POLICY_BAD_JSON.format(source=source, value=exc)) from None
    return Policy.from_dict(data, source=source)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def format_number(value: float) -> str:
    """Money and quantities with 10 decimals (at least 6 are required)."""
    text = f"{value:.10f}"
    return "0.0000000000" if text == "-0.0000000000" else text


def write_result(result: Result, path: str | Path) -> None:
    """Write ``result.csv`` (§8) atomically: a temporary file renamed into place."""
    target = Path(path)
    header = result.header
    cols: list[list[str]] = []
    for name in header:
        col = result[name]
        if name in ("window_start", "window_end"):
            cols.append([s + "Z" for s in np.datetime_as_string(col, unit="s").tolist()])
        elif name == "kind" or name in result.keys:
            cols.append([str(v) for v in col.tolist()])
        else:
            cols.append([format_number(v) for v in col.tolist()])
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent if str(target.parent) else "."
    )
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(zip(*cols, strict=True))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
