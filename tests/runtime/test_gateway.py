"""Gateway mode's rules: aggregate names, prefixes and clashes, degraded documents, and the
one-line-per-port clash report without ``--gateway``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from naftiko.adapters.mcp.aggregate import (
    NAME_PATTERN,
    PAGE_SIZE,
    _page,
    aggregate_name,
    assign_names,
    hashed_name,
)
from naftiko.adapters.mcp.sdk import MCPError
from naftiko.runtime import placement
from naftiko.runtime.config import RuntimeConfig
from naftiko.spec.diagnostics import LoadError
from runtime.naftiko_process import REPO_ROOT, run_to_exit

STRIPE = REPO_ROOT.parent / "shared" / "corpus" / "api-evangelist-stripe" / "capabilities"
BALANCE = STRIPE / "balance-identifiers.yaml"
needs_corpus = pytest.mark.skipif(not STRIPE.is_dir(), reason="../shared/corpus is not here")


# ------------------------------------------------------------------ naming rule


def test_aggregate_name_is_prefix_two_underscores_name_when_valid() -> None:
    assert aggregate_name("stripe-mcp", "get-balance") == "stripe-mcp__get-balance"


def test_long_or_unusual_names_are_cut_and_hashed_stably() -> None:
    long = aggregate_name("a" * 40, "b" * 40)
    dotted = aggregate_name("ns", "tool.with.dots")
    assert len(long) == 64 and NAME_PATTERN.match(long)
    assert long == hashed_name("a" * 40, "b" * 40)  # the same on every start
    assert long.startswith("a" * 40 + "__" + "b" * 13 + "-")
    assert dotted.startswith("ns__tool_with_dots-") and NAME_PATTERN.match(dotted)
    # Names that would coincide after cutting or replacing still differ.
    assert aggregate_name("a" * 40, "b" * 40 + "1") != aggregate_name("a" * 40, "b" * 40 + "2")
    assert aggregate_name("ns", "x.y") != aggregate_name("ns", "x_y")


def test_names_that_coincide_are_all_hashed() -> None:
    names = assign_names([("a__b", "c"), ("a", "b__c"), ("a", "d")])
    assert names[("a", "d")] == "a__d"
    assert names[("a__b", "c")] != names[("a", "b__c")]
    assert all(NAME_PATTERN.match(n) for n in names.values())


def test_pages_and_cursor() -> None:
    items = list(range(PAGE_SIZE * 2 + 5))
    first, cursor = _page(items, None)
    second, cursor2 = _page(items, cursor)
    third, end = _page(items, cursor2)
    assert first + second + third == items and end is None
    with pytest.raises(MCPError):
        _page(items, "not-a-cursor")


# ------------------------------------------------------------------ process rules


@needs_corpus
def test_port_clashes_are_one_line_per_port_naming_every_claimant() -> None:
    completed = run_to_exit([str(STRIPE), "--check"], env={"STRIPE_API_KEY": "sk_test_x"})
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2
    assert len(lines) == 2, lines  # 8080 and 9090, not one line per pair of documents
    for line, port in zip(lines, ("8080", "9090"), strict=True):
        claimants = re.findall(r"\(([^()]+\.yaml)\)", line)
        assert len(claimants) >= 10 and len(set(claimants)) == len(claimants)
        assert line.startswith(f"naftiko-run: port {port} clash: {len(claimants)} adapters")
        assert "--gateway PORT" in line


@needs_corpus
def test_unset_secret_stops_the_start_outside_gateway_mode_only(tmp_path: Path) -> None:
    strict = run_to_exit([str(BALANCE), "--check"])
    assert strict.returncode == 2 and "STRIPE_API_KEY" in strict.stderr
    gateway = run_to_exit([str(BALANCE), "--check", "--gateway", "0"])
    assert gateway.returncode == 0, gateway.stderr
    assert "degraded (its units answer 503): environment variable 'STRIPE_API_KEY'" in (
        gateway.stdout
    )


@needs_corpus
def test_a_degraded_document_is_read_and_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Most published documents name a secret; in a folder of a thousand, parsing and
    # loading each of them twice was a third of the start.
    reads: list[Path] = []
    read, load = placement._read, placement.load_source
    monkeypatch.setattr(placement, "_read", lambda path: reads.append(path) or read(path))
    monkeypatch.setattr(
        placement, "load_source", lambda path, *a, **k: reads.append(path) or load(path, *a, **k)
    )
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    config = RuntimeConfig(paths=(str(BALANCE),), gateway_port=0)
    capability = placement.load_one(BALANCE, config)
    assert reads == [BALANCE, BALANCE]  # read, loaded
    assert capability is not None and "STRIPE_API_KEY" in (capability.degraded or "")
    assert [plan.namespace for plan in capability.compiled.adapters] == [
        "balance-identifiers-rest",
        "balance-identifiers-mcp",
    ]


@needs_corpus
def test_a_broken_document_reports_its_unset_binds_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The single lenient load of gateway mode must not hide a bind error from the lines
    # of a document that cannot start: they are those of a load requiring the binds.
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    clash = (
        "  consumes:\n  - type: http\n    namespace: balance-identifiers\n"
        "    baseUri: https://other.example\n    resources: []\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(BALANCE.read_text().replace("  consumes:\n", clash, 1))
    for gateway in (0, None):
        config = RuntimeConfig(paths=(str(broken),), gateway_port=gateway)
        with pytest.raises(LoadError) as caught:
            placement.load_one(broken, config)
        errors = [d.message for d in caught.value.diagnostics if d.severity == "error"]
        assert len(errors) == 2, errors
        assert "declared twice" in errors[0] and "STRIPE_API_KEY" in errors[1]


@needs_corpus
def test_namespace_clash_names_both_files_and_the_prefix_way_out(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "one.yaml", tmp_path / "b" / "two.yaml"
    for copy in (first, second):
        copy.parent.mkdir()
        shutil.copy(BALANCE, copy)
    env = {"STRIPE_API_KEY": "sk_test_x"}
    clash = run_to_exit([str(tmp_path), "--check", "--gateway", "0"], env=env)
    lines = clash.stderr.strip().splitlines()
    assert clash.returncode == 2
    assert len(lines) == 2  # the REST and the MCP namespace
    for line in lines:
        assert str(first) in line and str(second) in line
        assert f"--prefix {second}:" in line
    fixed = run_to_exit(
        [
            str(tmp_path),
            "--check",
            "--gateway",
            "0",
            "--prefix",
            f"{second}:balance-identifiers-rest=other-rest",
            "--prefix",
            f"{second}:balance-identifiers-mcp=other-mcp",
        ],
        env=env,
    )
    assert fixed.returncode == 0, fixed.stderr
    reload = run_to_exit([str(BALANCE), "--check", "--gateway", "0", "--reload"], env=env)
    assert reload.returncode == 0, reload.stderr  # gateway --reload watches the folders
    typo = run_to_exit(
        [str(BALANCE), "--check", "--gateway", "0", "--prefix", "nowhere=x"], env=env
    )
    assert typo.returncode == 2 and "--prefix nowhere" in typo.stderr


@needs_corpus
def test_reserved_prefix_needs_an_override(tmp_path: Path) -> None:
    text = BALANCE.read_text().replace("balance-identifiers-mcp", "mcp")
    (tmp_path / "doc.yaml").write_text(text)
    env = {"STRIPE_API_KEY": "sk_test_x"}
    refused = run_to_exit([str(tmp_path), "--check", "--gateway", "0"], env=env)
    assert refused.returncode == 2 and "prefix /mcp is reserved" in refused.stderr
    moved = run_to_exit(
        [str(tmp_path), "--check", "--gateway", "0", "--prefix", "mcp=stripe"], env=env
    )
    assert moved.returncode == 0, moved.stderr


async def test_gateway_shutdown_stops_members_a_reload_added() -> None:
    import contextlib
    from collections.abc import AsyncIterator
    from types import SimpleNamespace

    from starlette.applications import Starlette

    from naftiko.runtime.gateway import GatewayApp, Member
    from naftiko.runtime.reload import AppGeneration, LifespanDriver, SwappableApp

    events: list[str] = []

    def app(name: str) -> SwappableApp:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            events.append(f"{name} up")
            yield
            events.append(f"{name} down")

        return SwappableApp(AppGeneration(Starlette(lifespan=lifespan), name))

    gateway = GatewayApp(None, [], None, app("control"), None)  # type: ignore[arg-type]
    driver = LifespanDriver(gateway)
    await driver.startup()
    added = Member("added", SimpleNamespace(app=app("added")))
    await added.app.current.start()  # as naftiko.runtime.gateway_reload does
    gateway.members = {"added": added}
    await driver.shutdown()
    assert events == ["control up", "added up", "control down", "added down"]


# ------------------------------------------------------------------ aggregate and auth


class _Recording:
    """An engine that records what reaches it (nothing must, when refused)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def invoke(self, unit, inputs):  # type: ignore[no-untyped-def]
        from naftiko.engine.types import Result

        self.calls.append(unit.name)
        return Result(status=200, body={"ok": True})


def _mixed_handlers(engine: _Recording):  # type: ignore[no-untyped-def]
    from naftiko.adapters.exposes import compile_capability
    from naftiko.adapters.mcp.plan import McpAdapterPlan
    from naftiko.adapters.mcp.server import McpHandlers
    from naftiko.spec.loader import load_capability

    mixed = REPO_ROOT / "tests" / "hardening" / "capabilities" / "gateway-mixed.yaml"
    compiled = compile_capability(load_capability(mixed, env={"HARD_AUTH_TOKEN": "tok-123456"}))
    return {
        plan.namespace: McpHandlers(engine, plan)
        for plan in compiled.adapters
        if isinstance(plan, McpAdapterPlan)
    }


def _ctx(headers: dict[str, str] | None):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from starlette.requests import Request

    if headers is None:
        return SimpleNamespace(request=None)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": raw, "query_string": b""}
    return SimpleNamespace(request=Request(scope))


async def test_aggregate_checks_a_protected_member_per_request_and_fails_closed() -> None:
    import mcp_types as types

    from naftiko.adapters.http.auth.bearer import BearerInboundAuth
    from naftiko.adapters.mcp.aggregate import AggregateHandlers, Member, OpenTools

    engine = _Recording()
    handlers = _mixed_handlers(engine)
    aggregate = AggregateHandlers(
        [
            Member("open-mcp", handlers["open-mcp"]),
            Member("guard-mcp", handlers["guard-mcp"], auth=BearerInboundAuth("tok-123456")),
        ]
    )
    guarded = "guard-mcp__secret-plan-tool"
    call = types.CallToolRequestParams(name=guarded, arguments={"id": "1"})
    for ctx in (_ctx(None), _ctx({}), _ctx({"Authorization": "Bearer nope-000"})):
        listed = await aggregate.list_tools(ctx, None)
        assert [t.name for t in listed.tools] == ["open-mcp__get-open-item"]
        assert (await aggregate.list_prompts(ctx, None)).prompts == []
        assert (await aggregate.list_resource_templates(ctx, None)).resource_templates == []
        refused = await aggregate.on_call_tool(ctx, call)
        assert refused.is_error and refused.content[0].text.startswith("Unauthorized: ")
    # The fast path has no request: it never sees the tool, and a call is refused.
    assert list(OpenTools(aggregate).tools) == ["open-mcp__get-open-item"]
    assert (await OpenTools(aggregate).call_tool(guarded, {"id": "1"})).is_error
    assert aggregate.input_schema(guarded) is None
    assert engine.calls == []
    granted = _ctx({"Authorization": "Bearer tok-123456"})
    listed = await aggregate.list_tools(granted, None)
    assert [t.name for t in listed.tools] == ["open-mcp__get-open-item", guarded]
    assert not (await aggregate.on_call_tool(granted, call)).is_error
    assert engine.calls == ["secret-plan-tool"]
