"""The engine is pure: importing it pulls in no Django (STYLE.md, practice 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_allocation_does_not_import_django_or_pandas() -> None:
    code = (
        "import sys, allocation, allocation.csvio, allocation.__main__\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'pandas')]\n"
        "print(bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_public_names_are_listed_in_all() -> None:
    import allocation

    for name in allocation.__all__:
        assert hasattr(allocation, name)
    assert "AllocationError" in allocation.__all__
