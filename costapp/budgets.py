"""Budgets: what a scope cost so far, where it is heading, and the alerts that fire once.

Cost of a scope (per UTC day, in the clusters' currency):
- team / cost centre / namespace: the own cost (CPU + RAM + GPU) of its workload lines, plus the
  idle they take under the allocation policy's default idle policy (`separate` adds none).
  Shared namespaces and overhead are spread at query time by the pages and are not charged here;
- cluster: everything the cluster cost: workload lines, the `separate` idle lines and overhead.

Forecast: monthly budgets reuse costapp.forecast.forecast_month (the overview's). Weekly budgets
use `forecast_period` (pure, written before forecast.py existed; it also handles any period):
day-of-week aware. 1. Take the last `lookback` (28) allocated days up to `as_of`, also from the
previous period. 2. Weekday factor f_w = mean cost of weekday w ÷ mean of all days (1 where a
weekday was not seen). 3. Level L = mean of the last 7 days' cost ÷ their weekday factor.
4. Each remaining day d of the period is forecast as L × f_weekday(d). 5. Forecast = actual of the
complete days + Σ forecasts. `as_of` is the last complete day (yesterday, UTC): today's partial
lines are in `actual` for the thresholds but are forecast as a whole day.

Checks run after allocations (tasks.allocate_day → schedule_check, debounced), not on a timer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from costapp.models import AllocationLine, AllocationPolicy, Budget, BudgetAlert, ClusterDay, Team
from costapp.models.budgets import period_bounds

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 28
LEVEL_DAYS = 7
CHECK_CACHE_KEY = "costapp:budgets:check-scheduled"
IDLE_COLUMN = {"share-by-node": "idle_by_node", "share-by-cluster": "idle_by_cluster"}


# --- forecast (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """A period's cost forecast and how it was computed.

    actual: Σ cost of the period's complete days up to `as_of`; projected: Σ forecast of the
    remaining days; total = actual + projected. weekday_factors: Monday..Sunday multipliers;
    level: deseasonalised cost per day; history_days: days the estimate used.
    """

    period_start: date
    period_end: date
    as_of: date
    actual: float
    projected: float
    total: float
    level: float
    weekday_factors: tuple[float, ...]
    history_days: int
    days: list[tuple[date, float, str]] = field(default_factory=list)

    # The names costapp.forecast.Forecast uses, so callers can take either.
    @property
    def month_to_date(self) -> float:
        return self.actual

    @property
    def remaining(self) -> float:
        return self.projected

    @property
    def method(self) -> str:
        if self.as_of >= self.period_end - timedelta(days=1):
            return "the period is complete: the forecast is the actual cost"
        if not self.history_days:
            return "no allocated history yet: nothing is projected"
        names = "Mon Tue Wed Thu Fri Sat Sun".split()
        factors = ", ".join(f"{n} ×{f:.2f}" for n, f in zip(names, self.weekday_factors,
                                                            strict=True))
        return (f"actual of complete days to {self.as_of} + each remaining day forecast as "
                f"level {self.level:.2f}/day × its weekday factor ({factors}); level and "
                f"factors from the last {self.history_days} allocated days")


def forecast_period(daily: Mapping[date, float], start: date, end: date, as_of: date,
                    lookback: int = LOOKBACK_DAYS) -> Forecast:
    """Forecast the cost of [start, end) from daily costs observed up to `as_of` (inclusive).

    `daily` maps each *allocated* day to its cost (0 for an allocated day with no cost); days
    missing from it are unobserved and never counted as zero.
    """
    history = sorted((d, float(v)) for d, v in daily.items()
                     if as_of - timedelta(days=lookback) < d <= as_of)
    actual = sum(float(v) for d, v in daily.items() if start <= d <= as_of and d < end)
    if history:
        overall = sum(v for _, v in history) / len(history)
        by_wd: dict[int, list[float]] = {}
        for d, v in history:
            by_wd.setdefault(d.weekday(), []).append(v)
        factors = tuple(
            (sum(by_wd[w]) / len(by_wd[w]) / overall) if overall > 0 and w in by_wd else 1.0
            for w in range(7)
        )
        recent = [(d, v) for d, v in history[-LEVEL_DAYS:] if factors[d.weekday()] > 0]
        level = (sum(v / factors[d.weekday()] for d, v in recent) / len(recent)
                 if recent else overall)
    else:
        factors, level = (1.0,) * 7, 0.0
    days: list[tuple[date, float, str]] = []
    projected = 0.0
    d = start
    while d < end:
        if d <= as_of:
            days.append((d, float(daily.get(d, 0.0)), "actual"))
        else:
            value = level * factors[d.weekday()]
            projected += value
            days.append((d, value, "forecast"))
        d += timedelta(days=1)
    return Forecast(start, end, as_of, actual, projected, actual + projected, level, factors,
                    len(history), days)


# --- the cost of a scope -----------------------------------------------------------------------


def scope_lines(budget: Budget):
    """AllocationLine queryset of a budget's scope (see the module docstring)."""
    lines = AllocationLine.objects.all()
    if budget.scope == Budget.Scope.CLUSTER:
        return lines.filter(cluster_id=budget.cluster_id).filter(
            Q(kind=AllocationLine.Kind.WORKLOAD) | Q(kind=AllocationLine.Kind.OVERHEAD)
            | Q(kind=AllocationLine.Kind.IDLE, idle_policy="separate")
        )
    lines = lines.filter(kind=AllocationLine.Kind.WORKLOAD)
    if budget.scope == Budget.Scope.TEAM:
        return lines.filter(team=budget.team.name)
    if budget.scope == Budget.Scope.COST_CENTRE:
        names = Team.objects.filter(cost_centre_id=budget.cost_centre_id).values("name")
        return lines.filter(team__in=names)
    lines = lines.filter(namespace=budget.namespace)
    return lines.filter(cluster_id=budget.cluster_id) if budget.cluster_id else lines


def _cost_expression():
    cost = F("cpu_cost") + F("ram_cost") + F("gpu_cost") + F("overhead_cost")
    column = IDLE_COLUMN.get(AllocationPolicy.current().idle)
    return cost + F(column) if column else cost


def daily_costs(budget: Budget, start: date, end: date) -> dict[date, float]:
    """Cost of the budget's scope per allocated day in [start, end); 0 for allocated days
    without lines in the scope, absent for days never allocated."""
    rows = (scope_lines(budget).filter(day__gte=start, day__lt=end).values("day")
            .annotate(cost=Sum(_cost_expression())))
    out = {r["day"]: float(r["cost"] or 0) for r in rows}
    allocated = ClusterDay.objects.filter(day__gte=start, day__lt=end, allocated_at__isnull=False)
    if budget.cluster_id:
        allocated = allocated.filter(cluster_id=budget.cluster_id)
    for day in allocated.values_list("day", flat=True).distinct():
        out.setdefault(day, 0.0)
    return out


@dataclass(frozen=True)
class BudgetStatus:
    """Where a budget stands in one period: actual so far (all lines, today's partial ones too),
    the forecast to the period's end, and the share of the amount each represents."""

    budget: Budget
    period_start: date
    period_end: date
    actual: Decimal
    forecast: Forecast

    @property
    def forecast_total(self) -> Decimal:
        return max(self.actual, Decimal(str(round(self.forecast.total, 2))))

    @property
    def actual_percent(self) -> float:
        return float(self.actual / self.budget.amount * 100) if self.budget.amount else 0.0

    @property
    def forecast_percent(self) -> float:
        return float(self.forecast_total / self.budget.amount * 100) if self.budget.amount else 0.0


def today() -> date:
    return timezone.now().date()


def budget_status(budget: Budget, day: date | None = None, period: date | None = None,
                  ) -> BudgetStatus:
    """Actual and forecast of the budget's period containing `day` (default today, UTC).

    Monthly budgets use costapp.forecast.forecast_month (the overview's forecast, so both pages
    agree); weekly budgets use `forecast_period` above. With `period` (any day of a period),
    that period is shown instead, and a period already over forecasts exactly its actual.
    """
    from costapp.forecast import forecast_month

    reference = day or today()
    complete = period is not None and reference >= budget.period_bounds(period)[1]
    if period is not None:
        day = min(reference, budget.period_bounds(period)[1] - timedelta(days=1))
    day = day or today()
    start, end = budget.period_bounds(day)
    as_of = min(day - timedelta(days=1), end - timedelta(days=1))
    daily = daily_costs(budget, min(start, as_of - timedelta(days=LOOKBACK_DAYS)), end)
    actual = sum((Decimal(str(v)) for d, v in daily.items() if start <= d <= day),
                 Decimal(0)).quantize(Decimal("0.01"))
    if complete:
        forecast = forecast_period(daily, start, end, end - timedelta(days=1))
    elif budget.period == Budget.Period.MONTHLY:
        forecast = forecast_month(daily, day)
    else:
        forecast = forecast_period(daily, start, end, as_of)
    return BudgetStatus(budget, start, end, actual, forecast)


def budget_history(budget: Budget, periods: int = 6, day: date | None = None) -> list[dict]:
    """Actual cost of the last `periods` complete periods before the current one, newest first."""
    day = day or today()
    start, _ = budget.period_bounds(day)
    out = []
    for _ in range(periods):
        start, end = period_bounds(budget.period, start - timedelta(days=1))
        total = scope_lines(budget).filter(day__gte=start, day__lt=end).aggregate(
            s=Sum(_cost_expression()))["s"] or Decimal(0)
        out.append({"period_start": start, "period_end": end, "actual": total,
                    "percent": float(total / budget.amount * 100) if budget.amount else 0.0,
                    "over": total > budget.amount})
    return out


def team_forecast(team: Team, month_start: date, day: date | None = None):
    """A team's forecast to the end of a calendar month, with the budgets' cost definition
    (costapp.forecast.forecast_month on the team's daily cost)."""
    probe = Budget(scope=Budget.Scope.TEAM, team=team, period=Budget.Period.MONTHLY,
                   amount=Decimal(1))
    return budget_status(probe, day, period=month_start).forecast


# --- checking ----------------------------------------------------------------------------------


def schedule_check() -> bool:
    """Enqueue one budget check for a burst of allocations (debounced through the cache).

    The first call schedules `check_budgets` COSTAPP_BUDGET_CHECK_DELAY seconds later and holds
    a cache key a little shorter than that delay; calls while the key lives do nothing, and
    their allocations are already committed when the check runs. Returns True if it scheduled.
    """
    from costapp import tasks

    delay = int(getattr(settings, "COSTAPP_BUDGET_CHECK_DELAY", 60))
    if not cache.add(CHECK_CACHE_KEY, 1, timeout=max(1, delay - 5)):
        return False
    tasks.check_budgets.apply_async(countdown=delay)
    return True


def check_budget(budget: Budget, day: date | None = None) -> list[BudgetAlert]:
    """Create the alerts of every threshold this period has crossed; each fires once per period.

    New alerts are delivered (e-mail, webhook) by a task enqueued after commit.
    """
    status = budget_status(budget, day)
    new: list[BudgetAlert] = []
    for threshold in budget.thresholds or []:
        basis = threshold.get("basis", "actual")
        value = status.actual if basis == "actual" else status.forecast_total
        if value < budget.threshold_amount(threshold["percent"]):
            continue
        with transaction.atomic():
            alert, created = BudgetAlert.objects.get_or_create(
                budget=budget, period_start=status.period_start,
                threshold=Decimal(str(threshold["percent"])), basis=basis,
                defaults=dict(period_end=status.period_end, value=value, actual=status.actual,
                              forecast=status.forecast_total, amount=budget.amount),
            )
            if created:
                new.append(alert)
                transaction.on_commit(lambda pk=alert.pk: _deliver(pk))
    return new


def _deliver(alert_id: int) -> None:
    from costapp import tasks

    tasks.deliver_budget_alert.delay(alert_id)


def check_budgets_now(day: date | None = None) -> int:
    """Check every active budget; returns the number of new alerts."""
    n = 0
    for budget in Budget.objects.filter(active=True).select_related("team", "cost_centre"):
        try:
            n += len(check_budget(budget, day))
        except Exception:  # one broken budget must not stop the others
            log.exception("budget %s check failed", budget.pk)
    return n


__all__ = [
    "BudgetStatus", "Forecast", "budget_history", "budget_status", "check_budget",
    "check_budgets_now", "daily_costs", "forecast_period", "schedule_check", "scope_lines",
    "team_forecast",
]
