"""Ownership rules: precedence, coverage, YAML rule sets and recompute without double-counting."""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db.models import F, Sum

from costapp import ownership_rules, services
from costapp.models import (
    UNALLOCATED,
    AllocationLine,
    Cluster,
    ClusterDay,
    CostCentre,
    Job,
    Namespace,
    NamespaceTeam,
    OwnershipChange,
    OwnershipSettings,
    Pod,
    Team,
)
from costapp.ownership import (
    ERR_UNKNOWN_TEAM,
    OwnershipResolver,
    RulesetError,
    common_workload_labels,
    parse_ruleset,
)

with contextlib.suppress(ImportError):
    import costapp.models.billing  # noqa: F401  (billing tables, until models/__init__ has them)

KEYS = ("team", "owner", "app.kubernetes.io/part-of")


def resolver(**kw):
    base = dict(
        keys=KEYS,
        namespace_table={"shop": "table-team"},
        namespace_labels={"shop": {"team": "ns-label-team"}},
        namespace_annotations={"shop": {"owner": "ns-ann-team"}},
        workload_labels={("shop", "Deployment", "web"): {"team": "workload-team"}},
        default_team="default-team",
    )
    base.update(kw)
    return OwnershipResolver(**base)


# --- precedence (pure) -------------------------------------------------------------------------


def test_every_rule_conflicting_pod_label_wins():
    r = resolver().resolve("shop", {"team": "pod-label-team"}, {"team": "pod-ann-team"},
                           "Deployment", "web")
    assert (r.team, r.rule) == ("pod-label-team", "pod label")


def test_rules_fall_through_in_documented_order():
    r = resolver()
    assert r.resolve("shop", {}, {"owner": "pod-ann-team"}, "Deployment", "web").rule \
        == "pod annotation"
    assert r.resolve("shop", {}, {}, "Deployment", "web") == ("workload-team", "workload label")
    assert r.resolve("shop", {}, {}, "Deployment", "other").rule == "namespace label"
    no_ns_label = resolver(namespace_labels={})
    assert no_ns_label.resolve("shop", {}, {}).team == "ns-ann-team"
    table_only = resolver(namespace_labels={}, namespace_annotations={})
    assert table_only.resolve("shop", {}, {}) == ("table-team", "namespace table")
    assert table_only.resolve("elsewhere", {}, {}) == ("default-team", "default team")
    assert resolver(default_team=None).resolve("elsewhere", {}, {}) == (None, "unowned")


def test_keys_are_tried_in_configured_order_within_one_rule():
    labels = {"app.kubernetes.io/part-of": "c", "owner": "b", "team": "a"}
    assert resolver().resolve("x", labels).team == "a"
    assert resolver(keys=("owner", "team")).resolve("x", labels).team == "b"


def test_label_naming_no_known_team_falls_through_to_next_rule():
    r = resolver(known_teams=frozenset({"ns-label-team"}))
    assert r.resolve("shop", {"team": "typo-team"}, {}) == ("ns-label-team", "namespace label")


def test_workload_labels_are_the_values_its_pods_agree_on():
    pods = [
        ("ns", "CronJob", "etl", {"team": "data", "run": "1"}),
        ("ns", "CronJob", "etl", {"run": "2"}),  # an old pod without the team label
        ("ns", "Deployment", "web", {"team": "a"}),
        ("ns", "Deployment", "web", {"team": "b"}),  # conflicting: no workload label
        ("ns", "", "", {"team": "bare"}),  # no controller
    ]
    labels = common_workload_labels(pods)
    assert labels == {("ns", "CronJob", "etl"): {"team": "data"}}
    r = resolver(workload_labels=labels, namespace_labels={}, namespace_annotations={},
                 namespace_table={}, default_team=None)
    assert r.resolve("ns", {"run": "2"}, {}, "CronJob", "etl") == ("data", "workload label")


# --- database-backed config --------------------------------------------------------------------


@pytest.mark.django_db
def test_cluster_specific_namespace_mapping_beats_the_global_one():
    cluster = Cluster.objects.create(name="c1")
    a, b = Team.objects.create(name="a"), Team.objects.create(name="b")
    NamespaceTeam.objects.create(cluster=cluster, namespace="shop", team=b)
    NamespaceTeam.objects.create(cluster=None, namespace="shop", team=a)
    assert services.ownership_resolver(cluster).resolve("shop", {}).team == "b"
    other = Cluster.objects.create(name="c2")
    assert services.ownership_resolver(other).resolve("shop", {}).team == "a"


@pytest.mark.django_db
def test_settings_drive_the_resolver_keys_default_team_and_workload_labels():
    cluster = Cluster.objects.create(name="c1")
    fallback = Team.objects.create(name="fallback")
    Team.objects.create(name="data")
    now = "2026-03-02T00:00:00Z"
    for i, labels in enumerate([{"squad": "data"}, {}]):
        Pod.objects.create(cluster=cluster, namespace="ns", name=f"p{i}", uid=f"u{i}",
                           controller_kind="CronJob", controller="etl", labels=labels,
                           first_seen=now, last_seen=now)
    ownership_rules.set_settings(["squad"], fallback)
    r = services.ownership_resolver(cluster)
    assert r.keys == ("squad",)
    assert r.resolve("ns", {}, {}, "CronJob", "etl") == ("data", "workload label")
    assert r.resolve("ns", {"team": "data"}, {}) == ("fallback", "default team")


# --- coverage ----------------------------------------------------------------------------------


def line(cluster, day, team, ns, ctrl, cost, kind=AllocationLine.Kind.WORKLOAD):
    return AllocationLine(cluster=cluster, day=day, kind=kind, namespace=ns,
                          controller_kind="Deployment", controller=ctrl, team=team,
                          node_pool="general", capacity_type="on-demand",
                          cpu_cost=Decimal(cost) * 3 / 4, ram_cost=Decimal(cost) / 4)


@pytest.mark.django_db
def test_coverage_is_the_share_of_workload_cost_with_a_named_team():
    c = Cluster.objects.create(name="c1")
    other = Cluster.objects.create(name="c2")
    d = date(2026, 3, 5)
    AllocationLine.objects.bulk_create([
        line(c, d, "payments", "pay", "api", 60),
        line(c, d, UNALLOCATED, "legacy", "report", 30),
        line(c, d, UNALLOCATED, "legacy", "cron", 4),
        line(c, d, UNALLOCATED, "tmp", "x", 6),
        line(c, d, "__idle__", "__idle__", "__idle__", 500, kind=AllocationLine.Kind.IDLE),
        line(c, date(2026, 4, 1), UNALLOCATED, "legacy", "report", 1000),  # next month
        line(other, d, UNALLOCATED, "legacy", "report", 1000),  # other cluster
    ])
    cov = ownership_rules.coverage(c, date(2026, 3, 1), date(2026, 4, 1))
    assert cov.total == Decimal(100) and cov.owned == Decimal(60) and cov.unowned == 40
    assert cov.share == pytest.approx(0.6)
    assert [(n["namespace"], n["cost"]) for n in cov.unowned_namespaces] == [
        ("legacy", Decimal(34)), ("tmp", Decimal(6))]
    assert [(w["controller"], w["cost"]) for w in cov.unowned_workloads] == [
        ("report", Decimal(30)), ("tmp" and "x", Decimal(6)), ("cron", Decimal(4))]


@pytest.mark.django_db
def test_coverage_of_an_empty_month_is_complete_not_a_division_error():
    cov = ownership_rules.coverage(None, date(2026, 3, 1), date(2026, 4, 1))
    assert cov.total == 0 and cov.share == 1.0


# --- YAML rule sets ----------------------------------------------------------------------------

GOOD = """\
version: 1
keys: [team, owner]
default_team: null
cost_centres:
  CC-100: Commerce
teams:
  payments:
    cost_centre: CC-100
    members: [alice]
  legacy-owners: {cost_centre: CC-100}
namespaces:
  legacy: legacy-owners
clusters:
  c1:
    namespaces:
      legacy: payments
"""


@pytest.mark.django_db
def test_yaml_rule_set_applies_teams_centres_and_namespace_table(world, tmp_path):
    Cluster.objects.create(name="c1")
    path = tmp_path / "ownership.yaml"
    path.write_text(GOOD)
    call_command("apply_ownership", str(path))
    assert Team.objects.get(name="payments").cost_centre.code == "CC-100"
    assert CostCentre.objects.get(code="CC-100").name == "Commerce"
    assert list(Team.objects.get(name="payments").members.values_list("username", flat=True)) \
        == ["alice"]
    table = {(m.cluster.name if m.cluster else None, m.namespace): m.team.name
             for m in NamespaceTeam.objects.all()}
    assert table == {(None, "legacy"): "legacy-owners", ("c1", "legacy"): "payments"}
    assert ownership_rules.current_config().keys == ("team", "owner")
    assert OwnershipChange.objects.get().source == str(path)


@pytest.mark.django_db
def test_yaml_dry_run_prints_the_diff_and_applies_nothing(world, tmp_path, capsys):
    Cluster.objects.create(name="c1")
    path = tmp_path / "ownership.yaml"
    path.write_text(GOOD)
    call_command("apply_ownership", str(path), "--dry-run")
    out = capsys.readouterr().out
    assert "+ namespace legacy → payments (cluster c1)" in out
    assert "~ keys: team, owner, app.kubernetes.io/part-of → team, owner" in out
    assert "nothing applied" in out
    assert not NamespaceTeam.objects.exists() and not CostCentre.objects.exists()
    assert not OwnershipChange.objects.exists()


@pytest.mark.parametrize("text, line, reason", [
    ("version: 1\nnamespaces:\n  legacy: [a, b]\n", 3, "must be a string"),
    ("version: 1\nnamespaces:\n  Legacy_NS: payments\n", 3, "not a valid name"),
    ("version: 1\nteams:\n  a: {}\n  a: {}\n", 4, "duplicate key 'a' (first at line 3)"),
    ("version: 1\nteems: {}\n", 2, "unknown key 'teems'"),
    ("version: 2\n", 1, "version must be 1"),
    ("keys: [team]\n", 1, "missing `version: 1`"),
    ("version: 1\nteams:\n  a: {cost_centre: [x]\n", 4, "YAML syntax error"),
    ("version: 1\nteams:\n  a:\n    members: alice\n", 4, "must be a list of strings"),
])
def test_invalid_yaml_is_rejected_with_line_and_reason(text, line, reason):
    with pytest.raises(RulesetError) as info:
        parse_ruleset(text, "rules.yaml")
    assert any(ln == line and reason in why for ln, why in info.value.errors), info.value.errors
    assert f"rules.yaml:{line}:" in str(info.value)


@pytest.mark.django_db
def test_yaml_naming_unknown_teams_clusters_or_users_applies_nothing(world, tmp_path):
    NamespaceTeam.objects.create(namespace="search", team=world.search)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\n"
        "teams:\n"
        "  newteam: {cost_centre: CC-404}\n"
        "  payments: {members: [alice, nobody]}\n"
        "namespaces:\n"
        "  legacy: ghosts\n"
        "  shop: newteam\n"
        "clusters:\n"
        "  nowhere: {namespaces: {x: payments}}\n"
    )
    with pytest.raises(CommandError) as info:
        call_command("apply_ownership", str(path))
    message = str(info.value)
    assert "nothing applied" in message
    assert f"{path}:3: cost centre 'CC-404'" in message
    assert f"{path}:4: user 'nobody' does not exist" in message
    assert f"{path}:6: " + ERR_UNKNOWN_TEAM.format(name="ghosts") in message
    assert f"{path}:9: cluster 'nowhere' is not registered" in message
    assert not Team.objects.filter(name="newteam").exists()
    assert list(NamespaceTeam.objects.values_list("namespace", flat=True)) == ["search"]
    assert list(world.payments.members.all()) == [world.alice]


def test_bad_recompute_option_is_refused(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("version: 1\n")
    with pytest.raises(CommandError, match="recompute must be none, all or since"):
        call_command("apply_ownership", str(path), "--recompute", "yesterday")


def test_schema_example_parses():
    from costapp.ownership import RULESET_SCHEMA

    rs = parse_ruleset(RULESET_SCHEMA)
    assert rs.namespaces[("prod-eu", "legacy")][0] == "payments"


# --- recompute on a rule change ----------------------------------------------------------------


def _totals():
    rows = AllocationLine.objects.aggregate(
        cost=Sum(F("cpu_cost") + F("ram_cost") + F("gpu_cost") + F("overhead_cost")),
        n=Sum("cpu_core_hours"))
    return rows["cost"], rows["n"]


def _team_cost(team, namespace=None):
    qs = AllocationLine.objects.filter(team=team, kind="workload")
    if namespace:
        qs = qs.filter(namespace=namespace)
    return qs.aggregate(s=Sum(F("cpu_cost") + F("ram_cost") + F("gpu_cost")))["s"] or Decimal(0)


@pytest.fixture
def demo_cluster(db):
    from costapp import demo

    cluster = demo.ensure_world()
    services.simulate_history(cluster, 2)
    services.allocate_dirty_days()
    return cluster


def test_rule_change_recompute_moves_the_team_without_double_counting(demo_cluster, tmp_path,
                                                                      django_capture_on_commit_callbacks):
    before_total, before_hours = _totals()
    legacy_cost = _team_cost(UNALLOCATED, "legacy")
    assert legacy_cost > 0 and _team_cost("payments", "legacy") == 0
    cov_before = ownership_rules.coverage(demo_cluster, date(2000, 1, 1), date(2100, 1, 1))
    payments = Team.objects.get(name="payments")
    with django_capture_on_commit_callbacks(execute=True):
        change = ownership_rules.set_namespace_team("legacy", payments, recompute="all")
    job = Job.objects.get(pk=change.job_id)
    assert job.status == Job.Status.SUCCEEDED and job.total == change.days_marked > 0
    # Progress as the job page reads it (cache first: the test runs inside a transaction).
    assert cache.get(f"job:{job.pk}:progress")[:2] == (job.total, job.total)
    assert not ClusterDay.objects.filter(dirty=True).exists()
    after_total, after_hours = _totals()
    assert after_total == before_total and after_hours == pytest.approx(before_hours)
    assert _team_cost(UNALLOCATED, "legacy") == 0
    assert _team_cost("payments", "legacy") == legacy_cost
    cov_after = ownership_rules.coverage(demo_cluster, date(2000, 1, 1), date(2100, 1, 1))
    assert cov_after.total == cov_before.total
    assert cov_after.unowned == cov_before.unowned - legacy_cost
    assert "legacy" not in [n["namespace"] for n in cov_after.unowned_namespaces]
    # Re-running the same recompute changes nothing (idempotent).
    with django_capture_on_commit_callbacks(execute=True):
        ownership_rules.mark_days_for_recompute("all")
        services.allocate_dirty_days()
    assert _totals()[0] == before_total and _team_cost("payments", "legacy") == legacy_cost


def test_keep_history_marks_no_days_and_since_marks_only_later_days(demo_cluster):
    days = sorted(ClusterDay.objects.values_list("day", flat=True))
    search = Team.objects.get(name="search")
    change = ownership_rules.set_namespace_team("legacy", search, recompute="none")
    assert change.days_marked == 0 and change.job is None
    assert not ClusterDay.objects.filter(dirty=True).exists()
    assert _team_cost("search", "legacy") == 0  # history kept
    change = ownership_rules.set_namespace_team("legacy", None,
                                                recompute=f"since:{days[-1].isoformat()}")
    assert set(ClusterDay.objects.filter(dirty=True).values_list("day", flat=True)) \
        == {days[-1]}
    assert change.days_marked == 1


def test_yaml_apply_with_recompute_since_date(demo_cluster, tmp_path,
                                              django_capture_on_commit_callbacks):
    first = min(ClusterDay.objects.values_list("day", flat=True))
    path = Path(tmp_path / "o.yaml")
    path.write_text("version: 1\nnamespaces:\n  storefront: storefront\n  legacy: payments\n")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("apply_ownership", str(path), "--recompute", "all")
    assert _team_cost(UNALLOCATED, "legacy") == 0
    assert _team_cost("payments", "legacy") > 0
    assert AllocationLine.objects.filter(day=first, namespace="legacy",
                                         team="payments").exists()
    assert OwnershipSettings.current().source == str(path)
    assert Namespace.objects.filter(name="legacy").exists()
