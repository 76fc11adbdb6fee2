"""Traces end to end: ``naftiko run`` configured by ``OTEL_*`` variables only, exporting to
a real OTLP/HTTP receiver on loopback (``support.otlp``), against a fake upstream that
records the ``traceparent`` it receives.

REST, MCP (the official client) and skill requests each make a server span; the steps and
the upstream attempts nest under it in one trace; a caller's ``traceparent`` is continued
and reaches the upstream; request log lines carry the ids; no secret is in any span. With
no ``OTEL_*`` variable nothing is exported and the SDK is never imported.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from naftiko_process import REPO_ROOT, NaftikoProcess, clean_env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.otlp import ReceivedSpan, Receiver, otlp_receiver
from support.servers import ServerThread

CAPABILITY = Path(__file__).parent / "capabilities" / "traced-fleet.yaml"
REST, MCP, SKILL = "fleet-rest", "fleet-mcp", "fleet-skill"
TOKEN = "tr4ce-Bearer-S3cret"
QUERY_KEY = "tr4ce-Query-K3y"
SECRETS = {"TRACE_FLEET_TOKEN": TOKEN, "TRACE_FLEET_KEY": QUERY_KEY}
IMO = "IMO-9321483"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_PARENT}-01"


class Fleet:
    """The fake upstream: a ship, its crew, and the headers of every request."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def app(self) -> Starlette:
        async def ship(request: Request) -> JSONResponse:
            self.seen.append({**request.headers, "path": request.url.path})
            return JSONResponse(
                {"vessel_name": "Northern Star", "assignedCrew": ["C-1"]},
                headers={"Set-Cookie": f"session={TOKEN}"},
            )

        async def crew(request: Request) -> JSONResponse:
            self.seen.append({**request.headers, "path": request.url.path})
            return JSONResponse([{"crewId": "C-1", "fullName": "Ada Lovelace"}])

        return Starlette(routes=[Route("/ships/{imo}", ship), Route("/crew", crew)])


@pytest.fixture
def fleet() -> Iterator[tuple[Fleet, str]]:
    state = Fleet()
    with ServerThread(state.app()) as server:
        yield state, server.url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as live:
        yield live


def _args(upstream: str, *extra: str) -> list[str]:
    return [
        str(CAPABILITY),
        "--host",
        "127.0.0.1",
        "--base-uri",
        f"fleet={upstream}",
        *(item for ns in (REST, MCP, SKILL) for item in ("--port", f"{ns}=0")),
        "--control-port",
        "0",
        *extra,
    ]


def _otel_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        **SECRETS,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "fleet-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **extra,
    }


def _trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _check_one_orchestration(spans: list[ReceivedSpan], server: ReceivedSpan) -> None:
    """Steps under the server span, one upstream span under each call step."""
    by_id = {s.span_id: s for s in spans}
    steps = [s for s in spans if s.parent_id == server.span_id and s.name.startswith("step ")]
    assert sorted(s.name for s in steps) == ["step get-ship", "step list-crew", "step resolve-crew"]
    clients = [s for s in spans if s.kind == "client"]
    assert len(clients) == 2
    for client in clients:
        step = by_id[client.parent_id]
        assert step.attributes["naftiko.step.type"] == "call"
        assert client.name == "GET"
        assert client.attributes["http.request.method"] == "GET"
        assert client.attributes["server.address"] == "127.0.0.1"
        assert client.attributes["http.response.status_code"] == 200
        assert client.attributes["naftiko.upstream.namespace"] == "fleet"
    ship = next(c for c in clients if by_id[c.parent_id].name == "step get-ship")
    # The query value (a bind: a secret) is redacted; the path is kept.
    assert ship.attributes["url.full"].endswith(f"/ships/{IMO}?key=REDACTED")
    assert server.resource["service.name"] == "fleet-under-test"


def _no_secret(spans: list[ReceivedSpan]) -> None:
    for span in spans:
        for secret in (TOKEN, QUERY_KEY):
            assert secret not in span.text, span


def _log_ids(run: NaftikoProcess, trace_id: str) -> list[dict[str, Any]]:
    return [
        e for e in run.events() if e.get("event") == "request" and e.get("trace_id") == trace_id
    ]


async def test_rest_mcp_and_skill_requests_are_traced_to_the_upstream(
    fleet: tuple[Fleet, str], receiver: Receiver
) -> None:
    state, upstream = fleet
    env = _otel_env(receiver)
    with NaftikoProcess(_args(upstream, "--log-format", "json"), env) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=30) as http:
            rest = await http.get(
                f"{urls[REST]}/ships/{IMO}/crew",
                headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
            )
            assert rest.status_code == 200, rest.text
            assert rest.json() == {"name": "Northern Star", "crew": [{"fullName": "Ada Lovelace"}]}
            skill = await http.get(f"{urls[SKILL]}/skills", headers={"traceparent": TRACEPARENT})
            assert skill.status_code == 200
        mcp_trace = "0af7651916cd43dd8448eb211c80319c"
        headers = {"traceparent": f"00-{mcp_trace}-b7ad6b7169203331-01"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as mcp_http,
            Client(streamable_http_client(urls[MCP], http_client=mcp_http)) as client,
        ):
            result = await client.call_tool("ship-with-crew", {"imo": IMO})
            assert not result.is_error, result

        spans = receiver.wait_for(
            lambda got: (
                sum(s.kind == "client" for s in got) >= 4
                and any(s.attributes.get("naftiko.adapter.type") == "skill" for s in got)
                and any("naftiko.unit" in s.attributes for s in _trace(got, mcp_trace))
            )
        )
        run.signal()
        assert run.wait() == 0

    # REST: the caller's trace continued; the server span's parent is the caller's span.
    rest_spans = [
        s for s in _trace(spans, CALLER_TRACE) if s.attributes.get("naftiko.adapter") != SKILL
    ]
    (rest_server,) = [s for s in rest_spans if s.kind == "server"]
    assert rest_server.parent_id == CALLER_PARENT
    assert rest_server.name == "rest get-ship-with-crew"
    assert rest_server.attributes["http.request.method"] == "GET"
    assert rest_server.attributes["http.response.status_code"] == 200
    _check_one_orchestration(rest_spans, rest_server)

    # MCP: the tools/call request's span holds the whole orchestration, in the client's trace.
    mcp_spans = _trace(spans, mcp_trace)
    (mcp_server,) = [s for s in mcp_spans if s.attributes.get("naftiko.unit", "").endswith("crew")]
    assert mcp_server.kind == "server" and mcp_server.parent_id == "b7ad6b7169203331"
    assert mcp_server.attributes["naftiko.adapter.type"] == "mcp"
    _check_one_orchestration(mcp_spans, mcp_server)

    # Skill: a server span in the caller's trace.
    (skill_server,) = [s for s in spans if s.attributes.get("naftiko.adapter") == SKILL]
    assert skill_server.trace_id == CALLER_TRACE and skill_server.kind == "server"

    # The upstream saw our client spans' context, in the caller's trace.
    clients = {s.span_id: s for s in spans if s.kind == "client"}
    assert len(state.seen) == 4
    for seen in state.seen:
        version, trace_id, parent, flags = seen["traceparent"].split("-")
        assert (version, flags) == ("00", "01")
        assert parent in clients and clients[parent].trace_id == trace_id
        assert trace_id in (CALLER_TRACE, mcp_trace)
    assert any(seen.get("tracestate") == "vendor=1" for seen in state.seen)

    # Log lines carry the ids of the server span of their request.
    (rest_line,) = [e for e in _log_ids(run, CALLER_TRACE) if e["adapter_type"] == "rest"]
    assert rest_line["span_id"] == rest_server.span_id
    (skill_line,) = [e for e in _log_ids(run, CALLER_TRACE) if e["adapter_type"] == "skill"]
    assert skill_line["span_id"] == skill_server.span_id
    (mcp_line,) = _log_ids(run, mcp_trace)
    assert mcp_line["span_id"] == mcp_server.span_id and mcp_line["unit"].endswith("crew")

    _no_secret(spans)
    assert TOKEN not in run.output and QUERY_KEY not in run.output


async def test_gateway_requests_are_traced_too(
    fleet: tuple[Fleet, str], receiver: Receiver
) -> None:
    """``--gateway``: a prefixed REST call and a ``tools/call`` through the aggregate
    ``/mcp`` each make a server span over their steps and upstream calls."""
    _, upstream = fleet
    args = [str(CAPABILITY), "--gateway", "0", "--host", "127.0.0.1", "--log-format", "json"]
    env = {**_otel_env(receiver), "NAFTIKO_BASE_URIS": f"fleet={upstream}"}
    with NaftikoProcess(args, env) as run:
        gateway = run.wait_ready()["gateway"]
        async with httpx.AsyncClient(timeout=30) as http:
            rest = await http.get(
                f"{gateway}/{REST}/ships/{IMO}/crew", headers={"traceparent": TRACEPARENT}
            )
            assert rest.status_code == 200, rest.text
        mcp_trace = "0af7651916cd43dd8448eb211c80319c"
        headers = {"traceparent": f"00-{mcp_trace}-b7ad6b7169203331-01"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as mcp_http,
            Client(streamable_http_client(f"{gateway}/mcp", http_client=mcp_http)) as client,
        ):
            result = await client.call_tool(f"{MCP}__ship-with-crew", {"imo": IMO})
            assert not result.is_error, result
        spans = receiver.wait_for(
            lambda got: (
                sum(s.kind == "client" for s in got) >= 4
                and any("naftiko.unit" in s.attributes for s in _trace(got, mcp_trace))
            )
        )
        run.signal()
        assert run.wait() == 0
    for trace_id, parent in ((CALLER_TRACE, CALLER_PARENT), (mcp_trace, "b7ad6b7169203331")):
        in_trace = _trace(spans, trace_id)
        # (the MCP client's initialize request is another server span of the same trace)
        (server,) = [
            s for s in in_trace if s.parent_id == parent and "naftiko.unit" in s.attributes
        ]
        assert server.kind == "server"
        _check_one_orchestration(in_trace, server)
    _no_secret(spans)


async def test_text_log_lines_carry_the_ids(fleet: tuple[Fleet, str], receiver: Receiver) -> None:
    _, upstream = fleet
    with NaftikoProcess(_args(upstream), _otel_env(receiver)) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(
                f"{urls[REST]}/ships/{IMO}/crew", headers={"traceparent": TRACEPARENT}
            )
            assert answer.status_code == 200
        line = run.wait_for(lambda text: "fleet-rest get-ship-with-crew -> 200" in text)
        spans = receiver.wait_for(lambda got: any(s.kind == "server" for s in got))
        run.signal()
        assert run.wait() == 0
    (server,) = [s for s in spans if s.kind == "server"]
    assert line.endswith(f" trace_id={CALLER_TRACE} span_id={server.span_id}")


async def test_a_failing_upstream_marks_its_spans(receiver: Receiver) -> None:
    """A refused connection: the client span says why, the step span fails too."""
    from support.servers import closed_port

    upstream = f"http://127.0.0.1:{closed_port()}"
    with NaftikoProcess(_args(upstream), _otel_env(receiver)) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(f"{urls[REST]}/ships/{IMO}/crew")
            assert answer.status_code == 502
        spans = receiver.wait_for(lambda got: any(s.kind == "server" for s in got))
        run.signal()
        assert run.wait() == 0
    # A GET is retried (two retries by default): one CLIENT span per attempt.
    clients = [s for s in spans if s.kind == "client"]
    assert len(clients) == 3
    for client in clients:
        assert client.attributes["error.type"] == "unreachable" and client.status == "error"
        assert "http.response.status_code" not in client.attributes
    (step,) = [s for s in spans if s.name == "step get-ship"]
    assert step.status == "error" and step.attributes["error.type"] == "unreachable"
    (server,) = [s for s in spans if s.kind == "server"]
    assert server.attributes["http.response.status_code"] == 502
    assert server.attributes["error.type"] == "502"


def test_sampler_variables_are_honoured(fleet: tuple[Fleet, str], receiver: Receiver) -> None:
    """``OTEL_TRACES_SAMPLER=always_off``: no span, and no traceparent sampled upstream."""
    state, upstream = fleet
    env = _otel_env(receiver, OTEL_TRACES_SAMPLER="always_off")
    with NaftikoProcess(_args(upstream), env) as run:
        urls = run.wait_ready()
        answer = httpx.get(f"{urls[REST]}/ships/{IMO}/crew", timeout=30)
        assert answer.status_code == 200
        run.signal()
        assert run.wait() == 0
    assert receiver.spans == []
    assert state.seen and all(int(s["traceparent"][-2:], 16) & 1 == 0 for s in state.seen)


def test_without_otel_variables_nothing_is_exported_nor_imported(
    fleet: tuple[Fleet, str], receiver: Receiver
) -> None:
    """No ``OTEL_*`` variable: no span sent, no traceparent sent, the SDK never imported.

    The exporter would go to the receiver's port if anything enabled it: the endpoint
    variable is the one thing missing.
    """
    state, upstream = fleet
    env = {**SECRETS, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    process = NaftikoProcess(_args(upstream), env)
    # The same command with -X importtime: every module imported, on stderr.
    process.args = [sys.executable, "-X", "importtime", "-m", "naftiko", "run", *_args(upstream)]
    with process as run:
        urls = run.wait_ready()
        answer = httpx.get(
            f"{urls[REST]}/ships/{IMO}/crew", headers={"traceparent": TRACEPARENT}, timeout=30
        )
        assert answer.status_code == 200
        run.signal()
        assert run.wait() == 0
    modules = {line.rsplit("|", 1)[-1].strip() for line in run.stderr if "import time:" in line}
    assert "naftiko.tracing" in modules  # the seam is there, and cheap
    assert not [m for m in modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))]
    assert receiver.posts == []
    # Nothing of ours was written: no traceparent goes upstream (not even the caller's).
    assert state.seen and all("traceparent" not in s for s in state.seen)
    assert all("trace_id" not in line for line in run.stdout)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "http/protobuf only",
        ),
    ],
)
def test_a_variable_we_cannot_honour_is_one_line_and_exit_2(
    env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "naftiko", "run", *_args("http://127.0.0.1:9")],
        capture_output=True,
        text=True,
        env=clean_env({**SECRETS, **env}),
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_otel_sdk_disabled_wins(fleet: tuple[Fleet, str], receiver: Receiver) -> None:
    state, upstream = fleet
    env = _otel_env(receiver, OTEL_SDK_DISABLED="true")
    with NaftikoProcess(_args(upstream), env) as run:
        urls = run.wait_ready()
        assert httpx.get(f"{urls[REST]}/ships/{IMO}/crew", timeout=30).status_code == 200
        run.signal()
        assert run.wait() == 0
    assert receiver.posts == [] and all("traceparent" not in s for s in state.seen)


def test_pending_spans_are_exported_on_sigterm(
    fleet: tuple[Fleet, str], receiver: Receiver
) -> None:
    """Batches wait a minute here: only the flush at exit can send them (``stop_tracing``
    after the runtime stops; the SDK's own exit hook would flush them too)."""
    _, upstream = fleet
    env = _otel_env(receiver, OTEL_BSP_SCHEDULE_DELAY="60000")
    with NaftikoProcess(_args(upstream), env) as run:
        urls = run.wait_ready()
        assert httpx.get(f"{urls[REST]}/ships/{IMO}/crew", timeout=30).status_code == 200
        assert receiver.posts == []
        run.signal()
        assert run.wait() == 0
    assert sum(s.kind == "client" for s in receiver.spans) == 2
    assert any(s.kind == "server" for s in receiver.spans)
