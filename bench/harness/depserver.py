"""The ASGI apps ``bench/deps.py`` serves under each ASGI server it compares.

``app``: a tiny app that drains the request body and answers TikTok's token response
(the JSON the REST bench's POST returns), as two ASGI messages like naftiko's REST
adapter. ``rest_app()``: naftiko's real REST adapter for ``bench/capabilities/bench.yaml``
(upstream from ``DEPS_UPSTREAM``), built as ``naftiko-run`` builds it (same config, JSON
request logs at info to stdout, metrics observer), without naftiko-run's own servers.
Served by:

* ``naftiko``: uvicorn with naftiko's protocol, configured as ``naftiko-run``
  configures it (``runtime/process.py``: ``ListenerConfig`` + ``ListenerGuard`` with the
  default listener limits, ``LimitedHttpToolsProtocol``, no access log, no server
  header, no proxy headers), on uvloop;
* ``uvicorn``: plain uvicorn, httptools protocol, the same settings otherwise;
* granian: ``granian --interface asgi harness.depserver:app`` (started by ``deps.py``).

Usage: python depserver.py naftiko|uvicorn PORT [tiny|rest]; granian imports
``harness.depserver:app`` or ``harness.depserver:rest`` (``rest`` is ``rest_app()``,
built when first imported under that name).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.upstream import TOKEN_RESPONSE

BODY = json.dumps(TOKEN_RESPONSE, separators=(",", ":")).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        print("ready", flush=True)
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def rest_app() -> Any:
    """The REST adapter's ASGI app, as ``runtime.command.run_config`` builds it."""
    import argparse
    import os

    from naftiko.cli.run import add_arguments
    from naftiko.observability import set_observer
    from naftiko.runtime.config import resolve_config
    from naftiko.runtime.logs import Redactor, configure_logging
    from naftiko.runtime.metrics import Metrics, RuntimeObserver
    from naftiko.runtime.placement import load_all, place_slots
    from naftiko.runtime.process import Runtime

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    document = Path(__file__).resolve().parents[1] / "capabilities" / "bench.yaml"
    args = parser.parse_args(
        [
            str(document),
            "--host",
            "127.0.0.1",
            "--port",
            "bench-rest=0",
            "--log-format",
            "json",
            "--log-level",
            "info",
            "--base-uri",
            f"bench-upstream={os.environ['DEPS_UPSTREAM']}",
        ]
    )
    config = resolve_config(args, os.environ)
    capabilities, _ = load_all(config)
    slots, _ = place_slots(capabilities, config)
    redactor = Redactor(v for c in capabilities for v in c.loaded.bindings.secret_values())
    configure_logging(log_format="json", level="info", redactor=redactor)
    metrics = Metrics()
    set_observer(RuntimeObserver(metrics))
    runtime = Runtime(config, capabilities, slots, redactor=redactor, metrics=metrics)
    runtime.prepare()
    served = next(s for s in runtime.served if s.slot.type == "rest")
    return served.app


def __getattr__(name: str) -> Any:  # ``harness.depserver:rest`` for granian
    if name == "rest":
        globals()["rest"] = rest_app()
        return globals()["rest"]
    raise AttributeError(name)


def _config(kind: str, port: int, served: Any) -> Any:
    import uvicorn

    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "loop": "uvloop",
        "lifespan": "on",
        "log_config": None,
        "log_level": "warning",
        "access_log": False,
        "ws": "none",
        "server_header": False,
        "proxy_headers": False,
    }
    if kind == "naftiko":
        from naftiko.runtime.http_protocol import (
            LimitedHttpToolsProtocol,
            ListenerConfig,
            ListenerGuard,
            ListenerLimits,
        )

        return ListenerConfig(
            served,
            guard=ListenerGuard("bench", ListenerLimits()),
            http=LimitedHttpToolsProtocol,
            **common,
        )
    if kind == "uvicorn":
        return uvicorn.Config(served, http="httptools", **common)
    raise SystemExit(f"unknown server {kind!r}")


if __name__ == "__main__":
    import uvicorn

    which = sys.argv[3] if len(sys.argv) > 3 else "tiny"
    uvicorn.Server(
        _config(sys.argv[1], int(sys.argv[2]), rest_app() if which == "rest" else app)
    ).run()
