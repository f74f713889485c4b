"""Capacity planner service, pages and API on a small hand-built cluster."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from costapp import planner
from costapp.models import (
    CatalogPrice,
    Cluster,
    ClusterHour,
    Namespace,
    Node,
    NodeHour,
    Pod,
    PodHour,
    PoolPlanSettings,
    Recommendation,
)

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # the worker plans up to now
M5_2XL_ON_DEMAND = 0.384  # AWS us-east-1 catalog (aws_us-east-1_catalog_joined.csv)

# (name, namespace, kind, controller, cpu, ram GiB, local storage, annotations)
PODS = [
    ("web-1", "shop", "Deployment", "web", 1.0, 2.0, False, {}),  # 2 replicas: eligible
    ("web-2", "shop", "Deployment", "web", 1.0, 2.0, False, {}),
    ("db-0", "shop", "StatefulSet", "db", 1.0, 24.0, False, {}),  # never eligible
    ("etl-x", "shop", "Job", "etl", 2.0, 2.0, False, {}),  # Job: eligible
    ("solo", "shop", "Deployment", "solo", 0.5, 1.0, False,  # 1 replica, opted in
     {planner.ANNOTATION: "true"}),
    ("opt-1", "shop", "Deployment", "opt", 0.25, 0.5, False,  # 2 replicas, opted out
     {planner.ANNOTATION: "false"}),
    ("opt-2", "shop", "Deployment", "opt", 0.25, 0.5, False, {planner.ANNOTATION: "false"}),
    ("b-1", "batch-off", "Deployment", "b", 0.5, 1.0, False, {}),  # namespace opts out
    ("b-2", "batch-off", "Deployment", "b", 0.5, 1.0, False, {}),
    ("b-in", "batch-off", "Deployment", "bin", 0.5, 0.5, False,  # pod annotation beats namespace
     {planner.ANNOTATION: "True"}),
    ("scratch", "shop", "Job", "scratch", 1.0, 1.0, True, {}),  # local storage: not eligible
]
# Per hour: CPU 8.5 cores, RAM 35.5 GiB → 8.875 units of (1 vCPU + 4 GiB): memory binds.
# Eligible: CPU 2 + 2 + 0.5 + 0.5 = 5.0, RAM 4 + 2 + 1 + 0.5 = 7.5 GiB → 1.875: CPU binds, 5.0.
EXPECTED_DEMAND = 35.5 / 4
EXPECTED_ELIGIBLE = 5.0


def build_cluster(name="shop", days=10, pool="general", itype="m5.2xlarge", cores=8.0,
                  ram=32.0, gpus=0.0, nodes=2, currency="USD", pods=PODS, node_cost=0.384):
    """A cluster with `nodes` nodes in one pool and the pods above running every hour."""
    cluster = Cluster.objects.create(name=name, provider="aws", region="us-east-1",
                                     currency=currency)
    start = END - timedelta(days=days)
    Namespace.objects.create(cluster=cluster, name="shop", last_seen=END)
    Namespace.objects.create(cluster=cluster, name="batch-off", last_seen=END,
                             annotations={planner.ANNOTATION: "false"})
    node_objs = [
        Node.objects.create(cluster=cluster, name=f"{name}-n{i}", instance_type=itype,
                            node_pool=pool, region="us-east-1", first_seen=start, last_seen=END)
        for i in range(nodes)
    ]
    pod_objs = [
        Pod.objects.create(cluster=cluster, namespace=ns, name=pname, uid=f"{name}-{pname}",
                           controller_kind=kind, controller=ctrl, annotations=ann,
                           has_local_storage=local, first_seen=start, last_seen=END)
        for pname, ns, kind, ctrl, _, _, local, ann in pods
    ]
    hours = [start + timedelta(hours=h) for h in range(days * 24)]
    nh, ph, ch = [], [], []
    for hour in hours:
        ch.append(ClusterHour(cluster=cluster, hour_start=hour, covered_seconds=3600, samples=60))
        for node in node_objs:
            nh.append(NodeHour(cluster=cluster, node=node, hour_start=hour, seconds=3600,
                               cpu_cores=cores, ram_gib=ram, gpus=gpus, instance_type=itype,
                               node_pool=pool, capacity_type="on-demand",
                               cost=Decimal(str(node_cost))))
        for i, (pod, spec) in enumerate(zip(pod_objs, pods, strict=True)):
            cpu, mem = spec[4], spec[5]
            ph.append(PodHour(cluster=cluster, pod=pod, node=node_objs[i % nodes],
                              hour_start=hour, seconds=3600, usage_seconds=3600,
                              cpu_request_sum=cpu * 3600, cpu_alloc_sum=cpu * 3600,
                              ram_request_sum=mem * 3600, ram_alloc_sum=mem * 3600,
                              gpu_request_sum=(gpus * 3600 if i == 0 else 0)))
    ClusterHour.objects.bulk_create(ch)
    NodeHour.objects.bulk_create(nh)
    PodHour.objects.bulk_create(ph)
    return cluster


# ------------------------------------------------------------------ demand


@pytest.mark.django_db
def test_demand_is_the_binding_resource_in_pool_units_with_spot_share_from_workloads():
    cluster = build_cluster(days=2)
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=2), END)

    shape, demand = shapes["general"], demands["general"]
    assert shape.instance_type == "m5.2xlarge"
    assert shape.units_per_node == 8 and shape.gib_per_unit == 4 and shape.max_nodes == 2
    assert demand.demand.size == 48
    assert np.allclose(demand.demand, EXPECTED_DEMAND)
    assert demand.binding == {"memory": 48}
    assert np.allclose(demand.spot_eligible, EXPECTED_ELIGIBLE)
    assert np.allclose(demand.actual_cost, 2 * 0.384)


@pytest.mark.django_db
def test_cpu_binds_when_pods_need_more_cores_than_memory():
    pods = [("cpu-1", "shop", "Deployment", "c", 6.0, 4.0, False, {}),
            ("cpu-2", "shop", "Deployment", "c", 6.0, 4.0, False, {})]
    cluster = build_cluster(days=1, pods=pods)
    _, demands = planner.read_demand(cluster, END - timedelta(days=1), END)

    assert np.allclose(demands["general"].demand, 12.0)
    assert demands["general"].binding == {"cpu": 24}
    assert np.allclose(demands["general"].spot_eligible, 12.0)  # 2 replicas, no local storage


@pytest.mark.django_db
def test_a_single_replica_deployment_is_not_spot_eligible_without_an_annotation():
    pods = [("one", "shop", "Deployment", "one", 2.0, 2.0, False, {}),
            ("job", "shop", "Job", "j", 1.0, 1.0, False, {})]
    cluster = build_cluster(days=1, pods=pods)
    _, demands = planner.read_demand(cluster, END - timedelta(days=1), END)

    assert np.allclose(demands["general"].demand, 3.0)
    assert np.allclose(demands["general"].spot_eligible, 1.0)


@pytest.mark.django_db
def test_gpu_pool_demand_counts_gpus_in_node_shares():
    pods = [("train", "shop", "Deployment", "t", 2.0, 8.0, False, {})]
    cluster = build_cluster(days=1, pool="gpu", itype="g4dn.4xlarge", cores=16, ram=64, gpus=1,
                            nodes=1, pods=pods)
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=1), END)

    assert shapes["gpu"].gpus_per_unit == pytest.approx(1 / 16)
    assert np.allclose(demands["gpu"].demand, 16.0)  # one GPU = the whole node
    assert demands["gpu"].binding == {"gpu": 24}


# ------------------------------------------------------------------ prices


@pytest.mark.django_db
def test_catalog_price_comes_from_the_table_first_then_the_staged_csv():
    from_csv = planner.catalog_node_price("aws", "us-east-1", "m5.2xlarge", "on-demand", "USD")
    assert from_csv is not None and from_csv[0] == pytest.approx(M5_2XL_ON_DEMAND)
    assert "aws_us-east-1_catalog_joined.csv" in from_csv[1]

    CatalogPrice.objects.create(provider="aws", region="us-east-1", instance_type="m5.2xlarge",
                                capacity_type="on-demand", hourly=Decimal("0.5"),
                                currency="USD", source_file="table.csv")
    from_table = planner.catalog_node_price("aws", "us-east-1", "m5.2xlarge", "on-demand", "USD")
    assert from_table == (0.5, "price catalog table.csv")
    assert planner.catalog_node_price("aws", "us-east-1", "m5.2xlarge", "on-demand", "EUR") is None


@pytest.mark.django_db
def test_option_prices_default_to_catalog_reserved_discount_fargate_and_cap():
    cluster = build_cluster(days=1)
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=1), END)
    options, warnings = planner.pool_options(cluster, shapes["general"], demands["general"])

    assert warnings == []
    assert options["on_demand"]["unit_hourly"] == pytest.approx(M5_2XL_ON_DEMAND / 8)
    assert options["reserved"]["discount"] == 0.375 and options["reserved"]["term_years"] == 1
    assert options["reserved"]["node_hourly"] == pytest.approx(M5_2XL_ON_DEMAND * 0.625)
    assert options["spot"]["unit_hourly"] < options["on_demand"]["unit_hourly"]
    assert "(estimated)" in options["spot"]["source"]
    assert options["serverless"]["unit_hourly"] == pytest.approx(0.04048 + 0.004445 * 4)
    assert options["on_demand"]["cap_nodes"] == math.ceil(2 * 1.5)


@pytest.mark.django_db
def test_pool_settings_override_reserved_price_cap_and_serverless():
    cluster = build_cluster(days=1)
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=1), END)
    settings_row = PoolPlanSettings(cluster=cluster, node_pool="general",
                                    reserved_node_hourly=0.192, reserved_term_years=3,
                                    on_demand_max_nodes=10, serverless_enabled=False,
                                    spot_enabled=False)
    options, _ = planner.pool_options(cluster, shapes["general"], demands["general"],
                                      settings_row)

    assert options["reserved"]["discount"] == pytest.approx(0.5)
    assert options["reserved"]["term_years"] == 3
    assert options["on_demand"]["cap_nodes"] == 10
    assert options["serverless"] is None and options["spot"] is None


@pytest.mark.django_db
def test_gpu_pools_get_no_serverless_and_unknown_types_fall_back_to_the_pools_own_cost():
    cluster = build_cluster(days=1, pool="gpu", itype="g4dn.4xlarge", cores=16, ram=64, gpus=1,
                            nodes=1)
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=1), END)
    options, warnings = planner.pool_options(cluster, shapes["gpu"], demands["gpu"])
    assert options["serverless"] is None and planner.W_SERVERLESS_GPU in warnings

    other = build_cluster(name="odd", days=1, itype="x9.mystery", node_cost=1.6)
    shapes, demands = planner.read_demand(other, END - timedelta(days=1), END)
    options, warnings = planner.pool_options(other, shapes["general"], demands["general"])
    assert options["on_demand"]["node_hourly"] == pytest.approx(1.6)
    assert options["on_demand"]["source"] == "this pool's average cost per node-hour"
    assert any(w.startswith("No catalog on-demand price for x9.mystery") for w in warnings)


@pytest.mark.django_db
def test_serverless_is_not_offered_in_another_currency_than_its_prices():
    cluster = build_cluster(days=1, currency="EUR")
    shapes, demands = planner.read_demand(cluster, END - timedelta(days=1), END)
    options, warnings = planner.pool_options(cluster, shapes["general"], demands["general"])

    assert options["serverless"] is None
    assert planner.W_SERVERLESS_CURRENCY.format(have="USD", want="EUR") in warnings


# ------------------------------------------------------------------ refresh and plan


@pytest.mark.django_db
def test_refresh_stores_one_recommendation_per_pool_and_a_rerun_replaces_it():
    build_cluster(name="a", days=8)
    build_cluster(name="b", days=8, pool="batch")

    assert planner.refresh_all(now=END) == 2
    first = {r.cluster.name: r.computed_at for r in Recommendation.objects.all()}
    assert planner.refresh_all(now=END) == 2

    assert Recommendation.objects.count() == 2
    assert sorted(Recommendation.objects.values_list("cluster__name", "node_pool")) == [
        ("a", "general"), ("b", "batch")]
    assert all(r.computed_at >= first[r.cluster.name] for r in Recommendation.objects.all())


@pytest.mark.django_db
def test_recommendation_reserves_the_steady_base_in_whole_nodes_and_backtests_it():
    cluster = build_cluster(days=8)
    planner.refresh_cluster(cluster, now=END)
    rec = Recommendation.objects.get(cluster=cluster)
    result = planner.evaluate(rec)

    # Flat demand of 8.875 vCPU-units: one whole node (8 units) reserved, the rest flexible.
    assert rec.history_days == 8 and rec.warnings == []
    assert result["recommendation"]["reserved_nodes"] == 1
    assert result["recommendation"]["text"].startswith("Reserve 1 m5.2xlarge for 1 year")
    assert result["monthly"]["plan"] < result["monthly"]["all_on_demand"]
    assert result["monthly"]["all_on_demand"] == pytest.approx(EXPECTED_DEMAND * 0.048 * 730)
    bt = result["backtest"]
    assert bt["train_hours"] == 144 and bt["test_hours"] == 48
    assert bt["test_actual_cost"] == pytest.approx(48 * 2 * 0.384)
    assert bt["whole_node_test_cost"] < bt["test_all_on_demand_cost"]


@pytest.mark.django_db
def test_what_if_changes_the_plan_without_changing_the_stored_recommendation():
    cluster = build_cluster(days=8)
    planner.refresh_cluster(cluster, now=END)
    rec = Recommendation.objects.get(cluster=cluster)
    stored = planner.evaluate(rec)

    no_spot = planner.evaluate(rec, planner.parse_what_if({"spot_share": "0", "term": "3"}))
    assert no_spot["monthly"]["spot"] == 0
    assert no_spot["options"]["reserved"]["discount"] == 0.573
    assert "for 3 years" in no_spot["recommendation"]["text"]
    assert planner.evaluate(rec)["monthly"] == stored["monthly"]


@pytest.mark.parametrize(("params", "name"), [
    ({"discount": "abc"}, "discount"), ({"discount": "99"}, "discount"),
    ({"term": "2"}, "term"), ({"spot_share": "-1"}, "spot_share"),
    ({"max_on_demand_nodes": "1.5"}, "max_on_demand_nodes"),
    ({"serverless": "maybe"}, "serverless"),
])
def test_bad_what_if_inputs_name_the_parameter(params, name):
    with pytest.raises(planner.PlannerInputError) as err:
        planner.parse_what_if(params)
    assert err.value.param == name and str(err.value).startswith(f"{name}: ")


@pytest.mark.django_db
def test_short_history_is_flagged_as_too_short_to_trust():
    cluster = build_cluster(days=3)
    planner.refresh_cluster(cluster, now=END)
    result = planner.evaluate(Recommendation.objects.get(cluster=cluster))

    assert result["short_history"] is True
    assert result["warnings"][0] == planner.W_SHORT_HISTORY.format(days=3.0, min=7)


# ------------------------------------------------------------------ API


@pytest.fixture
def planned(world):
    cluster = build_cluster(days=8)
    planner.refresh_cluster(cluster, now=END)
    return cluster


URL = "/api/v1/recommendations/"


def test_api_requires_authentication(client, planned):
    assert client.get(URL).status_code in (401, 403)


def test_api_returns_the_recommendation_of_each_pool_of_a_cluster(client, world, planned):
    client.force_login(world.outsider)  # capacity plans hold no team money
    body = client.get(URL, {"cluster": "shop"}).json()

    assert body["count"] == 1
    rec = body["results"][0]
    assert rec["node_pool"] == "general" and rec["history_days"] == 8
    assert rec["recommendation"]["reserved_nodes"] == 1
    assert "series" not in rec
    with_series = client.get(URL, {"cluster": "shop", "series": "true"}).json()["results"][0]
    assert len(with_series["series"]["demand"]) == 192


@pytest.mark.parametrize(("query", "param"), [
    ({"cluster": "nope"}, "cluster"), ({"discount": "x"}, "discount"),
    ({"colour": "red"}, "colour"), ({"series": "perhaps"}, "series"), ({"term": "5"}, "term"),
])
def test_api_answers_400_naming_a_bad_parameter(client, world, planned, query, param):
    client.force_login(world.finance)
    response = client.get(URL, query)

    assert response.status_code == 400
    assert response.json()["parameter"] == param
    assert response.json()["detail"].startswith(f"{param}: ")


def test_api_applies_what_if_inputs(client, world, planned):
    client.force_login(world.finance)
    rec = client.get(URL, {"cluster": "shop", "discount": "0"}).json()["results"][0]

    assert rec["recommendation"]["reserved_nodes"] == 0  # no discount: reserving never pays
    assert rec["what_if"] == {"discount": "0"}


# ------------------------------------------------------------------ pages


def test_pool_page_renders_the_chart_words_costs_and_what_if_form(client, world, planned):
    client.force_login(world.alice)
    rec = Recommendation.objects.get(cluster=planned)
    response = client.get(f"/planner/{rec.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Reserve 1 m5.2xlarge for 1 year" in html
    assert 'id="planner-figure"' in html and "vendor/plotly.min.js" in html
    figure = response.context["figure"]
    names = [t["name"] for t in figure["data"]]
    assert names == ["reserved (used)", "spot", "on-demand", "serverless", "demand",
                     "reserved level"]
    assert len(figure["data"][4]["x"]) == 192
    assert figure["data"][4]["y"][0] == pytest.approx(EXPECTED_DEMAND / 8, abs=1e-3)
    assert 'name="discount"' in html and "from 8.0 days of history" in html


def test_pool_page_recomputes_what_if_and_reports_a_bad_input(client, world, planned):
    client.force_login(world.finance)
    rec = Recommendation.objects.get(cluster=planned)

    changed = client.get(f"/planner/{rec.pk}/", {"discount": "0"})
    assert "Reserve nothing" in changed.content.decode()
    assert "Without your what-if inputs: Reserve 1" in changed.content.decode()
    bad = client.get(f"/planner/{rec.pk}/", {"term": "7"})
    assert bad.status_code == 400 and "term: must be between 1 and 3" in bad.content.decode()


def test_planner_pages_need_a_login(client, planned):
    rec = Recommendation.objects.get(cluster=planned)
    assert client.get(f"/planner/{rec.pk}/").status_code == 302
    assert client.get("/planner/").status_code == 302


def test_list_page_shows_each_pool_and_flags_short_history(client, world, db):
    short = build_cluster(days=2)
    planner.refresh_cluster(short, now=END)
    client.force_login(world.finance)
    html = client.get("/planner/").content.decode()

    assert "general" in html and "too short to trust" in html


# ------------------------------------------------------------------ Celery


@pytest.mark.celery
def test_a_real_worker_refreshes_recommendations(celery_worker_process):
    from costapp import tasks

    build_cluster(days=8, name="celery-shop")
    assert tasks.refresh_recommendations.delay().get(timeout=120) == 1
    assert Recommendation.objects.filter(cluster__name="celery-shop").count() == 1
