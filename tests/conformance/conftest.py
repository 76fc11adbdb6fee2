"""Conformance suite: the hardening kit's in-process serving and MCP helpers are shared."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardening"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
