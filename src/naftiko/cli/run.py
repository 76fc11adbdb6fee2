"""``naftiko run`` / ``naftiko-run``: serve capability documents.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT, or the stdio session ended), 1 when
the machine prevents serving (port in use, an adapter crashed), 2 when the documents or
the flags are wrong (load diagnostics, port clash, bad value) — printed as plain lines
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from naftiko.observability import set_observer
from naftiko.runtime.config import (
    DEFAULT_GRACE_PERIOD_S,
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigError,
    RuntimeConfig,
    resolve_config,
)
from naftiko.runtime.http_protocol import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
)
from naftiko.runtime.logs import Redactor, configure_logging
from naftiko.runtime.metrics import Metrics, RuntimeObserver
from naftiko.runtime.placement import PlacementError, Summary, load_all, place_slots
from naftiko.runtime.process import EXIT_USAGE, Runtime, StartupError
from naftiko.runtime.traces import start_tracing, stop_tracing

EPILOG = """\
Every flag has a NAFTIKO_* environment variable (flags win): NAFTIKO_HOST,
NAFTIKO_PORTS="ns=port,ns2=port", NAFTIKO_BASE_URIS="ns=url,...", NAFTIKO_CONTROL_PORT,
NAFTIKO_LOG_FORMAT, NAFTIKO_LOG_LEVEL, NAFTIKO_TIMEOUT, NAFTIKO_MAX_BODY_BYTES,
NAFTIKO_MCP_STATEFUL, NAFTIKO_ALLOWED_HOSTS="h1,h2", NAFTIKO_ALLOWED_ORIGINS="o1,o2",
NAFTIKO_MAX_HEADER_BYTES, NAFTIKO_HEADER_TIMEOUT, NAFTIKO_IDLE_TIMEOUT,
NAFTIKO_KEEP_ALIVE_TIMEOUT, NAFTIKO_MAX_CONNECTIONS, NAFTIKO_GRACE_PERIOD, NAFTIKO_CHECK,
NAFTIKO_RELOAD, NAFTIKO_GATEWAY_PORT, NAFTIKO_PREFIXES="ns=other,file.yaml:ns=other",
NAFTIKO_WORKERS,
and NAFTIKO_CAPABILITIES (paths, when none are given); --stdio has none
(an MCP client's launch command names it).
The default host is 0.0.0.0 inside a container (/.dockerenv or NAFTIKO_IN_CONTAINER=1),
else 127.0.0.1; a document's 'address' is used when neither --host nor NAFTIKO_HOST is set.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="FILE|DIR",
        help="capability documents, or directories holding them",
    )
    parser.add_argument("--host", help="address every adapter binds to (see below)")
    parser.add_argument(
        "--port",
        action="append",
        metavar="NAMESPACE=PORT",
        help="port of an exposed adapter; 0 picks a free one (repeatable)",
    )
    parser.add_argument(
        "--base-uri",
        action="append",
        metavar="NAMESPACE=URL",
        help="base URI of a consumed API, replacing the document's (repeatable)",
    )
    parser.add_argument(
        "--control-port",
        type=str,
        metavar="PORT",
        help="serve health, metrics and status here (adds a control adapter "
        "when the documents declare none)",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="text (default) or json")
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, help="default: info")
    parser.add_argument(
        "--timeout", type=str, metavar="SECONDS", help="upstream read timeout (default 30)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=str,
        metavar="BYTES",
        help="largest accepted request body (default 1 MiB)",
    )
    parser.add_argument(
        "--mcp-stateful",
        action="store_true",
        default=None,
        help="MCP sessions (Mcp-Session-Id) instead of stateless HTTP",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        help="Host header accepted besides loopback names; a bare name on "
        "any port, * any host (repeatable; default: loopback names on "
        "a loopback listener, else any)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="browser Origin accepted besides the one a request reached, "
        "as scheme://host[:port]; * any (repeatable)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=str,
        metavar="BYTES",
        help=f"largest request line and headers; 431 past it (default {DEFAULT_MAX_HEADER_BYTES})",
    )
    parser.add_argument(
        "--header-timeout",
        type=str,
        metavar="SECONDS",
        help=f"time a request head gets from its first byte; 408 past it "
        f"(default {DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=str,
        metavar="SECONDS",
        help=f"a connection sending no request after accept is closed after "
        f"it (default {DEFAULT_IDLE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=str,
        metavar="SECONDS",
        help=f"a kept-alive connection without a next request is closed "
        f"after it; longer than clients' pool expiry "
        f"(default {DEFAULT_KEEP_ALIVE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=str,
        metavar="N",
        help=f"open connections per listener; more get 503 and are closed "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--grace-period",
        type=str,
        metavar="SECONDS",
        help=f"time in-flight requests get on shutdown (default {DEFAULT_GRACE_PERIOD_S:g})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        default=None,
        help="load and compile everything, print the summary, do not serve",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        default=None,
        help="watch the documents and swap in new versions while serving",
    )
    parser.add_argument(
        "--gateway",
        type=str,
        metavar="PORT",
        help="serve every adapter of every document on this one port, each under "
        "/NAMESPACE, with one MCP endpoint for all tools at /mcp and a catalogue at / "
        "(declared ports are ignored; see README, Gateway)",
    )
    parser.add_argument(
        "--prefix",
        action="append",
        metavar="[FILE:]NAMESPACE=PREFIX",
        help="with --gateway: serve this adapter under /PREFIX instead of /NAMESPACE "
        "(FILE: picks one of two documents claiming the same namespace; repeatable)",
    )
    parser.add_argument(
        "--settings",
        type=str,
        metavar="FILE",
        help="runtime settings (TOML or YAML): upstream resilience per namespace, caller "
        "rate limits per adapter (tables 'upstream', 'rate_limits'); see README, Upstream "
        "resilience and Rate limits",
    )
    parser.add_argument(
        "--workers",
        type=str,
        metavar="N",
        help="processes sharing every listener, supervised by this one (default 1); "
        "see README, Worker processes",
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        metavar="[NAMESPACE=]RATE/PERIOD[,burst=N]",
        help="caller rate limit (token bucket per adapter and caller): for every adapter, "
        "or the one NAMESPACE; 'NAMESPACE=off' exempts one; repeatable (off by default; "
        "see README, Rate limits)",
    )
    parser.add_argument(
        "--redis",
        type=str,
        metavar="URL",
        help="share the rate limits of every replica through this Redis "
        "(redis://[user:password@]host:port/db, rediss://, unix://)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        metavar="[NAMESPACE.]SETTING=VALUE",
        help="upstream resilience: one setting for a consumed namespace, or for all "
        "without NAMESPACE. (retries, breaker_failures, max_concurrent...; repeatable; "
        "beats NAFTIKO_UPSTREAM and --settings; see README, Upstream resilience)",
    )
    parser.add_argument(
        "--stdio",
        nargs="?",
        const="",
        metavar="NAMESPACE",
        help="serve this MCP adapter (default: the only one) on stdin/stdout "
        "and nothing else unless named with --port; put it after FILE",
    )


def _fail(lines: Any, code: int = EXIT_USAGE) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    return code


def _event_loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux/macOS
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    if args.stdio and os.path.exists(args.stdio):
        # ``--stdio FILE``: argparse gave the optional namespace the file; it is a path.
        args.paths, args.stdio = [*(args.paths or ()), args.stdio], ""
    try:
        config = resolve_config(args, os.environ)
    except ConfigError as exc:
        return _fail([f"naftiko-run: {exc}"])
    return run_config(config)


def run_config(config: RuntimeConfig) -> int:
    try:
        capabilities, skipped = load_all(config)
        slots, warnings = place_slots(capabilities, config)
    except PlacementError as exc:
        return _fail(exc.lines, exc.code)
    summary = Summary(capabilities, slots, skipped, warnings)
    if config.check:
        # Build every app too (no socket, no upstream connection): an authentication
        # block that cannot be enforced fails the check, as it would fail the start.
        try:
            Runtime(config, capabilities, slots, redactor=Redactor(), metrics=Metrics()).prepare()
        except StartupError as exc:
            return _fail([str(exc)], exc.code)
        for line in summary.lines():
            print(line)
        return 0

    try:  # before the apps are built: they are wrapped for server spans at build time
        start_tracing()
    except ConfigError as exc:
        return _fail([f"naftiko-run: {exc}"])
    redactor = Redactor(value for c in capabilities for value in c.loaded.bindings.secret_values())
    stdio = any(slot.is_stdio for slot in slots)
    configure_logging(
        log_format=config.log_format,
        level=config.log_level,
        redactor=redactor,
        stream=sys.stderr if stdio else sys.stdout,  # stdout belongs to the MCP client
    )
    metrics = Metrics()
    set_observer(RuntimeObserver(metrics))
    for path in skipped:
        logging.getLogger("naftiko.runtime").info("skipped %s: not a capability document", path)

    if config.workers > 1:
        return _run_workers(config, capabilities, slots, redactor, metrics, warnings)

    async def main() -> int:
        runtime = Runtime(config, capabilities, slots, redactor=redactor, metrics=metrics)
        try:
            runtime.prepare()
            runtime.bind()
        except StartupError as exc:
            print(str(exc), file=sys.stderr)
            return exc.code
        return await runtime.serve(warnings)

    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        try:
            return runner.run(main())
        finally:
            stop_tracing()  # exports the spans still pending


def _run_workers(
    config: RuntimeConfig,
    capabilities: Any,
    slots: Any,
    redactor: Redactor,
    metrics: Metrics,
    warnings: Any,
) -> int:
    """Build and bind here, once; serve in ``config.workers`` forked processes."""
    from naftiko.runtime.workers import serve_workers

    runtime = Runtime(config, capabilities, slots, redactor=redactor, metrics=metrics)
    try:
        runtime.prepare()
        runtime.bind()
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    return serve_workers(
        runtime, config.workers, warnings=warnings, loop_factory=_event_loop_factory()
    )
