"""The populated demo: a simulated cluster with teams, history, prices and allocation."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Group, User

from costapp import services
from costapp.models import AllocationPolicy, Cluster, CostCentre, NamespaceTeam, Overhead, Team
from costapp.simulate import EXPLICIT_NAMESPACE_TEAMS, TEAMS

DEMO_USERS = {
    # username: (password, role, teams)
    "admin": ("costapp-admin", "admin", ()),
    "finance": ("costapp-finance", "finance", ()),
    "payments-dev": ("costapp-payments", "member", ("payments",)),
    "search-dev": ("costapp-search", "member", ("search",)),
}
COST_CENTRES = {"payments": "CC-100", "checkout": "CC-100", "search": "CC-200", "data": "CC-300",
                "ml": "CC-300", "storefront": "CC-100", "platform": "CC-900"}


def ensure_world(cluster_name: str = "demo") -> Cluster:
    """Teams, cost centres, the namespace table, the policy, users: everything but history."""
    for team_name in TEAMS:
        centre, _ = CostCentre.objects.get_or_create(code=COST_CENTRES[team_name])
        Team.objects.update_or_create(name=team_name, defaults={"cost_centre": centre})
    cluster, _ = Cluster.objects.get_or_create(
        name=cluster_name,
        defaults={"simulated": True, "provider": "aws", "region": "us-east-1", "currency": "USD"},
    )
    for ns, team in EXPLICIT_NAMESPACE_TEAMS.items():
        NamespaceTeam.objects.update_or_create(
            cluster=None, namespace=ns, defaults={"team": Team.objects.get(name=team)}
        )
    if not Overhead.objects.filter(cluster=cluster, name="EKS control plane").exists():
        Overhead.objects.create(cluster=cluster, name="EKS control plane", hourly=Decimal("0.10"))
    policy = AllocationPolicy.current()
    if not policy.shared_namespaces:
        policy.shared_namespaces = ["kube-system"]
        policy.label_keys = ["app"]
        policy.save()
    finance, _ = Group.objects.get_or_create(name="finance")
    for username, (password, role, teams) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        user.is_staff = user.is_superuser = role == "admin"
        user.save()
        if role == "finance":
            user.groups.add(finance)
        for team in teams:
            Team.objects.get(name=team).members.add(user)
    return cluster


def seed(days: int, progress: services.ProgressFn | None = None) -> Cluster:
    """Build `days` of simulated history up to now, price it and allocate it."""
    cluster = ensure_world()
    services.simulate_history(cluster, days, progress=progress)
    services.allocate_dirty_days(cluster.pk, progress=progress)
    from costapp import planner  # capacity plans are otherwise computed by the daily beat task

    planner.refresh_all()
    return cluster
