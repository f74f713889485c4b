"""Ownership configuration read by the allocation service (keys, default team, workload labels).

Kept apart from `ownership.py` (pure rules) so the resolver stays testable without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from costapp.ownership import DEFAULT_KEYS


@dataclass(frozen=True)
class OwnershipConfig:
    keys: tuple[str, ...] = DEFAULT_KEYS
    default_team: str | None = None


def current_config() -> OwnershipConfig:
    return OwnershipConfig()


def workload_labels(cluster) -> dict:
    """(namespace, kind, name) → labels of the workload object; none collected yet."""
    return {}
