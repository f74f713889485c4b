"""Ownership rules backed by the database: the config the allocation service reads, the use cases
that change rules (UI edits and YAML files), the recompute they trigger, and ownership coverage.

`ownership.py` stays pure (resolver order, YAML parsing); this module is where rules meet models.

Recompute modes after a rule change (the admin chooses):
- `none`: history is kept as allocated; days allocated from now on use the new rules;
- `all`: every allocated day of the affected clusters is re-run;
- `since:YYYY-MM-DD`: days on or after that date are re-run.
Re-running a day replaces its lines in one transaction (services.allocate_cluster_day), so a
recompute moves cost between teams and never double-counts it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Sum

from costapp.models import (
    UNALLOCATED,
    AllocationLine,
    Cluster,
    ClusterDay,
    CostCentre,
    Job,
    NamespaceTeam,
    OwnershipChange,
    OwnershipSettings,
    Pod,
    Team,
)
from costapp.ownership import (
    DEFAULT_KEYS,
    ERR_UNKNOWN_CENTRE,
    ERR_UNKNOWN_CLUSTER,
    ERR_UNKNOWN_TEAM,
    ERR_UNKNOWN_USER,
    RuleSet,
    RulesetError,
    common_workload_labels,
)

ERR_RECOMPUTE = "recompute must be none, all or since:YYYY-MM-DD (got {value!r})"


@dataclass(frozen=True)
class OwnershipConfig:
    """Keys every label rule tries, in order, and the default team's name (None: unowned)."""

    keys: tuple[str, ...] = DEFAULT_KEYS
    default_team: str | None = None


def current_config() -> OwnershipConfig:
    """The rule config the allocation service uses (from OwnershipSettings, defaults if unset)."""
    row = OwnershipSettings.objects.select_related("default_team").filter(pk=1).first()
    if row is None:
        return OwnershipConfig()
    return OwnershipConfig(
        keys=tuple(row.keys) or DEFAULT_KEYS,
        default_team=row.default_team.name if row.default_team else None,
    )


def workload_labels(cluster) -> dict:
    """(namespace, kind, name) → labels of the workload, approximated from its pods' labels.

    See ownership.common_workload_labels for the approximation (workload objects themselves are
    not collected yet).
    """
    rows = Pod.objects.filter(cluster=cluster).exclude(controller="").values_list(
        "namespace", "controller_kind", "controller", "labels"
    )
    return common_workload_labels(rows.iterator(chunk_size=5000))


# --- recompute ---------------------------------------------------------------------------------


def parse_recompute(value: str) -> tuple[str, date | None]:
    """'none' | 'all' | 'since:YYYY-MM-DD' → (mode, since)."""
    value = (value or "none").strip()
    if value in ("none", "all"):
        return value, None
    if value.startswith("since:"):
        try:
            return "since", date.fromisoformat(value[6:])
        except ValueError:
            pass
    raise ValueError(ERR_RECOMPUTE.format(value=value))


def mark_days_for_recompute(recompute: str, clusters: list[int] | None = None) -> list[tuple]:
    """Mark the allocated days the recompute mode covers dirty; returns [(cluster_id, day)]."""
    mode, since = parse_recompute(recompute)
    if mode == "none":
        return []
    days = ClusterDay.objects.all()
    if clusters is not None:
        days = days.filter(cluster_id__in=clusters)
    if since:
        days = days.filter(day__gte=since)
    todo = list(days.order_by("day", "cluster_id").values_list("cluster_id", "day"))
    days.update(dirty=True)
    return todo


def start_recompute(change: OwnershipChange, todo: list[tuple], user=None) -> Job | None:
    """Create the recompute job for a change and enqueue it after the surrounding commit."""
    if not todo:
        return None
    job = Job.objects.create(
        kind="ownership-recompute", created_by=user, total=len(todo),
        description=f"recompute {len(todo)} cluster-days after ownership change #{change.pk}",
        params={"days": [[cid, d.isoformat()] for cid, d in todo], "change": change.pk},
    )
    change.job = job
    change.save(update_fields=["job"])

    def enqueue() -> None:
        from costapp import tasks

        tasks.recompute_ownership.delay(job.pk)

    transaction.on_commit(enqueue)
    return job


def recompute_job(job_id: int) -> Job:
    """Re-allocate the cluster-days listed on a recompute job, with progress (the task's body)."""
    from costapp import services

    job = Job.objects.get(pk=job_id)
    todo = [(cid, date.fromisoformat(d)) for cid, d in job.params.get("days", [])]

    def work(progress) -> str:
        for i, (cid, day) in enumerate(todo):
            services.allocate_cluster_day(cid, day)
            progress(i + 1, len(todo), f"re-allocated {day}")
        return f"{len(todo)} cluster-days recomputed"

    return services.run_job(job_id, work)


def _clusters_with_namespaces(names: set[str]) -> list[int]:
    return list(
        AllocationLine.objects.filter(namespace__in=names).values_list("cluster_id", flat=True)
        .distinct()
    )


# --- UI edits ----------------------------------------------------------------------------------


def set_namespace_team(namespace: str, team: Team | None, cluster: Cluster | None = None, *,
                       recompute: str = "none", user=None) -> OwnershipChange:
    """Map (or, with team None, unmap) a namespace, then mark and recompute the affected days.

    Only clusters that have allocation lines in that namespace are recomputed.
    """
    parse_recompute(recompute)
    where = f"cluster {cluster.name}" if cluster else "all clusters"
    with transaction.atomic():
        existing = NamespaceTeam.objects.filter(cluster=cluster, namespace=namespace).first()
        old = existing.team.name if existing else None
        if team is None:
            NamespaceTeam.objects.filter(cluster=cluster, namespace=namespace).delete()
            diff = [f"- namespace {namespace} → {old} ({where})"] if old else []
        else:
            NamespaceTeam.objects.update_or_create(
                cluster=cluster, namespace=namespace, defaults={"team": team}
            )
            diff = ([f"~ namespace {namespace}: {old} → {team.name} ({where})"] if old
                    else [f"+ namespace {namespace} → {team.name} ({where})"])
        scope = [cluster.pk] if cluster else _clusters_with_namespaces({namespace})
        return _record(diff, "ui", recompute, scope, user)


def set_settings(keys: list[str], default_team: Team | None, *, recompute: str = "none",
                 user=None) -> OwnershipChange:
    """Change the rule keys and the default team (affects every cluster)."""
    parse_recompute(recompute)
    with transaction.atomic():
        row = OwnershipSettings.current()
        diff = []
        if list(row.keys) != list(keys):
            diff.append(f"~ keys: {', '.join(row.keys)} → {', '.join(keys)}")
        if row.default_team_id != (team_id := default_team.pk if default_team else None):
            diff.append(f"~ default team: {row.default_team or 'none'} → {default_team or 'none'}")
            row.default_team_id = team_id
        row.keys, row.source = list(keys), "ui"
        row.save()
        return _record(diff, "ui", recompute, None, user)


def _record(diff: list[str], source: str, recompute: str, clusters, user) -> OwnershipChange:
    change = OwnershipChange.objects.create(
        created_by=user, source=source, diff=diff, recompute=recompute
    )
    todo = mark_days_for_recompute(recompute, clusters) if diff else []
    change.days_marked = len(todo)
    change.save(update_fields=["days_marked"])
    start_recompute(change, todo, user)
    return change


# --- YAML rule sets ------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    """What applying a rule set did (or, for a dry run, would do)."""

    diff: list[str]
    change: OwnershipChange | None
    days_marked: int
    dry_run: bool


def check_references(rs: RuleSet, source: str = "<rules>") -> None:
    """Every team, cost centre, cluster and user the file names must exist (in it or in costapp)."""
    errors: list[tuple[int, str]] = []
    teams = set(rs.teams) | set(Team.objects.values_list("name", flat=True))
    centres = set(rs.cost_centres) | set(CostCentre.objects.values_list("code", flat=True))
    clusters = set(Cluster.objects.values_list("name", flat=True))
    users = set(get_user_model().objects.values_list("username", flat=True))
    if rs.default_team and rs.default_team not in teams:
        errors.append((rs.default_team_line, ERR_UNKNOWN_TEAM.format(name=rs.default_team)))
    for spec in rs.teams.values():
        if spec.cost_centre and spec.cost_centre not in centres:
            errors.append((spec.cost_centre_line,
                           ERR_UNKNOWN_CENTRE.format(code=spec.cost_centre)))
        for username, line in spec.members or ():
            if username not in users:
                errors.append((line, ERR_UNKNOWN_USER.format(name=username)))
    for (_cluster, _ns), (team, line) in rs.namespaces.items():
        if team not in teams:
            errors.append((line, ERR_UNKNOWN_TEAM.format(name=team)))
    for name, line in rs.cluster_lines.items():
        if name not in clusters:
            errors.append((line, ERR_UNKNOWN_CLUSTER.format(name=name)))
    if errors:
        raise RulesetError(errors, source)


def ruleset_diff(rs: RuleSet) -> tuple[list[str], set[str] | None]:
    """Lines describing what applying `rs` changes, and the namespaces whose owner may change
    (None when keys or the default team change: every namespace is affected)."""
    diff: list[str] = []
    affected: set[str] | None = set()
    row = OwnershipSettings.objects.select_related("default_team").filter(pk=1).first()
    old_keys = tuple(row.keys) if row else DEFAULT_KEYS
    old_default = row.default_team.name if row and row.default_team else None
    if tuple(rs.keys) != tuple(old_keys):
        diff.append(f"~ keys: {', '.join(old_keys)} → {', '.join(rs.keys)}")
        affected = None
    if rs.default_team != old_default:
        diff.append(f"~ default team: {old_default or 'none'} → {rs.default_team or 'none'}")
        affected = None
    old_centres = dict(CostCentre.objects.values_list("code", "name"))
    for code, name in rs.cost_centres.items():
        if code not in old_centres:
            diff.append(f"+ cost centre {code} {name}".rstrip())
        elif name and old_centres[code] != name:
            diff.append(f"~ cost centre {code} name: {old_centres[code]!r} → {name!r}")
    old_teams = {t.name: t for t in Team.objects.select_related("cost_centre")
                 .prefetch_related("members")}
    for name, spec in rs.teams.items():
        team = old_teams.get(name)
        if team is None:
            diff.append(f"+ team {name}" + (f" (cost centre {spec.cost_centre})"
                                            if spec.cost_centre else ""))
            if spec.members:
                diff.append(f"~ team {name} members: → {', '.join(u for u, _ in spec.members)}")
            continue
        old_cc = team.cost_centre.code if team.cost_centre else None
        if spec.cost_centre_line and spec.cost_centre != old_cc:
            diff.append(f"~ team {name} cost centre: {old_cc or 'none'} → "
                        f"{spec.cost_centre or 'none'}")
        if spec.display_name is not None and spec.display_name != team.display_name:
            diff.append(f"~ team {name} display name: {team.display_name!r} → "
                        f"{spec.display_name!r}")
        if spec.members is not None:
            old = sorted(u.username for u in team.members.all())
            new = sorted({u for u, _ in spec.members})
            if old != new:
                diff.append(f"~ team {name} members: {', '.join(old) or '-'} → "
                            f"{', '.join(new) or '-'}")
    old_table = {
        (c, ns): t for c, ns, t in NamespaceTeam.objects.values_list(
            "cluster__name", "namespace", "team__name")
    }
    new_table = {k: team for k, (team, _line) in rs.namespaces.items()}
    for key in sorted(set(old_table) | set(new_table), key=lambda k: (k[0] or "", k[1])):
        cluster, ns = key
        where = f"cluster {cluster}" if cluster else "all clusters"
        old, new = old_table.get(key), new_table.get(key)
        if old == new:
            continue
        if affected is not None:
            affected.add(ns)
        if old is None:
            diff.append(f"+ namespace {ns} → {new} ({where})")
        elif new is None:
            diff.append(f"- namespace {ns} → {old} ({where})")
        else:
            diff.append(f"~ namespace {ns}: {old} → {new} ({where})")
    return diff, affected


def apply_ruleset(rs: RuleSet, *, source: str = "<rules>", dry_run: bool = False,
                  recompute: str = "none", user=None) -> ApplyResult:
    """Apply a parsed rule set atomically: all of it or, on any error, nothing.

    Teams and cost centres are upserted (never deleted: budgets and history refer to them);
    the namespace table, keys and default team become exactly what the file says.
    """
    parse_recompute(recompute)
    check_references(rs, source)
    diff, affected = ruleset_diff(rs)
    if dry_run or not diff:
        return ApplyResult(diff, None, 0, dry_run)
    User = get_user_model()
    with transaction.atomic():
        for code, name in rs.cost_centres.items():
            centre, created = CostCentre.objects.get_or_create(code=code, defaults={"name": name})
            if not created and name and centre.name != name:
                centre.name = name
                centre.save(update_fields=["name"])
        for name, spec in rs.teams.items():
            team, _ = Team.objects.get_or_create(name=name)
            if spec.cost_centre_line:
                team.cost_centre = (CostCentre.objects.get(code=spec.cost_centre)
                                    if spec.cost_centre else None)
            if spec.display_name is not None:
                team.display_name = spec.display_name
            team.save()
            if spec.members is not None:
                team.members.set(User.objects.filter(username__in=[u for u, _ in spec.members]))
        teams = dict(Team.objects.values_list("name", "pk"))
        clusters = dict(Cluster.objects.values_list("name", "pk"))
        NamespaceTeam.objects.all().delete()
        NamespaceTeam.objects.bulk_create(
            NamespaceTeam(cluster_id=clusters[c] if c else None, namespace=ns, team_id=teams[t])
            for (c, ns), (t, _line) in rs.namespaces.items()
        )
        row = OwnershipSettings.current()
        row.keys = list(rs.keys)
        row.default_team_id = teams[rs.default_team] if rs.default_team else None
        row.source = source[:300]
        row.save()
        scope = None if affected is None else _clusters_with_namespaces(affected)
        change = _record(diff, source[:300], recompute, scope, user)
    return ApplyResult(diff, change, change.days_marked, False)


# --- coverage ----------------------------------------------------------------------------------

_COST = F("cpu_cost") + F("ram_cost") + F("gpu_cost")


@dataclass(frozen=True)
class Coverage:
    """Ownership coverage of one cluster (or all) in [start, end).

    `total` is the workloads' own cost (CPU + RAM + GPU of workload lines); idle and overhead
    are excluded because they are spread by the idle/shared policy, not by ownership.
    `owned` is the part whose team is a named team; `share` = owned / total (1 when total is 0).
    `unowned_namespaces` / `unowned_workloads`: the largest unowned costs, to fix first.
    """

    start: date
    end: date
    total: Decimal
    owned: Decimal
    share: float
    by_team: list[tuple[str, Decimal]]
    unowned_namespaces: list[dict]
    unowned_workloads: list[dict]

    @property
    def unowned(self) -> Decimal:
        return self.total - self.owned


def coverage(cluster: Cluster | None, start: date, end: date, top: int = 10) -> Coverage:
    """Share of cost that reached a named team, with the top unowned namespaces and workloads."""
    lines = AllocationLine.objects.filter(
        kind=AllocationLine.Kind.WORKLOAD, day__gte=start, day__lt=end
    )
    if cluster is not None:
        lines = lines.filter(cluster=cluster)
    by_team = [
        (r["team"], r["cost"] or Decimal(0))
        for r in lines.values("team").annotate(cost=Sum(_COST)).order_by("-cost")
    ]
    total = sum((c for _, c in by_team), Decimal(0))
    owned = sum((c for t, c in by_team if t != UNALLOCATED), Decimal(0))
    unowned = lines.filter(team=UNALLOCATED)
    namespaces = list(
        unowned.values("cluster__name", "namespace").annotate(cost=Sum(_COST))
        .order_by("-cost")[:top]
    )
    workloads = list(
        unowned.values("cluster__name", "namespace", "controller_kind", "controller")
        .annotate(cost=Sum(_COST)).order_by("-cost")[:top]
    )
    share = float(owned / total) if total else 1.0
    return Coverage(start, end, total, owned, share, by_team, namespaces, workloads)


def rule_breakdown(cluster: Cluster) -> dict[str, int]:
    """How many of the cluster's known pods each rule decides (for the "why this team" view)."""
    from costapp.services import ownership_resolver

    resolver = ownership_resolver(cluster)
    counts: dict[str, int] = defaultdict(int)
    for ns, labels, ann, kind, ctrl in Pod.objects.filter(cluster=cluster).values_list(
        "namespace", "labels", "annotations", "controller_kind", "controller"
    ).iterator(chunk_size=5000):
        counts[resolver.resolve(ns, labels, ann, kind, ctrl).rule] += 1
    return dict(counts)


def namespace_table() -> list[NamespaceTeam]:
    return list(NamespaceTeam.objects.select_related("cluster", "team")
                .order_by(F("cluster__name").asc(nulls_first=True), "namespace"))


__all__ = [
    "ApplyResult", "Coverage", "OwnershipConfig", "apply_ruleset", "check_references",
    "coverage", "current_config", "mark_days_for_recompute", "namespace_table",
    "parse_recompute", "recompute_job", "rule_breakdown", "ruleset_diff", "set_namespace_team",
    "set_settings", "workload_labels",
]
