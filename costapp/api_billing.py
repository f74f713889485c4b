"""REST API for bills (/api/v1/billing/imports/) and reconciliation (/api/v1/reconciliation/).

Finance staff and admins only (bills name every account and resource): IsAuthenticated plus
`access.sees_everything`. Reads are declarative; the import is a command: POST a file, get 202
and the job to poll (`/jobs/<id>/progress?format=json`). Money is exact, as strings.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from costapp import access, queries
from costapp.billing import service
from costapp.models import Cluster
from costapp.models.billing import BillingImport

E_FINANCE_ONLY = "Bills and reconciliation are for finance staff and administrators."
E_MONTH_REQUIRED = "month is required (YYYY-MM)"


class FinanceOrAdmin(BasePermission):
    """Finance group or admin (403 for team members and everyone else)."""

    message = E_FINANCE_ONLY

    def has_permission(self, request, view) -> bool:
        return access.sees_everything(request.user)


PERMISSIONS = [IsAuthenticated, FinanceOrAdmin]


class ImportSerializer(serializers.ModelSerializer):
    """One import as listed: file, period, provider, rows, Σ EffectiveCost, status, error."""

    default_cluster = serializers.CharField(source="default_cluster.name", default=None)
    total_effective_cost = serializers.DecimalField(max_digits=28, decimal_places=11)

    class Meta:
        model = BillingImport
        fields = ["id", "file_name", "sha256", "provider", "billing_account_id", "currency",
                  "billing_period_start", "billing_period_end", "default_cluster", "status",
                  "rows", "replaced_rows", "total_effective_cost", "error", "started_at",
                  "finished_at"]


class _NameField(serializers.SlugRelatedField):
    """A slug lookup that refuses NUL characters (PostgreSQL text cannot hold them: the query
    itself would fail with a 500) with the field's ordinary "does not exist" 400."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", ""))
        return super().to_internal_value(data)


class UploadSerializer(serializers.Serializer):
    """The import command: a FOCUS file and, optionally, the cluster of untagged charges."""

    file = serializers.FileField()
    cluster = _NameField(slug_field="name", queryset=Cluster.objects.all(), required=False,
                         allow_null=True)


class ImportListView(generics.ListAPIView):
    """Bill imports, newest first (filter: ?status=succeeded|failed|replaced|running).
    POST a file (multipart `file`, optional `cluster`) to import it: 202 with the job."""

    permission_classes = PERMISSIONS
    serializer_class = ImportSerializer
    filterset_fields = ["status", "provider", "currency"]

    def get_queryset(self):
        return BillingImport.objects.select_related("default_cluster").order_by("-started_at",
                                                                               "-pk")

    def get_parsers(self):
        if getattr(self, "request", None) is not None and self.request.method == "POST":
            return [MultiPartParser()]
        return super().get_parsers()

    @extend_schema(request={"multipart/form-data": UploadSerializer},
                   responses={202: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    def post(self, request):
        data = UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        f = data.validated_data["file"]
        spooled = service.spool_upload(f.chunks(), f.name)
        job = service.start_import_job(spooled, f.name, data.validated_data.get("cluster"),
                                       user=request.user)
        return Response({"job": job.pk, "status": job.status,
                         "progress_url": reverse("job-progress", args=[job.pk]) + "?format=json",
                         "page_url": reverse("job", args=[job.pk])},
                        status=status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    """One import with its totals by category and the commitment discounts used."""

    permission_classes = PERMISSIONS

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        imp = get_object_or_404(BillingImport.objects.select_related("default_cluster"), pk=pk)
        detail = service.import_detail(imp)
        return Response({**ImportSerializer(imp).data, **_strings(detail)})


def _strings(value):
    """Decimals as exact strings, recursively."""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if hasattr(value, "quantize"):
        return str(value)
    return value


class ReconciliationView(APIView):
    """Bill vs allocation for a month, per cluster, with the difference explained."""

    permission_classes = PERMISSIONS

    @extend_schema(
        parameters=[OpenApiParameter("month", str, required=True, description="YYYY-MM"),
                    OpenApiParameter("cluster", str, description="Cluster name; default all.")],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        try:
            raw = request.query_params.get("month")
            if not raw:
                raise queries.QueryError("month", E_MONTH_REQUIRED)
            month = queries.parse_month(raw)
            name = request.query_params.get("cluster")
            clusters = Cluster.objects.order_by("name")
            if name:
                clusters = clusters.filter(name=name)
                if not clusters.exists():
                    raise queries.QueryError("cluster",
                                             queries.E_UNKNOWN_CLUSTER.format(value=name))
        except queries.QueryError as exc:
            return Response({"detail": exc.message, "parameter": exc.parameter}, status=400)
        return Response({"month": f"{month:%Y-%m}",
                         "results": [service.reconciliation_report(c, month).as_dict()
                                     for c in clusters]})


urlpatterns = [
    path("api/v1/billing/imports/", ImportListView.as_view(), name="api-billing-imports"),
    path("api/v1/billing/imports/<int:pk>/", ImportDetailView.as_view(),
         name="api-billing-import"),
    path("api/v1/reconciliation/", ReconciliationView.as_view(), name="api-reconciliation"),
]
