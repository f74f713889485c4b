"""The month-end forecast is day-of-week aware and explains itself."""

from datetime import date, timedelta

import pytest

from costapp.forecast import forecast_month


def test_weekday_pattern_is_projected_to_month_end():
    # Four weeks of history: weekdays cost 100, weekends 40.
    as_of = date(2026, 3, 16)  # a Monday
    daily = {}
    d = as_of - timedelta(days=28)
    while d < as_of:
        daily[d] = 40.0 if d.weekday() >= 5 else 100.0
        d += timedelta(days=1)
    f = forecast_month(daily, as_of)
    # Remaining 16th..31st: 12 weekdays and 4 weekend days.
    assert f.remaining == pytest.approx(12 * 100 + 4 * 40)
    assert f.month_to_date == pytest.approx(sum(v for k, v in daily.items() if k.month == 3))
    assert f.total == pytest.approx(f.month_to_date + f.remaining)
    assert "weekday" in f.method and f.history_days == 28


def test_todays_partial_cost_is_not_counted_twice():
    as_of = date(2026, 3, 31)
    daily = {as_of - timedelta(days=i): 10.0 for i in range(1, 29)}
    daily[as_of] = 4.0
    f = forecast_month(daily, as_of)
    assert f.remaining == pytest.approx(6.0)
    assert f.total == pytest.approx(f.month_to_date + 6.0)


def test_no_history_says_unavailable():
    f = forecast_month({}, date(2026, 3, 1))
    assert f.remaining == 0 and "unavailable" in f.method


def test_missing_weekdays_fall_back_to_the_overall_mean():
    as_of = date(2026, 3, 30)  # Monday; history only Tuesday 24th
    f = forecast_month({date(2026, 3, 24): 50.0}, as_of)
    assert f.remaining == pytest.approx(100.0)  # Mon 30 and Tue 31
    assert "all-day average" in f.method
