"""The Kubernetes reader is pure: its modules import no Django (ARCHITECTURE.md boundaries)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import costapp.kube

PURE = ["records", "quantity", "parse", "client", "fake_apiserver", "bench"]


@pytest.mark.parametrize("module", PURE)
def test_reader_module_imports_no_django(module: str) -> None:
    path = Path(costapp.kube.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] in ("django", "celery")}
    assert not {
        name
        for name in imported
        if name.startswith("costapp.") and not name.startswith("costapp.kube")
    }
