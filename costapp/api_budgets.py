"""REST API for budgets, forecasts and ownership coverage (/api/v1/...).

Explicit input and output serializers; IsAuthenticated plus costapp.access rules: finance and
admins see and create every budget; a team member sees and creates budgets only for their teams
(team scope). The webhook secret is write-only: responses say whether one is set, never what.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from costapp import access, budgets, notify, ownership_rules
from costapp.models import Budget, Cluster, CostCentre, Team
from costapp.models.budgets import period_bounds

E_TEAM_ONLY = "Team members may only manage budgets of their own teams (scope team)."
E_MONTH = "month must be YYYY-MM"


class ThresholdSerializer(serializers.Serializer):
    percent = serializers.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal(1),
                                       max_value=Decimal(1000))
    basis = serializers.ChoiceField(choices=["actual", "forecast"])

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return {"percent": float(value["percent"]), "basis": value["basis"]}


class BudgetInputSerializer(serializers.Serializer):
    """What a client sends to create or change a budget."""

    name = serializers.CharField(max_length=200)
    scope = serializers.ChoiceField(choices=Budget.Scope.choices)
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all(),
                                        required=False, allow_null=True)
    cost_centre = serializers.SlugRelatedField(slug_field="code",
                                               queryset=CostCentre.objects.all(),
                                               required=False, allow_null=True)
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all(),
                                           required=False, allow_null=True)
    namespace = serializers.CharField(max_length=253, required=False, allow_blank=True)
    period = serializers.ChoiceField(choices=Budget.Period.choices, default="monthly")
    amount = serializers.DecimalField(max_digits=20, decimal_places=2,
                                      min_value=Decimal("0.01"))
    thresholds = ThresholdSerializer(many=True, required=False)
    emails = serializers.ListField(child=serializers.EmailField(), required=False)
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    webhook_secret = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                           max_length=500)
    webhook_secret_env = serializers.RegexField(r"^[A-Z_][A-Z0-9_]*$", required=False,
                                                allow_blank=True, max_length=100)
    active = serializers.BooleanField(default=True)

    def validate(self, data):
        scope = data.get("scope", getattr(self.instance, "scope", None))
        merged = {f: data.get(f, getattr(self.instance, f, None))
                  for f in ("team", "cost_centre", "cluster", "namespace")}
        need = {"team": merged["team"], "cost_centre": merged["cost_centre"],
                "namespace": merged["namespace"], "cluster": merged["cluster"]}[scope]
        if not need:
            raise serializers.ValidationError({scope: f"a {scope} budget needs its {scope}"})
        return data


class BudgetOutputSerializer(serializers.Serializer):
    """A budget as the API shows it, with where it stands in the current period."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    scope = serializers.CharField()
    scope_label = serializers.CharField()
    team = serializers.CharField(source="team.name", default=None)
    cost_centre = serializers.CharField(source="cost_centre.code", default=None)
    cluster = serializers.CharField(source="cluster.name", default=None)
    namespace = serializers.CharField()
    period = serializers.CharField()
    amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    thresholds = serializers.JSONField()
    emails = serializers.JSONField()
    webhook_url = serializers.CharField()
    webhook_secret_set = serializers.SerializerMethodField()
    active = serializers.BooleanField()
    status = serializers.SerializerMethodField()
    alerts = serializers.SerializerMethodField()

    def get_webhook_secret_set(self, obj) -> bool:
        return bool(obj.webhook_secret_encrypted or obj.webhook_secret_env)

    def get_status(self, obj) -> dict:
        st = budgets.budget_status(obj, self.context.get("day"))
        return {
            "period_start": st.period_start, "period_end": st.period_end,
            "actual": f"{st.actual:.2f}", "forecast": f"{st.forecast_total:.2f}",
            "actual_percent": round(st.actual_percent, 1),
            "forecast_percent": round(st.forecast_percent, 1),
            "forecast_method": st.forecast.method,
        }

    def get_alerts(self, obj) -> list[dict]:
        return [{"period_start": a.period_start, "threshold": str(a.threshold),
                 "basis": a.basis, "value": f"{a.value:.2f}", "created_at": a.created_at,
                 "email_sent": a.email_sent_at is not None,
                 "webhook_delivered": a.webhook_delivered_at is not None}
                for a in obj.alerts.all()[:20]]


def visible_budgets(user):
    qs = Budget.objects.select_related("team", "cost_centre", "cluster").order_by("name", "pk")
    teams = access.visible_teams(user)
    if teams is None:
        return qs
    return qs.filter(scope=Budget.Scope.TEAM, team__name__in=teams)


def _check_may_manage(user, data: dict) -> None:
    teams = access.visible_teams(user)
    if teams is None:
        return
    if data.get("scope") != Budget.Scope.TEAM or not data.get("team") \
            or data["team"].name not in teams:
        raise PermissionDenied(E_TEAM_ONLY)


def _save(budget: Budget, data: dict) -> Budget:
    secret = data.pop("webhook_secret", None)
    for key, value in data.items():
        setattr(budget, key, value if value is not None or key in
                ("team", "cost_centre", "cluster") else "")
    if secret is not None:
        budget.webhook_secret_encrypted = notify.encrypt_secret(secret)
    # Fields outside the scope are cleared so a budget has one meaning.
    if budget.scope != Budget.Scope.TEAM:
        budget.team = None
    if budget.scope != Budget.Scope.COST_CENTRE:
        budget.cost_centre = None
    if budget.scope not in (Budget.Scope.CLUSTER, Budget.Scope.NAMESPACE):
        budget.cluster = None
    if budget.scope != Budget.Scope.NAMESPACE:
        budget.namespace = ""
    budget.full_clean(exclude=["created_by"])
    budget.save()
    return budget


class BudgetListCreate(APIView):
    """GET: the budgets you may see, with actual and forecast; POST: create one."""

    permission_classes = [IsAuthenticated, access.HasCostAccess]

    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(visible_budgets(request.user), request, view=self)
        data = BudgetOutputSerializer(page, many=True).data
        return paginator.get_paginated_response(data)

    def post(self, request):
        ser = BudgetInputSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        _check_may_manage(request.user, data)
        with transaction.atomic():
            budget = _save(Budget(created_by=request.user), data)
        transaction.on_commit(budgets.schedule_check)
        return Response(BudgetOutputSerializer(budget).data, status=status.HTTP_201_CREATED)


class BudgetDetail(APIView):
    """GET, PATCH or DELETE one budget you may manage."""

    permission_classes = [IsAuthenticated, access.HasCostAccess]

    def _get(self, request, pk):
        return get_object_or_404(visible_budgets(request.user), pk=pk)

    def get(self, request, pk):
        return Response(BudgetOutputSerializer(self._get(request, pk)).data)

    def patch(self, request, pk):
        budget = self._get(request, pk)
        ser = BudgetInputSerializer(budget, data=request.data, partial=True)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        merged = {"scope": data.get("scope", budget.scope),
                  "team": data.get("team", budget.team)}
        _check_may_manage(request.user, merged)
        with transaction.atomic():
            budget = _save(budget, data)
        return Response(BudgetOutputSerializer(budget).data)

    def delete(self, request, pk):
        budget = self._get(request, pk)
        _check_may_manage(request.user, {"scope": budget.scope, "team": budget.team})
        budget.delete()
        # 204 has no body, so no Content-Type either (as the schema documents it).
        response = HttpResponse(status=status.HTTP_204_NO_CONTENT)
        del response["Content-Type"]
        return response


def parse_month(value: str | None) -> date:
    if not value:
        return budgets.today().replace(day=1)
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise serializers.ValidationError({"month": E_MONTH}) from None


class TeamForecast(APIView):
    """GET ?month=YYYY-MM&team=NAME: a team's cost to date and forecast to month end, with the
    method. Without `team`: every team you may see."""

    permission_classes = [IsAuthenticated, access.HasCostAccess]

    def get(self, request):
        month = parse_month(request.query_params.get("month"))
        teams = Team.objects.all()
        visible = access.visible_teams(request.user)
        if visible is not None:
            teams = teams.filter(name__in=visible)
        if name := request.query_params.get("team"):
            teams = teams.filter(name=name)
            if not teams.exists():
                raise PermissionDenied("You may not see this team, or it does not exist.")
        end = period_bounds("monthly", month)[1]
        day = min(budgets.today(), end - timedelta(days=1))
        out = []
        for team in teams:
            fc = budgets.team_forecast(team, month)
            out.append({"team": team.name, "month": month.strftime("%Y-%m"), "as_of": day,
                        "month_to_date": round(fc.month_to_date, 2),
                        "remaining": round(fc.remaining, 2), "forecast": round(fc.total, 2),
                        "history_days": fc.history_days, "method": fc.method})
        return Response({"results": out})


class OwnershipCoverage(APIView):
    """GET ?cluster=NAME&month=YYYY-MM: share of cost that reached a named team, and the top
    unowned namespaces and workloads (finance and admins only: it names every namespace)."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        if not access.sees_everything(request.user):
            raise PermissionDenied(access.E_NO_ACCESS)
        month = parse_month(request.query_params.get("month"))
        cluster = None
        if name := request.query_params.get("cluster"):
            cluster = get_object_or_404(Cluster, name=name)
        cov = ownership_rules.coverage(cluster, month, period_bounds("monthly", month)[1])
        return Response({
            "cluster": cluster.name if cluster else None, "month": month.strftime("%Y-%m"),
            "total": f"{cov.total:.2f}", "owned": f"{cov.owned:.2f}",
            "unowned": f"{cov.unowned:.2f}", "share": round(cov.share, 4),
            "by_team": [{"team": t, "cost": f"{c:.2f}"} for t, c in cov.by_team],
            "unowned_namespaces": [{"cluster": r["cluster__name"], "namespace": r["namespace"],
                                    "cost": f"{r['cost']:.2f}"} for r in cov.unowned_namespaces],
            "unowned_workloads": [{"cluster": r["cluster__name"], "namespace": r["namespace"],
                                   "kind": r["controller_kind"], "name": r["controller"],
                                   "cost": f"{r['cost']:.2f}"} for r in cov.unowned_workloads],
        })


urlpatterns = [
    path("api/v1/budgets/", BudgetListCreate.as_view(), name="api-budgets"),
    path("api/v1/budgets/<int:pk>/", BudgetDetail.as_view(), name="api-budget"),
    path("api/v1/forecast/", TeamForecast.as_view(), name="api-forecast"),
    path("api/v1/ownership/coverage/", OwnershipCoverage.as_view(), name="api-ownership-coverage"),
]
