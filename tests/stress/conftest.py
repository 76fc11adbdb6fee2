"""The stress suite runs only when asked: ``NAFTIKO_STRESS=1``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The shared load driver lives beside the hardening tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardening"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("NAFTIKO_STRESS") == "1":
        return
    skip = pytest.mark.skip(reason="stress tests run with NAFTIKO_STRESS=1")
    for item in items:
        if "tests/stress/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)
