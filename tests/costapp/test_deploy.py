"""Deployment artefacts: compose file, Kubernetes manifests, production settings."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_docker_compose_file_is_valid_and_runs_every_service():
    assert shutil.which("docker-compose"), "Debian's docker-compose is installed by make test"
    env = dict(os.environ, SECRET_KEY="compose-check")
    out = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    services = yaml.safe_load(out)["services"]
    assert {"db", "redis", "web", "worker", "beat"} <= services.keys()
    for name in ("db", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], name


def test_compose_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_kubernetes_manifests_validate_against_the_schema():
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "-k", "1.31.0", "--strict",
         str(REPO / "deploy" / "costapp.yaml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_account_is_read_only_on_what_sampling_needs():
    docs = list(yaml.safe_load_all((REPO / "deploy" / "costapp.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    resources = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
                 for r in rule["resources"]}
    for need in [("", "nodes"), ("", "pods"), ("", "namespaces"), ("apps", "replicasets"),
                 ("batch", "jobs"), ("metrics.k8s.io", "pods"), ("metrics.k8s.io", "nodes")]:
        assert need in resources


def test_check_deploy_is_clean_under_production_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    for line in (REPO / "deploy" / "production.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING",
         "--tag", "security"],
        cwd=REPO, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
