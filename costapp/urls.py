"""URL map: pages, the versioned API, the schema, admin and login."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import DefaultRouter

from costapp import api, views
from costapp.auth import RateLimitedLoginView

api_router = DefaultRouter(trailing_slash=True)
api_router.include_root_view = False
api_router.register("teams", api.TeamViewSet, basename="api-team")
api_router.register("clusters", api.ClusterViewSet, basename="api-cluster")

urlpatterns = [
    path("", views.overview, name="overview"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Cost pages, API v1, schema and docs (costapp.views, costapp.api).
    path("explorer/", views.explorer, name="explorer"),
    path("teams/", views.team_list, name="teams"),
    path("teams/<slug:name>/", views.team_detail, name="team"),
    path("node-pools/", views.node_pools, name="node-pools"),
    path("clusters/", views.cluster_list, name="clusters"),
    path("clusters/<slug:name>/", views.cluster_detail, name="cluster"),
    path("chargeback/", views.chargeback_page, name="chargeback"),
    path("api-token/", views.api_token, name="api-token"),
    path("api-docs/", views.api_docs, name="api-docs"),
    path("api/v1/", include(api_router.urls)),
    path("api/v1/allocations/", api.AllocationsView.as_view(), name="api-allocations"),
    path("api/v1/chargeback/", api.ChargebackView.as_view(), name="api-chargeback"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]),
         name="api-schema"),
    # Ownership and budgets: pages and /api/v1/{budgets,forecast,ownership/coverage}/.
    path("", include("costapp.views_ownership")),
    path("", include("costapp.api_budgets")),
    # Bills, reconciliation and jobs: /billing/..., /jobs/<id>/, /api/v1/{billing,reconciliation}/.
    path("", include("costapp.views_sources")),  # /billing/sources/...
    path("", include("costapp.views_billing")),
    path("", include("costapp.views_jobs")),
    path("", include("costapp.api_billing")),
    path("", include("costapp.views_planner")),
]
handler404 = "costapp.views.not_found"
