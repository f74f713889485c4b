"""Paths to the real FOCUS sample and price catalogs (read from ../shared/data, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def focus_sample(shared_data: Path) -> Path:
    """The official FOCUS 1.0 sample: 1,000 rows, AWS / Microsoft / Oracle, NULL literals."""
    return shared_data / "01_focus" / "finops_focus_sample_data" / "focus_sample_1000.csv"


@pytest.fixture(scope="session")
def focus_bytes(focus_sample: Path) -> bytes:
    return focus_sample.read_bytes()


@pytest.fixture(scope="session")
def prices_dir(shared_data: Path) -> Path:
    return shared_data / "03_prices"


# The billing models live in costapp/models/billing.py; importing them registers their tables
# for the test database even before costapp/models/__init__.py imports the module.
import costapp.models.billing  # noqa: E402, F401
