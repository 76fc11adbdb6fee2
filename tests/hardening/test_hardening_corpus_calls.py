"""Published documents, served and called: every declared operation and tool is reachable.

A deterministic spread of ``../shared/corpus`` documents is loaded with dummy bind values,
served on real loopback servers (REST and MCP adapters, uvicorn), and every REST
operation and MCP tool is called once with arguments made from its input schema. The
upstream answers every request with JSON, so whatever goes wrong is the runtime's:

* a declared REST operation is never a 404 or 405 (its route must reach it);
* nothing is a 5xx except 501, which the load announced for units that cannot run;
* an MCP call never ends in a JSON-RPC error, and a tool error is never the runtime's.

A run of this over the whole corpus found resources sharing a path answering 405 and
GET inputs only a body could carry; the sample keeps such classes from coming back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hardening_kit import CLIENT_TIMEOUT, mcp_call, serve_capability
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes import ALL_METHODS
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.types import InputField, Unit
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread

SAMPLE_SIZE = 24
MAX_BYTES = 150_000  # big documents cost seconds each; the spread has enough small ones
_BODY_METHODS = {"POST", "PUT", "PATCH"}
ANSWER = {
    "id": "1",
    "name": "x",
    "status": "ok",
    "count": 3,
    "data": [{"id": 1, "name": "a", "value": 2.5}],
    "items": [{"id": "i"}],
}


async def _answer(request: Request) -> Response:
    await request.body()
    return JSONResponse(ANSWER)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", _answer, methods=ALL_METHODS)])
    with ServerThread(app) as server:
        yield server.url


def _binds(data: dict[str, Any]) -> dict[str, str]:
    keys = [
        key
        for bind in data.get("binds") or []
        if isinstance(bind, dict) and isinstance(bind.get("keys"), dict)
        for key in bind["keys"]
    ]
    return {key: "dummy-value" for key in keys}


def _sample(corpus: Path) -> list[tuple[Path, dict[str, str]]]:
    """Documents that load and expose REST or MCP, picked evenly over the sorted corpus."""
    candidates = sorted(
        p
        for p in corpus.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file() and p.stat().st_size <= MAX_BYTES
    )
    step = max(1, len(candidates) // (SAMPLE_SIZE * 3))
    found: list[tuple[Path, dict[str, str]]] = []
    for path in candidates[::step]:
        text = path.read_text(encoding="utf-8", errors="replace")
        if "exposes:" not in text or not re.search(r"type: (rest|mcp)\b", text):
            continue
        try:
            data = yaml.safe_load(text)
            env = _binds(data)
            load_capability(path, env=env)
        except (yaml.YAMLError, LoadError, AttributeError, TypeError):
            continue
        found.append((path, env))
        if len(found) == SAMPLE_SIZE:
            break
    return found


def _value(field: InputField) -> Any:
    schema = field.schema
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {"integer": 1, "number": 1.5, "boolean": True, "array": ["a"], "object": {"k": "v"}}.get(
        kind, "val1"
    )


def _text(value: Any) -> str:
    """A value as a path segment, query value or header would carry it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _rest_request(path: str, method: str, unit: Unit) -> dict[str, Any]:
    url, params, headers, body = path, {}, {}, {}
    for field in unit.inputs:
        value = _value(field)
        if field.location == "path":
            url = url.replace("{" + field.name + "}", _text(value))
        elif field.location == "query":
            params[field.name] = _text(value)
        elif field.location == "header":
            headers[field.name] = _text(value)
        elif field.location == "body":
            body[field.name] = value
    request: dict[str, Any] = {
        "method": method,
        "url": re.sub(r"\{[^}]*\}", "x", url),
        "params": params,
        "headers": headers,
    }
    if method in _BODY_METHODS:
        request["json"] = body
    return request


def _runtime_failure(text: str) -> bool:
    """A tool error the runtime caused (not a 501 the load announced, not a 4xx)."""
    if "Not implemented" in text:
        return False
    return bool(re.search(r"internal|Traceback|\[5\d\d\]", text, re.IGNORECASE))


async def test_declared_operations_and_tools_of_corpus_documents_answer(
    shared_dir: Path, upstream: str
) -> None:
    sample = _sample(shared_dir / "corpus")
    if len(sample) < SAMPLE_SIZE // 2:
        pytest.skip("too few servable documents in the corpus")
    failures: list[str] = []
    calls = 0
    for path, env in sample:
        loaded = load_capability(path, env=env)
        overrides = {c.namespace: upstream for c in loaded.document.consumed() if c.namespace}
        settings = UpstreamSettings(base_uri_overrides=overrides)
        async with (
            serve_capability(path, env=env, engine_settings=settings) as served,
            httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
        ):
            assert served.engine is not None
            for plan in served.engine.compiled.adapters:
                if not isinstance(plan, RestAdapterPlan) or plan.authentication is not None:
                    continue
                base = served.rest[plan.namespace]
                for route in plan.routes:
                    for method, unit in route.operations.items():
                        request = _rest_request(route.path, method, unit)
                        request["url"] = base + request["url"]
                        response = await http.request(**request)
                        calls += 1
                        status = response.status_code
                        if status in (404, 405) or (status >= 500 and status != 501):
                            failures.append(
                                f"{path.name}: REST {method} {route.path} -> {status} "
                                f"{response.text[:200]}"
                            )
            for namespace, url in served.mcp.items():
                plan = next(a for a in served.engine.compiled.adapters if a.namespace == namespace)
                if plan.authentication is not None:
                    continue
                for tool in plan.tools:  # type: ignore[attr-defined]
                    arguments = {f.name: _value(f) for f in tool.inputs}
                    reply = await mcp_call(http, url, tool.name, arguments)
                    calls += 1
                    if reply.message is None or "error" in reply.message:
                        failures.append(f"{path.name}: MCP {tool.name} -> {reply.text[:200]}")
                    elif reply.is_error and _runtime_failure(reply.error_text):
                        failures.append(f"{path.name}: MCP {tool.name} -> {reply.error_text[:200]}")
    assert calls > 50, f"only {calls} calls over {len(sample)} documents"
    assert not failures, "\n".join(failures)
