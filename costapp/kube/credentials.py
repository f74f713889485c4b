"""Cluster credentials at rest: kubeconfigs encrypted with Fernet.

The key is ``COSTAPP_FERNET_KEY`` (settings or environment; a Fernet key, i.e. 32 bytes in
urlsafe base64). Several comma-separated keys rotate: the first encrypts, any of them decrypts
(``MultiFernet``), so a new key can be put first and old rows re-encrypted with
``rotate_kubeconfig``. Without a key (local demo), a key is derived from ``SECRET_KEY`` — the
same fallback costapp.notify uses — so a database copied without its settings stays unreadable.

A stored kubeconfig must stand on its own on a worker that is not the machine it came from, so
``prepare_kubeconfig`` keeps only the chosen context, its cluster and user, and inlines the files
it refers to (``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``).
``exec`` credential plugins (``aws eks get-token``, ``gke-gcloud-auth-plugin``) are kept as they
are: the worker then needs that command — reported as a warning.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = [
    "CredentialsError",
    "PreparedKubeconfig",
    "decrypt_kubeconfig",
    "encrypt_kubeconfig",
    "prepare_kubeconfig",
    "rotate_kubeconfig",
]

ERR_BAD_KEY = "COSTAPP_FERNET_KEY is not a valid Fernet key (32 bytes, urlsafe base64): {}"
ERR_UNDECRYPTABLE = (
    "the stored kubeconfig cannot be decrypted with the current COSTAPP_FERNET_KEY "
    "(was the key changed without keeping the old one after it?)"
)
ERR_NOT_KUBECONFIG = "{path}: not a kubeconfig ({reason})"
ERR_NO_CONTEXT = "{path}: no context {context!r}; contexts are: {available}"
ERR_NO_CURRENT = "{path}: no current-context set; pass --context (contexts are: {available})"
ERR_MISSING_ENTRY = "{path}: context {context!r} refers to a missing {kind} {name!r}"
ERR_FILE = "{path}: cannot read {what} file {file}: {error}"
WARN_EXEC = (
    "user {user!r} authenticates with the exec plugin {command!r}: every worker needs that "
    "command installed and its cloud credentials"
)


class CredentialsError(Exception):
    """A kubeconfig or key problem, with a message fit for the operator."""


def _keys() -> list[bytes]:
    raw = os.environ.get("COSTAPP_FERNET_KEY", "")
    secret = ""
    try:
        from django.conf import settings

        if settings.configured:
            raw = getattr(settings, "COSTAPP_FERNET_KEY", "") or raw
            secret = getattr(settings, "SECRET_KEY", "")
    except ImportError:  # pragma: no cover - Django is always installed with costapp
        pass
    keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    if not keys:
        if not secret:
            raise CredentialsError(
                "COSTAPP_FERNET_KEY is not set (and no SECRET_KEY to derive one)"
            )
        keys = [base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())]
    return keys


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in _keys()])
    except ValueError as exc:
        raise CredentialsError(ERR_BAD_KEY.format(exc)) from exc


def encrypt_kubeconfig(text: str) -> str:
    """Encrypt a kubeconfig (YAML text) for ``Cluster.kubeconfig_encrypted``."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt_kubeconfig(token: str) -> str:
    """The kubeconfig YAML text back from its encrypted form."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsError(ERR_UNDECRYPTABLE) from exc


def rotate_kubeconfig(token: str) -> str:
    """Re-encrypt with the first (newest) key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsError(ERR_UNDECRYPTABLE) from exc


@dataclass(frozen=True)
class PreparedKubeconfig:
    """A self-contained kubeconfig for one context.

    text: the YAML to encrypt; context: the context it uses; server: the API server URL;
    warnings: what the operator should know (exec plugins).
    """

    text: str
    context: str
    server: str
    warnings: list[str] = field(default_factory=list)


def _named(entries: Any, name: str) -> dict[str, Any] | None:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def _inline(section: dict[str, Any], key: str, base: Path, path: str, what: str) -> None:
    """Replace ``key: file`` by ``key-data: base64(content)`` (resolving relative paths)."""
    file = section.get(key)
    if not file:
        return
    resolved = (base / os.path.expanduser(str(file))).resolve()
    try:
        content = resolved.read_bytes()
    except OSError as exc:
        raise CredentialsError(ERR_FILE.format(path=path, what=what, file=file, error=exc)) from exc
    del section[key]
    section[key + "-data"] = base64.b64encode(content).decode()


def prepare_kubeconfig(path: str | Path, context: str | None = None) -> PreparedKubeconfig:
    """Read a kubeconfig file and reduce it to one self-contained context.

    Steps: 1. parse the YAML; 2. pick ``context`` or the current-context; 3. keep that context,
    its cluster and its user only; 4. inline referenced files; 5. note exec plugins.
    """
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(ERR_NOT_KUBECONFIG.format(path=path, reason=exc)) from exc
    if not isinstance(config, dict) or not isinstance(config.get("contexts"), list):
        raise CredentialsError(ERR_NOT_KUBECONFIG.format(path=path, reason="no contexts list"))
    available = (
        ", ".join(str(c.get("name")) for c in config["contexts"] if isinstance(c, dict)) or "none"
    )
    name = context or config.get("current-context")
    if not name:
        raise CredentialsError(ERR_NO_CURRENT.format(path=path, available=available))
    ctx = _named(config["contexts"], name)
    if ctx is None:
        raise CredentialsError(ERR_NO_CONTEXT.format(path=path, context=name, available=available))
    body = ctx.get("context") or {}
    cluster = _named(config.get("clusters"), body.get("cluster", ""))
    user = _named(config.get("users"), body.get("user", ""))
    if cluster is None:
        raise CredentialsError(
            ERR_MISSING_ENTRY.format(
                path=path, context=name, kind="cluster", name=body.get("cluster")
            )
        )
    base = path.resolve().parent
    cluster_body = dict(cluster.get("cluster") or {})
    _inline(cluster_body, "certificate-authority", base, str(path), "certificate-authority")
    users = []
    warnings = []
    if user is not None:
        user_body = dict(user.get("user") or {})
        _inline(user_body, "client-certificate", base, str(path), "client-certificate")
        _inline(user_body, "client-key", base, str(path), "client-key")
        token_file = user_body.pop("tokenFile", None)
        if token_file:
            try:
                user_body["token"] = (base / str(token_file)).read_text().strip()
            except OSError as exc:
                raise CredentialsError(
                    ERR_FILE.format(path=path, what="tokenFile", file=token_file, error=exc)
                ) from exc
        if isinstance(user_body.get("exec"), dict):
            warnings.append(
                WARN_EXEC.format(user=user.get("name"), command=user_body["exec"].get("command"))
            )
        users = [{"name": user["name"], "user": user_body}]
    reduced = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [{"name": name, "context": body}],
        "clusters": [{"name": cluster["name"], "cluster": cluster_body}],
        "users": users,
    }
    return PreparedKubeconfig(
        text=yaml.safe_dump(reduced, sort_keys=False),
        context=name,
        server=str(cluster_body.get("server", "")),
        warnings=warnings,
    )
