"""CSV that spreadsheet programs cannot turn into formulas (CSV / formula injection).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed
with ``'`` so Excel, LibreOffice and Google Sheets show it as text. Numbers (int, float,
Decimal) are written as numbers, negative ones included: only text is neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["DANGEROUS_PREFIXES", "csv_text", "safe_cell", "write_rows"]

DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as it should go into a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return value
    text = str(value)
    if text.startswith(DANGEROUS_PREFIXES):
        return "'" + text
    return text


def write_rows(out, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a header and rows to a text stream, every cell through ``safe_cell``."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The whole CSV as a string."""
    buf = io.StringIO()
    write_rows(buf, header, rows)
    return buf.getvalue()
