"""Access, walked over the whole URL configuration (found at run time, so later pages count).

* anonymous: every page and endpoint refuses (redirect to login, 401, 403 or 405), except the
  login page, health checks and static files;
* a payments member (alice) never sees another team's name, whatever filter, aggregate, step,
  format, month or team parameter she sends to whichever URL — the other team is given a
  distinctive name so any appearance is a leak;
* every CSV any user can download neutralises formula cells (a namespace and a controller
  starting with `=` and `@` are stored);
* the fake bearer token of a registered cluster's kubeconfig, a budget's webhook secret and a
  billing source's secret key value appear in no response body (for any user, including admin
  pages and error pages) and in no log record;
* no URL answers 500 for any of these users.

Already covered elsewhere and not repeated: `manage.py check --deploy` under production
settings (tests/costapp/test_deploy.py), login rate limiting (tests/costapp/test_login.py).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

SECRET_TEAM = "zqsecretteam"  # bob's team: must never reach alice
KUBE_TOKEN = "costapp-FAKE-TOKEN-7c1e5b0a9d2f4e68"
WEBHOOK_SECRET = "costapp-FAKE-WEBHOOK-5f0c2d7b1e"
AWS_SECRET = "costapp-FAKE-AWS-SECRET-9a8b7c6d5e"
SECRETS = (KUBE_TOKEN, WEBHOOK_SECRET, AWS_SECRET)
PUBLIC = ("/accounts/login/", "/healthz", "/static/")
END = datetime(2026, 3, 4, tzinfo=UTC)
MONTH = "2026-03"

KUBECONFIG = f"""apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster: {{server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}
users:
- name: ro
  user: {{token: "{KUBE_TOKEN}"}}
contexts:
- name: prod
  context: {{cluster: prod, user: ro}}
"""

# Cross-team probes added to every URL alice visits.
PROBES = [
    {},
    {"team": SECRET_TEAM},
    {"team": f"payments,{SECRET_TEAM}"},
    {"aggregate": "team"},
    {"aggregate": "team,namespace", "step": "day", "window": "30d"},
    {"aggregate": "namespace", "format": "csv", "window": "lastmonth"},
    {"aggregate": "team", "format": "csv", "team": SECRET_TEAM},
    {"month": MONTH, "team": SECRET_TEAM, "format": "csv"},
    {"month": MONTH, "format": "csv"},
    {"month": MONTH},
    {"window": "2026-03-01,2026-03-04", "aggregate": "controller", "idle": "share-by-cluster",
     "shared_split": "even"},
    {"namespace": "search", "aggregate": "team"},
    {"name": SECRET_TEAM, "pool": "general", "cluster": "demo"},
]


def walk(resolver=None, prefix: str = ""):
    """Every URL pattern as (route with <converters>, converters), recursively."""
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            yield from walk(p, prefix + route)
        elif isinstance(p, URLPattern):
            yield prefix + route, p


def concrete_paths(values: dict[str, list[str]]) -> list[str]:
    """Fill each pattern's parameters with real objects' values (every combination, capped)."""
    out: set[str] = set()
    for route, _ in walk():
        route = route.replace("^", "").replace("$", "").replace("\\Z", "")
        if "(?P<" in route or "(" in route:  # regex routes (admin): named groups
            route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route)
            route = route.replace("\\", "")
            if re.search(r"[()\[\]*+?]", route):
                continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", route)
        choices = [values.get(n) or values["*"] for n in names]
        for combo in itertools.islice(itertools.product(*choices), 6):
            path = route
            for n, v in zip(names, combo, strict=True):
                path = re.sub(rf"<(?:\w+:)?{n}>", v, path, count=1)
            out.add("/" + path)
    return sorted(out)


@pytest.fixture
def populated(transactional_db, settings, tmp_path, monkeypatch):
    """The demo world, one day allocated, bob's team renamed to SECRET_TEAM, hostile names,
    a real-looking cluster, budget and billing source carrying fake secrets."""
    from costapp import demo, services
    from costapp.models import AllocationLine, NamespaceTeam, Team

    settings.DEBUG = False
    monkeypatch.setenv("COSTAPP_TEST_AWS_SECRET", AWS_SECRET)
    monkeypatch.setenv("COSTAPP_TEST_AWS_KEY_ID", "AKIAFAKEFAKEFAKE")
    cluster = demo.ensure_world()
    services.simulate_history(cluster, 1, end=END, step_seconds=3600, scale=0.3)
    services.allocate_dirty_days(cluster.pk)
    # The simulator labels workloads "search"; rename that team everywhere it is stored.
    Team.objects.filter(name="search").update(name=SECRET_TEAM)
    AllocationLine.objects.filter(team="search").update(team=SECRET_TEAM)
    NamespaceTeam.objects.filter(team__name=SECRET_TEAM).exists()
    assert AllocationLine.objects.filter(team=SECRET_TEAM).exists(), "bob's team has no cost"
    # Hostile names on payments lines (alice's): exports must neutralise them.
    line = AllocationLine.objects.filter(team="payments", kind="workload").first()
    line.pk, line.namespace, line.controller = None, "=HYPERLINK(\"http://x\",\"y\")", "@SUM(A1)"
    line.save()

    kube = tmp_path / "kubeconfig.yaml"
    kube.write_text(KUBECONFIG)
    call_command("add_cluster", "realcluster", "--kubeconfig", str(kube), "--no-check")
    _budget_with_secret()
    _billing_source_with_secret()

    finance = User.objects.get(username="finance")
    alice = User.objects.create_user("alice", password="pw-alice-123")
    Team.objects.get(name="payments").members.add(alice)
    bob = User.objects.create_user("bob", password="pw-bob-123")
    Team.objects.get(name=SECRET_TEAM).members.add(bob)
    assert finance.groups.filter(name="finance").exists()
    Group.objects.get_or_create(name="finance")
    return {"alice": alice, "finance": finance, "admin": User.objects.get(username="admin"),
            "cluster": cluster}


def _budget_with_secret() -> None:
    try:
        from costapp.models import Budget
        from costapp.notify import encrypt_secret
    except ImportError:
        return
    fields = {f.name for f in Budget._meta.get_fields()}
    kwargs = {"name": "payments-monthly", "webhook_url": "https://hooks.invalid/x",
              "webhook_secret_encrypted": encrypt_secret(WEBHOOK_SECRET)}
    try:
        Budget.objects.create(**{k: v for k, v in kwargs.items() if k in fields},
                              amount=1000)
    except Exception:  # the budget model changed shape: the walk still runs
        logging.getLogger(__name__).warning("budget fixture skipped")


def _billing_source_with_secret() -> None:
    try:
        from costapp.models.sources import BillingSource
    except ImportError:
        return
    BillingSource.objects.create(
        name="cur-export", kind="s3", bucket="bills", region="us-east-1",
        access_key_id_env="COSTAPP_TEST_AWS_KEY_ID",
        secret_access_key_env="COSTAPP_TEST_AWS_SECRET",
    )


def _values(populated) -> dict[str, list[str]]:
    from costapp.models import Cluster, Team

    ids = [str(populated["cluster"].pk), "1"]
    return {
        "name": ["payments", SECRET_TEAM, "demo"],
        "team": ["payments", SECRET_TEAM],
        "cluster": ["demo", "realcluster"],
        "pool": ["general"],
        "node_pool": ["general"],
        "month": [MONTH],
        "app_label": ["costapp", "auth"],
        "model_name": ["cluster", "team"],
        "object_id": [str(Cluster.objects.get(name="realcluster").pk),
                      str(Team.objects.get(name=SECRET_TEAM).pk)],
        "format": ["json", "csv"],
        "*": ids,
    }


def _body(resp) -> str:
    if getattr(resp, "streaming", False):
        return b"".join(resp.streaming_content).decode("utf-8", "replace")
    return resp.content.decode("utf-8", "replace")


def _is_public(path: str) -> bool:
    return path.startswith(PUBLIC)


def test_every_url_refuses_anonymous_access(populated, client):
    paths = concrete_paths(_values(populated))
    assert len(paths) > 20, "URL discovery found too little"
    served = {}
    for path in paths:
        if _is_public(path):
            continue
        resp = client.get(path)
        served[path] = resp.status_code
        assert resp.status_code in (301, 302, 401, 403, 404, 405), (path, resp.status_code)
        if resp.status_code in (301, 302):
            assert "/accounts/login/" in resp["Location"] or resp["Location"].startswith(
                "/admin/login/"), (path, resp["Location"])
    assert sum(code in (302, 401, 403) for code in served.values()) > len(served) // 2


ECHOES = [re.compile(p) for p in (
    rf'(?:value|href)="[^"]*{SECRET_TEAM}[^"]*"',  # her own filter, shown back in the form
    rf"not a member of {SECRET_TEAM}",  # the refusal names what she asked for
)]


def _without_echoes(body: str, path: str, probe: dict, status: int) -> str:
    """The body minus places that only repeat what alice herself asked for: her filter value
    in a form field or link, a refusal naming it, an error (4xx) quoting her parameter."""
    asked = SECRET_TEAM in path or any(SECRET_TEAM in str(v) for v in probe.values())
    if not asked:
        return body
    if status >= 400:
        return ""
    for pattern in ECHOES:
        body = pattern.sub("", body)
    return body


def _csv_cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def test_members_never_see_another_team_and_exports_are_formula_safe(populated, client, caplog):
    caplog.set_level(logging.DEBUG)
    paths = [p for p in concrete_paths(_values(populated)) if not _is_public(p)
             and not p.startswith("/admin/") and "logout" not in p]
    client.force_login(populated["alice"])
    leaks, errors, csvs = [], [], 0
    for path in paths:
        for probe in PROBES:
            resp = client.get(path, probe)
            body = _body(resp)
            if resp.status_code >= 500:
                errors.append((path, probe, resp.status_code))
            if SECRET_TEAM in _without_echoes(body, path, probe, resp.status_code):
                leaks.append((path, probe, resp.status_code))
            if "csv" in resp.get("Content-Type", "") and resp.status_code == 200:
                csvs += 1
                bad = [c for c in _csv_cells(body) if c[:1] in ("=", "+", "@", "\t", "\r")
                       or (c[:1] == "-" and not re.fullmatch(r"-[\d.]+(e-?\d+)?", c))]
                assert not bad, (path, probe, bad[:5])
            assert not any(s in body for s in SECRETS), (path, probe)
    assert not errors, f"server errors: {errors[:10]}"
    assert not leaks, f"{SECRET_TEAM} reached a payments member at: {leaks[:10]}"
    assert csvs >= 2, "no CSV export was exercised"
    assert "HYPERLINK" in "".join(
        _body(client.get("/api/v1/allocations/", {"aggregate": "namespace", "format": "csv",
                                                  "window": "2026-03-03,2026-03-03"}))
        .splitlines()), "the hostile namespace line did not reach the CSV check"
    for record in caplog.records:
        assert not any(s in record.getMessage() for s in SECRETS)


@pytest.mark.parametrize("who", ["finance", "admin"])
def test_secrets_never_appear_in_any_page_error_page_or_log(populated, client, caplog, who):
    caplog.set_level(logging.DEBUG)
    client.force_login(populated[who])
    paths = [p for p in concrete_paths(_values(populated)) if "logout" not in p]
    paths += ["/no-such-page/", "/api/v1/allocations/?window=bogus",
              "/api/v1/chargeback/?month=13-13", "/api/v1/clusters/?format=csv"]
    errors = []
    for path in paths:
        resp = client.get(path)
        if resp.status_code >= 500:
            errors.append((path, resp.status_code))
        body = _body(resp)
        for s in SECRETS:
            assert s not in body, f"{s} shown at {path}"
        if "csv" in resp.get("Content-Type", "") and resp.status_code == 200:
            assert not [c for c in _csv_cells(body) if c[:1] in ("=", "@")], path
    assert not errors, f"server errors: {errors[:10]}"
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_info or "")
        assert not any(s in text for s in SECRETS), record.getMessage()[:300]
