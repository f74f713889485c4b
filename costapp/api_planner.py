"""`GET /api/v1/recommendations/`: the capacity plan of every pool, with optional what-if inputs.

Query parameters: `cluster` (name; all clusters when absent), `node_pool`, the what-if inputs
of the planner page (`discount` %, `term` years, `spot_share` %, `max_on_demand_nodes`,
`serverless` on|off), `series` (true: include the hourly series). Any other parameter, or a bad
value, is a 400 whose body names the parameter.
"""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from costapp import planner
from costapp.models import Cluster, Recommendation

E_UNKNOWN_PARAM = "unknown parameter (allowed: {allowed})"
E_NO_CLUSTER = "no cluster named {name!r}"
E_BAD_BOOL = "must be true or false, got {value!r}"
ALLOWED = ("cluster", "node_pool", "series", "format", *planner.WHAT_IF_PARAMS)


def _bad(param: str, problem: str) -> Response:
    return Response({"detail": f"{param}: {problem}", "parameter": param}, status=400)


class RecommendationsView(APIView):
    """Latest recommendation per cluster × node pool, re-planned with any what-if inputs."""

    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        params = request.query_params
        for name in params:
            if name not in ALLOWED:
                return _bad(name, E_UNKNOWN_PARAM.format(allowed=", ".join(ALLOWED)))
        try:
            what_if = planner.parse_what_if(params)
        except planner.PlannerInputError as exc:
            return _bad(exc.param, str(exc).split(": ", 1)[1])
        raw_series = params.get("series", "").strip().lower()
        if raw_series not in ("", "true", "false", "1", "0"):
            return _bad("series", E_BAD_BOOL.format(value=params.get("series")))
        recs = Recommendation.objects.select_related("cluster")
        if "cluster" in params:
            name = params["cluster"].strip()
            if not Cluster.objects.filter(name=name).exists():
                return _bad("cluster", E_NO_CLUSTER.format(name=name))
            recs = recs.filter(cluster__name=name)
        if "node_pool" in params:
            recs = recs.filter(node_pool=params["node_pool"])
        with_series = raw_series in ("true", "1")
        results = [
            {"id": rec.pk, **planner.public(planner.evaluate(rec, what_if), series=with_series)}
            for rec in recs
        ]
        return Response({"count": len(results), "results": results})
