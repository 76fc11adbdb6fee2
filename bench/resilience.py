"""Upstream resilience: the engine's cost per call with and without it, side by side.

One process, one loop: a keep-alive upstream on loopback answers a small JSON document,
and two engines over the same compiled capability call it in interleaved rounds. One
engine has the default resilience (retry policy, breaker, bulkhead, budget); the other
has a stand-in whose ``call`` only awaits the attempt. Printed: CPU time per
``Engine.invoke`` of each (median of the rounds) and their ratio. Both share the machine
at the same moments, so the ratio holds on a busy machine where the absolute figures do
not.

Usage: ``python bench/resilience.py [ROUNDS] [CALLS_PER_ROUND]`` (defaults 15, 2000).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from naftiko.adapters.exposes import compile_capability
from naftiko.engine.invoke import Engine
from naftiko.engine.types import Inputs
from naftiko.spec.loader import load_capability
from naftiko.upstream.resilience import Resilience
from naftiko.upstream.settings import UpstreamSettings

BODY = b'{"items":[{"id":1,"name":"one"},{"id":2,"name":"two"}]}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
DOCUMENT = """\
naftiko: 1.0.0-alpha2
info: {label: Bench, description: Resilience overhead}
capability:
  consumes:
    - type: http
      namespace: up
      baseUri: http://127.0.0.1:9
      resources:
        - name: items
          path: /items
          operations:
            - {name: list, method: GET}
  exposes:
    - type: mcp
      namespace: bench-mcp
      port: 0
      description: Bench.
      tools:
        - {name: list, description: List., call: up.list}
"""


class _Upstream(asyncio.Protocol):
    """Answers every request head with the same response (requests have no body)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


class _Bare(Resilience):
    """No policy at all: the attempt, awaited."""

    async def call(self, namespace: str, attempt: Any, **_: Any) -> Any:
        return await attempt()


async def main(rounds: int, calls: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = UpstreamSettings(base_uri_overrides={"up": f"http://127.0.0.1:{port}"})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(DOCUMENT)
        compiled = compile_capability(load_capability(path), settings)
    unit = next(iter(compiled.units.values()))
    engines = {
        "with resilience": Engine(compiled, settings),
        "without": Engine(compiled, settings, resilience=_Bare()),
    }
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        await engine.start()
        for _ in range(200):  # warm the pools
            assert not (await engine.invoke(unit, Inputs(values={}))).is_error
    for _ in range(rounds):
        for name, engine in engines.items():
            started = time.process_time()
            for _ in range(calls):
                await engine.invoke(unit, Inputs(values={}))
            cpu[name].append((time.process_time() - started) / calls)
    for engine in engines.values():
        await engine.aclose()
    server.close()
    medians = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    for name, value in medians.items():
        print(f"{name:>16}: {value:7.1f} µs CPU per call (upstream included)")
    ratio = medians["with resilience"] / medians["without"]
    print(f"{'ratio':>16}: {ratio:.3f}")


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [15, 2000][len(arguments) :])))
