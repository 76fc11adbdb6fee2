"""A/B: one document's REST call and MCP ``tools/call`` on its own ports vs through ``--gateway``.

Usage: ``python bench/gateway_ab.py [--requests N] [--rounds R] [FOLDER]``. Both servers
run at once (the gateway serving FOLDER, default the 40-document folder of the
end-to-end test when built by ``--make-folder``, plus the document), against one
loopback echo upstream; rounds alternate A and B so drift hits both. Sequential
keep-alive requests: the figure is the per-request latency, not a throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DOCUMENT = CORPUS / "api-evangelist-stripe" / "capabilities" / "balance-identifiers.yaml"
REST_PATH = "/v1/v1/balance/history/txn_1"
TOOL = "stripe-get-balance-history-id"


async def echo(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = json.dumps({"ok": True, "path": scope["path"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def start_upstream() -> str:
    config = uvicorn.Config(echo, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], dict, float]:
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "naftiko", "run", *args, "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"ready"' in line and "naftiko ready" in line:
            event = json.loads(line)
            urls = {a["namespace"]: a["url"] for a in event["adapters"]}
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, urls, time.monotonic() - began
    raise RuntimeError("naftiko exited before ready")


def paired(client: httpx.Client, requests: list[tuple], n: int) -> list[list[float]]:
    """Seconds per request for each of ``requests``, taken in turn ``n`` times: A and B
    see the same moments of a shared machine's noise."""
    samples: list[list[float]] = [[] for _ in requests]
    for _ in range(n):
        for index, (method, url, kwargs) in enumerate(requests):
            t0 = time.perf_counter()
            response = client.request(method, url, **kwargs)
            samples[index].append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    upstream = start_upstream()
    env = {**os.environ, "STRIPE_API_KEY": "sk_test_bench", "PYTHONPATH": str(ROOT / "src")}
    env = {k: v for k, v in env.items() if not k.startswith("NAFTIKO_") or k == "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(options.folder) if options.folder else Path(tmp)
        if not options.folder:
            (folder / DOCUMENT.name).symlink_to(DOCUMENT)
        consumed = "balance-identifiers"
        base = ["--host", "127.0.0.1", "--base-uri", f"{consumed}={upstream}"]
        own, own_urls, _ = start(
            [
                str(DOCUMENT),
                *base,
                "--port",
                "balance-identifiers-rest=0",
                "--port",
                "balance-identifiers-mcp=0",
            ],
            env,
        )
        gw_env = {**env, "NAFTIKO_BASE_URIS": f"{consumed}={upstream}"}
        gw, gw_urls, ready_s = start([str(folder), "--gateway", "0", "--host", "127.0.0.1"], gw_env)
        try:
            targets = {
                "A own ports": (
                    own_urls["balance-identifiers-rest"],
                    own_urls["balance-identifiers-mcp"],
                ),
                "B gateway": (
                    gw_urls["balance-identifiers-rest"],
                    gw_urls["balance-identifiers-mcp"],
                ),
            }
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": TOOL, "arguments": {"id": "txn_1"}},
            }
            headers = {"accept": "application/json, text/event-stream"}
            results: dict[str, dict[str, list[float]]] = {
                k: {"rest": [], "mcp": []} for k in targets
            }
            with httpx.Client(timeout=30) as client:
                for kind in ("rest", "mcp"):
                    requests = [
                        ("GET", rest + REST_PATH, {})
                        if kind == "rest"
                        else ("POST", mcp, {"json": call, "headers": headers})
                        for rest, mcp in targets.values()
                    ]
                    paired(client, requests, 200)  # warm-up
                    for _ in range(options.rounds):
                        runs = paired(client, requests, options.requests)
                        for name, run in zip(targets, runs, strict=True):
                            results[name][kind].append(statistics.median(run))
            documents = sum(1 for p in folder.iterdir())
            print(f"gateway start to ready, {documents} documents: {ready_s:.2f} s")
            for name, kinds in results.items():
                line = ", ".join(
                    f"{kind} {statistics.median(v) * 1e6:.0f} us/request"
                    for kind, v in kinds.items()
                )
                print(f"{name}: {line}")
        finally:
            for proc in (own, gw):
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
