"""Template filter for the nav: whether a user may open the billing pages."""

from __future__ import annotations

from django import template

from costapp import access

register = template.Library()


@register.filter
def sees_everything(user) -> bool:
    """Finance staff and admins (access.sees_everything): they see Bills and Reconciliation."""
    return access.sees_everything(user)
