"""The day-of-week aware forecast on known series (pure: no database)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from costapp.budgets import forecast_period


def series(start: date, end: date, weekday: float, weekend: float) -> dict[date, float]:
    out, d = {}, start
    while d < end:
        out[d] = weekend if d.weekday() >= 5 else weekday
        d += timedelta(days=1)
    return out


def test_weekly_pattern_is_projected_day_by_day():
    # Weekdays cost 100, weekends 40; history from February, as of 2026-03-10 (a Tuesday).
    daily = series(date(2026, 2, 1), date(2026, 3, 11), 100, 40)
    fc = forecast_period(daily, date(2026, 3, 1), date(2026, 4, 1), date(2026, 3, 10))
    march = series(date(2026, 3, 1), date(2026, 4, 1), 100, 40)
    assert fc.actual == pytest.approx(sum(v for d, v in march.items() if d.day <= 10))
    assert fc.total == pytest.approx(sum(march.values()))
    assert fc.weekday_factors[0] == pytest.approx(100 / (580 / 7))
    assert [v for d, v, kind in fc.days if kind == "forecast" and d.weekday() == 5][0] \
        == pytest.approx(40)
    assert "weekday factor" in fc.method and "Sat ×0.48" in fc.method


def test_a_flat_average_would_be_wrong_on_a_weekend_heavy_remainder():
    # 2026-03-27 is a Friday: the remaining days are Sat, Sun, Mon, Tue.
    daily = series(date(2026, 2, 20), date(2026, 3, 28), 100, 40)
    fc = forecast_period(daily, date(2026, 3, 1), date(2026, 4, 1), date(2026, 3, 27))
    assert fc.projected == pytest.approx(40 + 40 + 100 + 100)


def test_level_follows_recent_growth():
    # Cost doubles in the last week: the level comes from the last 7 days.
    daily = {date(2026, 3, 1) + timedelta(days=i): (50.0 if i < 14 else 100.0) for i in range(21)}
    fc = forecast_period(daily, date(2026, 3, 1), date(2026, 4, 1), date(2026, 3, 21))
    assert fc.level > 75  # a 21-day mean would say ~67
    assert fc.projected > 10 * 75


def test_unobserved_days_are_not_zeros_and_no_history_projects_nothing():
    fc = forecast_period({}, date(2026, 3, 1), date(2026, 4, 1), date(2026, 2, 28))
    assert fc.total == 0 and fc.history_days == 0 and "no allocated history" in fc.method
    # Only three observed days (a gap before them): the level is their mean, not diluted.
    daily = {date(2026, 3, 2): 10.0, date(2026, 3, 3): 10.0, date(2026, 3, 4): 10.0}
    fc = forecast_period(daily, date(2026, 3, 1), date(2026, 4, 1), date(2026, 3, 4))
    assert fc.projected == pytest.approx(27 * 10)


def test_past_period_forecast_equals_actual():
    daily = series(date(2026, 1, 1), date(2026, 2, 1), 10, 10)
    fc = forecast_period(daily, date(2026, 1, 1), date(2026, 2, 1), date(2026, 1, 31))
    assert fc.projected == 0 and fc.total == pytest.approx(310)
