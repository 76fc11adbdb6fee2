"""Serve one capability's MCP adapter on stdio: the stdio end-to-end tests run this file.

    python mcp_stdio_main.py CAPABILITY [--base-uri NAMESPACE=URL]... [--adapter NAMESPACE]

Loads and compiles the capability as ``naftiko run`` would, starts the engine and calls
``run_mcp_stdio``; stdout carries only the protocol, logs go to stderr. Exits 0 when
stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import run_mcp_stdio
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("capability")
    parser.add_argument("--base-uri", action="append", default=[], metavar="NS=URL")
    parser.add_argument("--adapter", help="MCP adapter namespace (default: the first)")
    return parser.parse_args()


async def main() -> None:
    args = _parse()
    overrides = dict(item.split("=", 1) for item in args.base_uri)
    settings = UpstreamSettings(base_uri_overrides=overrides)
    compiled = compile_capability(load_capability(args.capability), settings)
    plan = next(
        a
        for a in compiled.adapters
        if isinstance(a, McpAdapterPlan) and args.adapter in (None, a.namespace)
    )
    engine = Engine(compiled, settings)
    await engine.start()
    try:
        await run_mcp_stdio(engine, plan)
    finally:
        await engine.aclose()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    asyncio.run(main())
