"""REST API v1 (DRF): allocations, chargeback, teams, clusters. Token or session auth.

Views hold no business rules: they parse parameters into a query (``costapp.queries``), ask
``costapp.access`` what the caller may see, and render JSON or CSV of the same lines.
"""

from __future__ import annotations

import json
import math

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from costapp import chargeback, csvsafe, queries
from costapp.access import HasCostAccess, visible_teams
from costapp.models import Cluster, Team

__all__ = ["AllocationsView", "ChargebackView", "ClusterViewSet", "TeamViewSet", "csv_response"]


class CSVRenderer(BaseRenderer):
    """Chosen with ``format=csv``; views return the CSV themselves, errors come out as text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, (str, bytes)):
            return data
        return json.dumps(data)


class Pagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 5000


def csv_response(header, rows, filename: str) -> HttpResponse:
    """A CSV download, every text cell neutralised against formula injection."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csvsafe.write_rows(response, header, rows)
    return response


def _num(v):
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


def _bad(exc: queries.QueryError) -> Response:
    return Response({"detail": exc.message, "parameter": exc.parameter}, status=400)


def _json_line(rec: dict) -> dict:
    out = {}
    for k, v in rec.items():
        if k in ("window_start", "window_end"):
            out[k] = queries._iso(v)
        else:
            out[k] = _num(v)
    return out


P = OpenApiParameter
ALLOCATION_PARAMS = [
    P("window", str, description="today, 7d, 30d, month, lastmonth, or start,end (ISO 8601 "
      "dates, end inclusive). Default month."),
    P("aggregate", str, description="Comma list of keys: cluster, node_pool, capacity_type, "
      "namespace, controller_kind, controller, team, label:<key>. node and pod are not stored "
      "per day (400). Default namespace."),
    P("step", str, enum=list(queries.STEPS), description="Default window."),
    P("idle", str, enum=list(queries.IDLE_POLICIES), description="Default: the policy's."),
    P("shared_namespaces", str, description="Comma list; default: the policy's. Empty for none."),
    P("shared_split", str, enum=list(queries.SPLITS), description="Default: the policy's."),
    P("cluster", str, description="Filter: cluster name(s), comma list."),
    P("namespace", str, description="Filter: namespace(s), comma list."),
    P("team", str, description="Filter: team(s), comma list."),
    P("node_pool", str, description="Filter: node pool(s)."),
    P("capacity_type", str, description="Filter: capacity type(s)."),
    P("controller_kind", str, description="Filter: controller kind(s)."),
    P("controller", str, description="Filter: controller(s)."),
    P("label:<key>", str, description="Filter on a stored label key, e.g. label:app=web."),
    P("format", str, enum=["json", "csv"], description="csv returns every line as CSV."),
    P("page", int), P("page_size", int, description="Lines per page (max 5000)."),
]


class AllocationsView(APIView):
    """Allocation lines for a window, aggregated and stepped, with totals (same as the pages)."""

    permission_classes = [HasCostAccess]
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=ALLOCATION_PARAMS,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
        description="Lines carry the engine's result fields (kind, the keys, window_start, "
        "window_end, quantities, cpu/ram/gpu/idle/shared/total cost, efficiency) plus currency; "
        "`totals` sums every line of the answer, not only this page.",
    )
    def get(self, request):
        try:
            q = queries.AllocationQuery.from_params(request.query_params,
                                                    teams=visible_teams(request.user))
            answer = queries.run(q)
        except queries.QueryError as exc:
            return _bad(exc)
        if request.accepted_renderer.format == "csv":
            return csv_response(answer.header(), answer.rows(), "allocations.csv")
        paginator = Pagination()
        page = paginator.paginate_queryset(range(len(answer)), request, view=self)
        lo, hi = (page[0], page[-1] + 1) if page else (0, 0)
        body = {
            "window": {"start": queries._iso(q.start), "end": queries._iso(q.end)},
            "aggregate": list(q.keys), "step": q.step, "idle": q.idle,
            "shared_namespaces": list(q.shared_namespaces), "shared_split": q.shared_split,
            "currency": answer.currency,
            "totals": {k: _num(v) for k, v in answer.summary().items()},
            "results": [_json_line(r) for r in answer.records(lo, hi)],
        }
        results = body.pop("results")
        return Response({"count": paginator.page.paginator.count,
                         "next": paginator.get_next_link(),
                         "previous": paginator.get_previous_link(), **body, "results": results})


class ChargebackView(APIView):
    """The monthly chargeback statement per team, money to the cent (largest remainder)."""

    permission_classes = [HasCostAccess]
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[P("month", str, required=True, description="YYYY-MM"),
                    P("team", str, description="One team only."),
                    P("cluster", str, description="Cluster name(s), comma list."),
                    P("format", str, enum=["json", "csv"])],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        try:
            month = queries.parse_month(request.query_params.get("month", ""))
            clusters = queries._csv_list(request.query_params.get("cluster"))
            known = set(Cluster.objects.filter(name__in=clusters).values_list("name", flat=True))
            for c in clusters:
                if c not in known:
                    raise queries.QueryError("cluster", queries.E_UNKNOWN_CLUSTER.format(value=c))
        except queries.QueryError as exc:
            return _bad(exc)
        st = chargeback.statement(month, visible_teams(request.user),
                                  request.query_params.get("team") or None, clusters)
        if request.accepted_renderer.format == "csv":
            return csv_response(chargeback.COLUMNS, st.rows(),
                                f"chargeback-{month:%Y-%m}.csv")
        money = lambda d: {k: (str(v) if hasattr(v, "quantize") else v) for k, v in d.items()}  # noqa: E731
        return Response({"month": f"{month:%Y-%m}", "allocation_method": st.method,
                         "teams": [money(t) for t in st.teams],
                         "clusters": [money(c) for c in st.clusters],
                         "lines": [money(line) for line in st.lines]})


class TeamSerializer(serializers.ModelSerializer):
    cost_centre = serializers.CharField(source="cost_centre.code", default="", read_only=True)

    class Meta:
        model = Team
        fields = ["name", "display_name", "cost_centre"]


class ClusterSerializer(serializers.ModelSerializer):
    """Collector status. Never credentials (kubeconfig stays out)."""

    nodes = serializers.IntegerField(source="node_count")
    pods = serializers.IntegerField(source="pod_count")

    class Meta:
        model = Cluster
        fields = ["name", "provider", "region", "currency", "health", "last_sample_at",
                  "last_attempt_at", "last_error", "nodes", "pods", "usage_available"]


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    """Teams the caller may see (all for finance and admins, their own for members)."""

    serializer_class = TeamSerializer
    permission_classes = [HasCostAccess]
    lookup_field = "name"
    filterset_fields = ["name"]

    def get_queryset(self):
        qs = Team.objects.select_related("cost_centre").order_by("name")
        teams = visible_teams(self.request.user)
        return qs if teams is None else qs.filter(name__in=teams)


class ClusterViewSet(viewsets.ReadOnlyModelViewSet):
    """Clusters and the health of their collectors."""

    serializer_class = ClusterSerializer
    permission_classes = [HasCostAccess]
    queryset = Cluster.objects.order_by("name")
    lookup_field = "name"
    filterset_fields = ["name", "health"]


