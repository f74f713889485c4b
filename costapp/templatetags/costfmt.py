"""Template filters for money, percentages and key markers."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

MARKERS = {"__idle__": "Idle", "__shared__": "Shared (unassigned)",
           "__unallocated__": "Unallocated"}


@register.filter
def money(value, currency: str = "") -> str:
    """1234.5 → '1,234.50 USD'; None → '—' (missing is never shown as zero)."""
    if value is None or value == "":
        return "—"
    text = f"{Decimal(str(value)):,.2f}"
    return f"{text} {currency}".strip()


@register.filter
def pct(value) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f} %"


@register.filter
def qty(value) -> str:
    return "—" if value is None else f"{float(value):,.1f}"


@register.filter
def marker(value) -> str:
    """Show engine markers in words."""
    return MARKERS.get(value, value)


@register.filter
def get(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
