"""Who may see which money: the one place the rule lives.

Pages, the API, CSV exports and the chargeback statement all ask ``visible_teams(user)``:

* finance staff (group ``finance``) and admins (``is_superuser`` or ``is_staff``) see
  everything → ``None``;
* a team member (``Team.members``) sees only their own teams' lines → the set of team names;
  other teams' money reaches them only inside aggregate idle / shared amounts, never by name;
* anyone else sees nothing → the empty set (pages explain it, the API answers 403).

Only admins change settings (``can_change_settings``).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

FINANCE_GROUP = "finance"

E_NO_ACCESS = (
    "You are not a member of any team and not in the finance group, so there is no cost data "
    "you may see. Ask an administrator to add you to your team."
)

__all__ = [
    "E_NO_ACCESS",
    "FINANCE_GROUP",
    "HasCostAccess",
    "can_change_settings",
    "has_any_access",
    "sees_everything",
    "visible_teams",
]


def sees_everything(user) -> bool:
    """Finance staff and admins see every team, idle and shared line."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser or user.is_staff:
        return True
    return user.groups.filter(name=FINANCE_GROUP).exists()


def visible_teams(user) -> frozenset[str] | None:
    """``None`` when the user sees every team, else the names of the teams they may see
    (empty when they may see nothing)."""
    if sees_everything(user):
        return None
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return frozenset(user.teams.values_list("name", flat=True))


def has_any_access(user) -> bool:
    """True when the user may see some cost data."""
    teams = visible_teams(user)
    return teams is None or bool(teams)


def can_change_settings(user) -> bool:
    """Only admins change settings (policy, clusters, prices, teams)."""
    return bool(getattr(user, "is_authenticated", False) and (user.is_superuser or user.is_staff))


class HasCostAccess(BasePermission):
    """DRF permission: authenticated and allowed to see some cost data (403 otherwise)."""

    message = E_NO_ACCESS

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and has_any_access(
            request.user
        )


def finance_only(message: str):
    """A view decorator: finance staff and admins only, others get 403 with `message`.

    (Anonymous users never get here: the login middleware redirects them first.)
    """
    from functools import wraps

    from django.core.exceptions import PermissionDenied

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not sees_everything(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
