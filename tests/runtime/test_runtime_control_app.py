"""The control adapter's routes, flags and authentication, against a stub process state."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from naftiko.adapters.control.app import build_control_app, control_features
from naftiko.adapters.control.plan import ControlAdapterPlan
from naftiko.runtime.metrics import METRICS_CONTENT_TYPE, Metrics
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Authentication


class StubState:
    def __init__(self) -> None:
        self.ready = False
        self.metrics = Metrics()

    def adapter_states(self) -> list[dict[str, Any]]:
        state = "started" if self.ready else "starting"
        return [
            {
                "type": "rest",
                "namespace": "shop-rest",
                "url": "http://127.0.0.1:1",
                "port": 1,
                "state": state,
            }
        ]

    def is_ready(self) -> bool:
        return self.ready

    def status_document(self) -> dict[str, Any]:
        return {"capabilities": [{"label": "Shop"}], "adapters": self.adapter_states()}

    def metrics_exposition(self) -> tuple[bytes, str]:
        return self.metrics.exposition(), METRICS_CONTENT_TYPE


def plan(**kwargs: Any) -> ControlAdapterPlan:
    fields: dict[str, Any] = {
        "type": "control",
        "namespace": "control",
        "address": None,
        "port": 9091,
        "description": None,
        "authentication": None,
    }
    return ControlAdapterPlan(**{**fields, **kwargs})


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ctl")


async def test_health_ready_follows_the_state() -> None:
    state = StubState()
    async with client(build_control_app(state, plan())) as http:
        assert (await http.get("/health/live")).json() == {"status": "UP"}
        before = await http.get("/health/ready")
        assert before.status_code == 503
        assert before.json()["status"] == "DEGRADED"
        assert before.json()["adapters"][0]["state"] == "starting"
        state.ready = True
        after = await http.get("/health/ready")
        assert after.status_code == 200 and after.json()["status"] == "UP"


async def test_metrics_and_status() -> None:
    state = StubState()
    state.metrics.requests.labels("rest", "shop-rest", "list", "200").inc()
    async with client(build_control_app(state, plan())) as http:
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "naftiko_requests_total" in metrics.text
        assert (await http.get("/status")).json()["capabilities"] == [{"label": "Shop"}]


@pytest.mark.parametrize(
    ("management", "observability", "expected"),
    [
        ({}, {}, {"health": True, "info": True, "metrics": True}),
        ({"health": False, "info": False}, {}, {"health": False, "info": False, "metrics": True}),
        ({}, {"enabled": False}, {"health": True, "info": True, "metrics": False}),
        (
            {},
            {"metrics": {"local": {"enabled": False}}},
            {"health": True, "info": True, "metrics": False},
        ),
    ],
)
def test_features_follow_management_and_observability(
    management: dict[str, Any], observability: dict[str, Any], expected: dict[str, bool]
) -> None:
    assert control_features(plan(management=management, observability=observability)) == expected


async def test_disabled_routes_are_absent() -> None:
    app = build_control_app(
        StubState(), plan(management={"info": False}, observability={"enabled": False})
    )
    async with client(app) as http:
        assert (await http.get("/status")).status_code == 404
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/health/live")).status_code == 200


async def test_declared_authentication_protects_all_but_probes() -> None:
    auth = Authentication(type="bearer", token="{{CONTROL_TOKEN}}")
    bindings = Bindings([(None, "CONTROL_TOKEN", "ctl-token-123")])
    app = build_control_app(StubState(), plan(authentication=auth), bindings=bindings)
    async with client(app) as http:
        assert (await http.get("/status")).status_code == 401
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 503  # not ready, but open
        ok = await http.get("/status", headers={"Authorization": "Bearer ctl-token-123"})
        assert ok.status_code == 200


def test_unresolvable_credential_refuses_to_build() -> None:
    auth = Authentication(type="bearer", token="{{MISSING_TOKEN}}")
    with pytest.raises(ValueError):
        build_control_app(StubState(), plan(authentication=auth))
