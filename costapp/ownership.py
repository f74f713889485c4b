"""Who owns a pod: the ownership rules, evaluated in a fixed, documented order.

1. pod label, 2. pod annotation, 3. workload label, 4. namespace label, 5. namespace annotation
(each tries the configured keys in order; default `team`, `owner`, `app.kubernetes.io/part-of`),
6. the explicit namespace → team table, 7. the default team (none by default: unallocated).

Only names of known teams count when `known_teams` is given: a label naming no team falls
through to the next rule instead of inventing a team.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_KEYS = ("team", "owner", "app.kubernetes.io/part-of")


@dataclass(frozen=True)
class Resolution:
    """A team (or None) and the rule that decided it, for the UI's "why this team"."""

    team: str | None
    rule: str


@dataclass
class OwnershipResolver:
    """Resolves pods to teams; build once per cluster-day, call per pod."""

    keys: tuple[str, ...] = DEFAULT_KEYS
    namespace_table: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    namespace_annotations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    workload_labels: Mapping[tuple[str, str, str], Mapping[str, str]] = field(default_factory=dict)
    default_team: str | None = None
    known_teams: frozenset[str] | None = None

    def _pick(self, values: Mapping[str, str] | None) -> str | None:
        if not values:
            return None
        for key in self.keys:
            value = values.get(key)
            if value and (self.known_teams is None or value in self.known_teams):
                return value
        return None

    def resolve(
        self,
        namespace: str,
        pod_labels: Mapping[str, str] | None,
        pod_annotations: Mapping[str, str] | None = None,
        controller_kind: str = "",
        controller: str = "",
    ) -> Resolution:
        checks = (
            ("pod label", pod_labels),
            ("pod annotation", pod_annotations),
            ("workload label", self.workload_labels.get((namespace, controller_kind, controller))),
            ("namespace label", self.namespace_labels.get(namespace)),
            ("namespace annotation", self.namespace_annotations.get(namespace)),
        )
        for rule, values in checks:
            team = self._pick(values)
            if team:
                return Resolution(team, rule)
        team = self.namespace_table.get(namespace)
        if team:
            return Resolution(team, "namespace table")
        if self.default_team:
            return Resolution(self.default_team, "default team")
        return Resolution(None, "unowned")
