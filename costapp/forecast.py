"""Forecast of a month's cost to month end from the days so far (day-of-week aware).

``forecast_month`` is pure: a daily cost series in, a ``Forecast`` out; budgets reuse it.
``month_forecast`` is the thin query around it.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Forecast", "forecast_month", "month_forecast"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Forecast:
    """A month's cost: known so far and expected for the rest.

    ``month_to_date``: Σ cost of the month's days before ``as_of`` (complete days) plus
    ``as_of`` itself so far; ``remaining``: expected cost of ``as_of`` … month end (for
    ``as_of`` itself, its expected full-day cost minus what it already cost, never below 0);
    ``total``: their sum; ``method``: how ``remaining`` was estimated, in words.
    """

    month: date
    as_of: date
    month_to_date: float
    remaining: float
    total: float
    method: str
    history_days: int


def forecast_month(daily: Mapping[date, float], as_of: date, weeks: int = 4) -> Forecast:
    """Forecast the month of ``as_of`` from a daily series (which may reach into earlier months).

    Steps:
      1. history = complete days in the ``weeks`` × 7 days before ``as_of`` that have data;
      2. the expected cost of a weekday = the mean of that weekday in the history, or the mean of
         all history days when that weekday has none;
      3. remaining = Σ expected cost over ``as_of`` … last day of the month, less what ``as_of``
         has already cost;
      4. with no history at all, remaining is 0 and ``method`` says the forecast is unavailable.
    """
    first = as_of.replace(day=1)
    last = as_of.replace(day=calendar.monthrange(as_of.year, as_of.month)[1])
    mtd = sum(v for d, v in daily.items() if first <= d <= as_of)
    hist_start = as_of - timedelta(days=7 * weeks)
    history = {d: v for d, v in daily.items() if hist_start <= d < as_of}
    if not history:
        return Forecast(first, as_of, mtd, 0.0, mtd,
                        "No complete day of history yet: forecast unavailable.", 0)
    by_wd: dict[int, list[float]] = {}
    for d, v in history.items():
        by_wd.setdefault(d.weekday(), []).append(v)
    overall = sum(history.values()) / len(history)
    expected = {wd: sum(vs) / len(vs) for wd, vs in by_wd.items()}
    remaining = 0.0
    d = as_of
    while d <= last:
        remaining += expected.get(d.weekday(), overall)
        d += timedelta(days=1)
    remaining = max(0.0, remaining - daily.get(as_of, 0.0))
    missing = [WEEKDAYS[i] for i in range(7) if i not in expected]
    method = (f"Average cost per weekday over the last {len(history)} complete day(s) "
              f"(up to {weeks} weeks) × the {(last - as_of).days + 1} remaining day(s) of the "
              f"month, less what today has already cost")
    if missing:
        method += f"; {', '.join(missing)} use the all-day average ({overall:,.2f}/day)"
    return Forecast(first, as_of, mtd, remaining, mtd + remaining, method + ".", len(history))


def month_forecast(as_of: date, clusters=(), teams=None, weeks: int = 4) -> Forecast:
    """The forecast for the month of ``as_of`` from stored lines (see ``queries.daily_totals``)."""
    from costapp.queries import daily_totals

    start = min(as_of.replace(day=1), as_of - timedelta(days=7 * weeks))
    return forecast_month(daily_totals(start, as_of + timedelta(days=1), clusters, teams), as_of,
                          weeks)
