"""Shared fixtures: paths to the repository and ../shared, and the fake upstreams.

The fakes run in background threads (``ServerThread``) so the same fixture serves async
tests, sync tests and tests that drive a ``naftiko-run`` subprocess. Each is
function-scoped: tests tune their knobs and read their request records freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.faults import FaultServerThread, FaultState
from fakes.shipyard import Dockyard, LiveShipyard, Registry
from fakes.tiktok import FakeTikTok
from support.servers import LiveFake, ServerThread

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir(repo_root: Path) -> Path:
    """``../shared`` beside the repository (docs, corpus, schema); skip when absent."""
    path = repo_root.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def tutorial_dir(shared_dir: Path) -> Path:
    """The official framework tutorial (steps 1-11 and ``shared/``)."""
    path = shared_dir / "corpus" / "naftiko-framework-tutorial"
    if not path.is_dir():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def tiktok_capability_path(repo_root: Path) -> Path:
    """The TikTok Login Kit capability exactly as published (JSON bodies, /refresh/)."""
    for path in (
        repo_root / "capabilities" / "tiktok-login-kit-oauth.yaml",
        repo_root.parent / "shared" / "docs" / "tiktok-login-kit-oauth.yaml",
    ):
        if path.is_file():
            return path
    pytest.skip("the published TikTok capability is not available")


@pytest.fixture(scope="session")
def tiktok_example_path(repo_root: Path) -> Path:
    """Our corrected TikTok capability (form bodies, refresh via /v2/oauth/token/)."""
    return repo_root / "examples" / "tiktok-login-kit-oauth" / "tiktok-login-kit-oauth.yaml"


@pytest.fixture
def fake_tiktok() -> Iterator[LiveFake[FakeTikTok]]:
    """The fake TikTok OAuth API on loopback: ``.url`` and ``.state`` (a ``FakeTikTok``)."""
    state = FakeTikTok()
    with ServerThread(state.app) as server:
        yield LiveFake(server.url, state)


@pytest.fixture
def shipyard() -> Iterator[LiveShipyard]:
    """The tutorial's Maritime Registry and Legacy Dockyard, each on its own port."""
    registry, dockyard = Registry(), Dockyard()
    with ServerThread(registry.app) as reg, ServerThread(dockyard.app) as dock:
        yield LiveShipyard(reg.url, dock.url, registry, dockyard)


@pytest.fixture
def fault_upstream() -> Iterator[LiveFake[FaultState]]:
    """The fault-injecting upstream (see ``fakes.faults``): ``.url`` and ``.state``."""
    with FaultServerThread() as server:
        yield LiveFake(server.url, server.state)
