"""Who owns a pod: the ownership rules, evaluated in a fixed, documented order.

1. pod label, 2. pod annotation, 3. workload label, 4. namespace label, 5. namespace annotation
(each tries the configured keys in order; default `team`, `owner`, `app.kubernetes.io/part-of`),
6. the explicit namespace → team table, 7. the default team (none by default: unallocated).

The rule set can also come from a YAML file kept in git (`parse_ruleset`, schema in
`RULESET_SCHEMA`); parsing is pure and reports every error with its line.

Only names of known teams count when `known_teams` is given: a label naming no team falls
through to the next rule instead of inventing a team.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import yaml

DEFAULT_KEYS = ("team", "owner", "app.kubernetes.io/part-of")


class Resolution(NamedTuple):
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


def explain_rules(keys: tuple[str, ...], default_team: str | None) -> list[tuple[int, str, str]]:
    """The rule order as shown in the UI: (position, rule, what it reads)."""
    k = ", ".join(f"`{x}`" for x in keys)
    return [
        (1, "pod label", f"the pod's labels {k}"),
        (2, "pod annotation", f"the pod's annotations {k}"),
        (3, "workload label", f"labels {k} shared by the pods of its controller"),
        (4, "namespace label", f"the namespace's labels {k}"),
        (5, "namespace annotation", f"the namespace's annotations {k}"),
        (6, "namespace table", "the explicit namespace → team table (cluster-specific first)"),
        (7, "default team", default_team or "none: the pod stays __unallocated__"),
    ]


def common_workload_labels(
    pods: Iterable[tuple[str, str, str, Mapping[str, str] | None]],
) -> dict[tuple[str, str, str], dict[str, str]]:
    """Approximate each workload's labels from its pods: (namespace, kind, name) → labels.

    Workload objects (Deployment, StatefulSet, CronJob …) are not collected, so a key counts as a
    workload label when at least one pod of the controller carries it and every pod that carries
    it agrees on the value. Pods that lack the key (an older template, a Job pod created before
    the label was added) then inherit it through rule 3. Requiring *every* pod to carry the key
    would make rule 3 unreachable: each such pod is already decided by rule 1.
    Conflicting values drop the key. Pods without a controller are skipped.
    """
    seen: dict[tuple[str, str, str], dict[str, str | None]] = {}
    for namespace, kind, name, labels in pods:
        if not kind or not name:
            continue
        acc = seen.setdefault((namespace, kind, name), {})
        for key, value in (labels or {}).items():
            if key not in acc:
                acc[key] = value
            elif acc[key] != value:
                acc[key] = None  # conflict: not a workload label
    return {
        wl: {k: v for k, v in acc.items() if v is not None}
        for wl, acc in seen.items()
        if any(v is not None for v in acc.values())
    }


# --- the rule set as a YAML file (GitOps) ------------------------------------------------------

RULESET_SCHEMA = """\
version: 1                        # required, always 1
keys: [team, owner, app.kubernetes.io/part-of]   # optional; label/annotation keys, in order
default_team: platform            # optional; null or absent = unowned pods stay __unallocated__
cost_centres:                     # optional; finance codes → name (or {name: ...})
  CC-100: Commerce
teams:                            # optional; upserted, never deleted
  payments:
    cost_centre: CC-100           # optional; a code from cost_centres or already in costapp
    display_name: Payments        # optional
    members: [alice, bob]         # optional; when present, replaces the team's members
namespaces:                       # the namespace → team table for every cluster (authoritative)
  storefront: storefront
clusters:                         # optional; per-cluster entries win over `namespaces`
  prod-eu:
    namespaces:
      legacy: payments
"""

ERR_NOT_MAPPING = "must be a mapping"
ERR_NOT_LIST = "must be a list of strings"
ERR_NOT_STRING = "must be a string"
ERR_UNKNOWN_KEY = "unknown key {key!r} (allowed: {allowed})"
ERR_DUPLICATE = "duplicate key {key!r} (first at line {first})"
ERR_VERSION = "version must be 1"
ERR_NO_VERSION = "missing `version: 1`"
ERR_BAD_NAME = "{what} {name!r} is not a valid name ({rule})"
ERR_UNKNOWN_TEAM = "team {name!r} is neither in `teams` nor known to costapp"
ERR_UNKNOWN_CENTRE = "cost centre {code!r} is neither in `cost_centres` nor known to costapp"
ERR_UNKNOWN_CLUSTER = "cluster {name!r} is not registered in costapp"
ERR_UNKNOWN_USER = "user {name!r} does not exist"
ERR_EMPTY_KEYS = "keys must list at least one key"
ERR_SYNTAX = "YAML syntax error: {problem}"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class RulesetError(ValueError):
    """An invalid rule-set file: `errors` lists (line, reason), 1-based lines, in file order."""

    def __init__(self, errors: list[tuple[int, str]], source: str = "<rules>") -> None:
        self.errors = sorted(errors)
        self.source = source
        super().__init__("\n".join(f"{source}:{line}: {reason}" for line, reason in self.errors))


@dataclass(frozen=True)
class TeamSpec:
    """A team as the file declares it; `members` None means "leave membership alone"."""

    name: str
    line: int
    cost_centre: str | None = None
    cost_centre_line: int = 0
    display_name: str | None = None
    members: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True)
class RuleSet:
    """A parsed, shape-valid rule set. Names it references still need checking against the
    database (`ownership_rules.apply_ruleset` does that before writing anything).

    `namespaces` maps (cluster name or None for every cluster, namespace) → (team, line).
    """

    keys: tuple[str, ...]
    default_team: str | None
    default_team_line: int
    cost_centres: dict[str, str]
    teams: dict[str, TeamSpec]
    namespaces: dict[tuple[str | None, str], tuple[str, int]]
    cluster_lines: dict[str, int]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Walks a composed YAML node tree, collecting every error with its line."""

    def __init__(self) -> None:
        self.errors: list[tuple[int, str]] = []

    def err(self, node_or_line: yaml.Node | int, reason: str) -> None:
        line = node_or_line if isinstance(node_or_line, int) else _line(node_or_line)
        self.errors.append((line, reason))

    def mapping(self, node: yaml.Node, where: str, allowed: tuple[str, ...] | None = None,
                ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """key → (key node, value node); reports non-mappings, non-string and duplicate keys."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"{where} {ERR_NOT_MAPPING}")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.err(knode, f"{where}: keys {ERR_NOT_STRING}")
                continue
            key = knode.value
            if key in out:
                self.err(knode, f"{where}: " + ERR_DUPLICATE.format(
                    key=key, first=_line(out[key][0])))
                continue
            if allowed is not None and key not in allowed:
                self.err(knode, f"{where}: " + ERR_UNKNOWN_KEY.format(
                    key=key, allowed=", ".join(allowed)))
                continue
            out[key] = (knode, vnode)
        return out

    def string(self, node: yaml.Node, where: str, nullable: bool = False) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:null":
                if nullable:
                    return None
                self.err(node, f"{where} {ERR_NOT_STRING}")
                return None
            if node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int"):
                return node.value
        self.err(node, f"{where} {ERR_NOT_STRING}")
        return None

    def strings(self, node: yaml.Node, where: str) -> list[tuple[str, int]]:
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, f"{where} {ERR_NOT_LIST}")
            return []
        out = []
        for item in node.value:
            value = self.string(item, f"{where} item")
            if value is not None:
                out.append((value, _line(item)))
        return out

    def name(self, value: str | None, line: int, what: str, pattern: re.Pattern, rule: str,
             ) -> str | None:
        if value is None:
            return None
        if not pattern.match(value) or len(value) > 253:
            self.err(line, ERR_BAD_NAME.format(what=what, name=value, rule=rule))
            return None
        return value


TOP_KEYS = ("version", "keys", "default_team", "cost_centres", "teams", "namespaces", "clusters")


def parse_ruleset(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and shape-check a rule-set YAML file (schema: RULESET_SCHEMA).

    Every problem is collected with its line; any problem raises RulesetError (nothing is
    returned half-valid). Names are checked for form here and for existence by the caller.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesetError([((mark.line + 1) if mark else 1, ERR_SYNTAX.format(problem=problem))],
                           source) from None
    r = _Reader()
    if root is None:
        raise RulesetError([(1, ERR_NO_VERSION)], source)
    top = r.mapping(root, "the file", TOP_KEYS)
    if isinstance(root, yaml.MappingNode) and "version" not in top:
        r.err(root, ERR_NO_VERSION)
    if "version" in top and r.string(top["version"][1], "version") != "1":
        r.err(top["version"][1], ERR_VERSION)

    keys: tuple[str, ...] = DEFAULT_KEYS
    if "keys" in top:
        items = r.strings(top["keys"][1], "keys")
        good = [r.name(k, line, "key", _LABEL_KEY, "a Kubernetes label key") for k, line in items]
        if isinstance(top["keys"][1], yaml.SequenceNode) and not items:
            r.err(top["keys"][1], ERR_EMPTY_KEYS)
        keys = tuple(k for k in good if k)

    default_team, default_line = None, 0
    if "default_team" in top:
        node = top["default_team"][1]
        default_line = _line(node)
        default_team = r.name(r.string(node, "default_team", nullable=True), default_line,
                              "team", _SLUG, "letters, digits, - and _")

    centres: dict[str, str] = {}
    for code, (knode, vnode) in r.mapping(top["cost_centres"][1], "cost_centres").items() \
            if "cost_centres" in top else ():
        if isinstance(vnode, yaml.MappingNode):
            fields = r.mapping(vnode, f"cost centre {code}", ("name",))
            name = r.string(fields["name"][1], f"cost centre {code} name") if "name" in fields \
                else ""
        else:
            name = r.string(vnode, f"cost centre {code}", nullable=True)
        if len(code) > 50:
            r.err(knode, ERR_BAD_NAME.format(what="cost centre", name=code, rule="≤ 50 chars"))
        centres[code] = name or ""

    teams: dict[str, TeamSpec] = {}
    for name, (knode, vnode) in r.mapping(top["teams"][1], "teams").items() \
            if "teams" in top else ():
        if not r.name(name, _line(knode), "team", _SLUG, "letters, digits, - and _"):
            continue
        fields = r.mapping(vnode, f"team {name}", ("cost_centre", "display_name", "members"))
        centre, centre_line = None, 0
        if "cost_centre" in fields:
            centre = r.string(fields["cost_centre"][1], f"team {name} cost_centre", nullable=True)
            centre_line = _line(fields["cost_centre"][1])
        display = (r.string(fields["display_name"][1], f"team {name} display_name")
                   if "display_name" in fields else None)
        members = (tuple(r.strings(fields["members"][1], f"team {name} members"))
                   if "members" in fields else None)
        teams[name] = TeamSpec(name, _line(knode), centre, centre_line, display, members)

    namespaces: dict[tuple[str | None, str], tuple[str, int]] = {}

    def read_table(node: yaml.Node, cluster: str | None) -> None:
        where = "namespaces" if cluster is None else f"cluster {cluster} namespaces"
        for ns, (knode, vnode) in r.mapping(node, where).items():
            ok = r.name(ns, _line(knode), "namespace", _DNS_LABEL, "a DNS-1123 label")
            team = r.string(vnode, f"{where}: {ns}")
            team = r.name(team, _line(vnode), "team", _SLUG, "letters, digits, - and _")
            if ok and team:
                namespaces[(cluster, ns)] = (team, _line(vnode))

    if "namespaces" in top:
        read_table(top["namespaces"][1], None)
    cluster_lines: dict[str, int] = {}
    for cname, (knode, vnode) in r.mapping(top["clusters"][1], "clusters").items() \
            if "clusters" in top else ():
        cluster_lines[cname] = _line(knode)
        fields = r.mapping(vnode, f"cluster {cname}", ("namespaces",))
        if "namespaces" in fields:
            read_table(fields["namespaces"][1], cname)

    if r.errors:
        raise RulesetError(r.errors, source)
    return RuleSet(keys, default_team, default_line, centres, teams, namespaces, cluster_lines)
