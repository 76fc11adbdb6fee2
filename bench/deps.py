#!/usr/bin/env python3
"""Dependency bench: each hand-written stand-in beside the libraries it stands in for.

``bench/deps`` (or ``python bench/deps.py`` with the bench venv: the comparison
libraries are in the ``bench`` extra of ``pyproject.toml``) measures, side by side in
one run and in interleaved rounds (each figure is the median of its rounds):

1. Upstream client: ``Http11Transport`` (the engine's direct ``fetch`` path, and under
   ``httpx.AsyncClient``) vs httpx's default transport (httpcore) vs aiohttp, against
   the same loopback upstream (nginx, or the Python stand-in): client CPU µs per
   upstream request and req/s, GET and small JSON POST, keep-alive.
2. ASGI server: uvicorn with naftiko's protocol (the listener limits, as naftiko-run
   configures it) vs plain uvicorn (httptools) vs granian, serving a tiny ASGI app and naftiko's
   REST adapter for ``capabilities/bench.yaml``: max req/s and server CPU µs per request
   at a fixed offered load (half the slowest one's maximum).
3. JSON: ``engine/json_codec.py`` vs plain orjson vs msgspec.json, loads and dumps of a
   token response, a 10 KB list and a 1 MB document: µs per operation.
4. Request log line: naftiko's fast path (``runtime/logs/``) vs the standard library
   with a redaction filter, directly and through a ``QueueHandler``/``QueueListener``:
   process CPU µs per line (writer thread included).

Each stand-in's saving over the best alternative is also expressed as a share of a
REST request's CPU (``--request-cpu-us``, from ``bench/run``'s naftiko-run rows), and
the issue 16 rule applied: keep the stand-in only where it wins by more than 15%.

Writes ``bench/results/deps.json`` and ``deps.md`` (or ``--results-dir``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import logging.handlers
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness.load import LoadGenerator, Request, run_at_rate  # noqa: E402
from harness.system import Cores, Service, free_port, pinned, wait_for_port  # noqa: E402
from harness.upstream import (  # noqa: E402
    TOKEN_PATH,
    TOKEN_RESPONSE,
    VIDEOS_RESPONSE,
    start_upstream,
)

KEEP_THRESHOLD = 0.15  # issue 16: a stand-in stays only if it saves more than this share
CLIENTS = ("naftiko-fetch", "naftiko-httpx", "httpx", "aiohttp")
SERVERS = ("naftiko", "uvicorn", "granian")
TOKEN_JSON = json.dumps({"code": "abc123", "redirect_uri": "https://example.com/callback"})
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Profile:
    """How long each measurement runs; ``--quick`` is a smoke test, not a result."""

    rounds: int
    client_s: float
    client_warmup_s: float
    server_s: float
    server_warmup_s: float
    json_target_s: float
    log_lines: int

    @classmethod
    def for_mode(cls, quick: bool, rounds: int | None) -> Profile:
        if quick:
            return cls(rounds or 1, 0.5, 0.2, 1.0, 0.5, 0.002, 200)
        return cls(rounds or 4, 2.0, 0.5, 3.0, 1.0, 0.02, 3000)


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at position ``by``: each round starts with a different one."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- 1. client


def client_section(
    profile: Profile, cores: Cores, upstream_url: str, python: str
) -> dict[str, Any]:
    """Each client in its own process on the server core, the upstream on its own."""
    shapes = {
        "GET": Request(f"{upstream_url}/v2/users/7000/videos/?max_count=5&cursor=0"),
        "POST": Request(f"{upstream_url}{TOKEN_PATH}", "POST", TOKEN_JSON, JSON_HEADERS),
    }
    script = BENCH_DIR / "harness" / "depclient.py"
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        shape: {client: [] for client in CLIENTS} for shape in shapes
    }
    for round_no in range(profile.rounds):
        for shape, request in shapes.items():
            for client in rotated(CLIENTS, round_no):
                spec = {
                    "client": client,
                    "url": request.url,
                    "method": request.method,
                    "body": request.body,
                    "headers": dict(request.headers),
                    "connections": 32,
                    "duration_s": profile.client_s,
                    "warmup_s": profile.client_warmup_s,
                }
                proc = subprocess.run(
                    pinned([python, str(script), json.dumps(spec)], cores.server),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{client} failed: {proc.stderr[-2000:]}")
                data = json.loads(proc.stdout.strip().splitlines()[-1])
                if data["errors"] or not data["requests"]:
                    raise RuntimeError(f"{client} {shape}: {data}")
                runs[shape][client].append(
                    {
                        "cpu_us": data["cpu_s"] / data["requests"] * 1e6,
                        "rps": data["requests"] / data["wall_s"],
                    }
                )
                log(
                    f"client {shape} round {round_no + 1} {client}: "
                    f"{runs[shape][client][-1]['cpu_us']:.1f} µs/req, "
                    f"{runs[shape][client][-1]['rps']:.0f} req/s"
                )
    return {
        shape: {
            client: {
                "cpu_us": median([r["cpu_us"] for r in rounds]),
                "rps": median([r["rps"] for r in rounds]),
                "rounds_cpu_us": [round(r["cpu_us"], 1) for r in rounds],
            }
            for client, rounds in clients.items()
        }
        for shape, clients in runs.items()
    }


# --------------------------------------------------------------------------- 2. server


def start_server(
    kind: str, app: str, scratch: Path, cpu: str, python: str, env: dict[str, str]
) -> tuple[Service, str]:
    """``kind`` (see ``SERVERS``) serving ``app`` (``tiny`` or ``rest``) on a free port."""
    port = free_port()
    if kind == "granian":
        target = "harness.depserver:" + ("rest" if app == "rest" else "app")
        cmd = [
            python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--no-ws",
            "--http",
            "1",
            "--log-level",
            "warning",
            target,
        ]
    else:
        cmd = [python, str(BENCH_DIR / "harness" / "depserver.py"), kind, str(port), app]
    service = Service.start(
        f"server-{app}-{kind}", pinned(cmd, cpu), scratch, env=env, cwd=BENCH_DIR
    )
    try:
        wait_for_port(port, timeout=30, proc=service.proc)
    except Exception:
        service.stop()
        raise RuntimeError(f"{kind} ({app}) did not start:\n{service.tail()}") from None
    return service, f"http://127.0.0.1:{port}"


def server_section(
    profile: Profile,
    cores: Cores,
    scratch: Path,
    python: str,
    upstream_url: str,
    apps: Sequence[str],
) -> dict[str, Any]:
    """Per app: saturation rounds (32 connections), then rounds at one fixed offered load
    (8 paced connections, half the slowest server's maximum), servers interleaved."""
    gen = LoadGenerator(cores.load, python)
    env = dict(
        os.environ,
        DEPS_UPSTREAM=upstream_url,
        BENCH_CLIENT_KEY="bench-key",
        BENCH_CLIENT_SECRET="bench-secret",
        PYTHONUNBUFFERED="1",
    )
    shapes = {
        "GET": lambda url: Request(f"{url}/v1/users/u123/videos?max_count=5&cursor=0"),
        "POST": lambda url: Request(f"{url}/v1/oauth/token", "POST", TOKEN_JSON, JSON_HEADERS),
    }
    out: dict[str, Any] = {"load_generator": gen.tool}
    for app in apps:
        started = {
            kind: start_server(kind, app, scratch, cores.server, python, env) for kind in SERVERS
        }
        try:
            out[app] = {
                shape: _serve_rounds(profile, gen, started, app, shape, make)
                for shape, make in shapes.items()
            }
        finally:
            for service, _ in started.values():
                service.stop()
    return out


def _serve_rounds(
    profile: Profile,
    gen: LoadGenerator,
    started: dict[str, tuple[Service, str]],
    app: str,
    shape: str,
    make: Callable[[str], Request],
) -> dict[str, Any]:
    for kind, (_, url) in started.items():  # warm-up, and a correctness check
        warm = gen.run(make(url), connections=32, duration_s=profile.server_warmup_s)
        if warm.errors or not warm.requests:
            raise RuntimeError(f"{kind} {app} {shape} warm-up: {warm.to_dict()}")
    sat: dict[str, list[tuple[float, float]]] = {kind: [] for kind in SERVERS}
    for round_no in range(profile.rounds):
        for kind in rotated(SERVERS, round_no):
            service, url = started[kind]
            result = gen.run(
                make(url), connections=32, duration_s=profile.server_s, server_pids=service.pids
            )
            sat[kind].append((result.rps, result.cpu_us_per_request or 0.0))
            log(
                f"server {app} {shape} saturation round {round_no + 1} {kind}: "
                f"{result.rps:.0f} req/s, {result.cpu_us_per_request:.1f} µs/req"
            )
    max_rps = {kind: median([r for r, _ in runs]) for kind, runs in sat.items()}
    target = 0.5 * min(max_rps.values())
    fixed: dict[str, list[tuple[float, float]]] = {kind: [] for kind in SERVERS}
    delays: dict[str, float] = {}
    for round_no in range(profile.rounds):
        for kind in rotated(SERVERS, round_no):
            service, url = started[kind]
            if kind not in delays:  # calibrated once, in the first round
                result = run_at_rate(
                    gen,
                    make(url),
                    target_rps=target,
                    connections=8,
                    duration_s=profile.server_s,
                    calibrate_s=profile.server_warmup_s,
                    server_pids=service.pids,
                )
                delays[kind] = result.delay_ms
            else:
                result = gen.run(
                    make(url),
                    connections=8,
                    duration_s=profile.server_s,
                    delay_ms=delays[kind],
                    server_pids=service.pids,
                )
            fixed[kind].append((result.rps, result.cpu_us_per_request or 0.0))
            log(
                f"server {app} {shape} fixed-load round {round_no + 1} {kind}: "
                f"{result.rps:.0f} req/s, {result.cpu_us_per_request:.1f} µs/req"
            )
    return {
        "offered_rps": round(target),
        **{
            kind: {
                "max_rps": max_rps[kind],
                "cpu_us_at_max": median([c for _, c in sat[kind]]),
                "fixed_rps": median([r for r, _ in fixed[kind]]),
                "cpu_us": median([c for _, c in fixed[kind]]),
                "rounds_cpu_us": [round(c, 1) for _, c in fixed[kind]],
            }
            for kind in SERVERS
        },
    }


# --------------------------------------------------------------------------- 3. JSON


def json_bodies() -> dict[str, Any]:
    """A token response, a ~10 KB list of records and a ~1 MB document of them."""

    def item(i: int) -> dict[str, Any]:
        return {
            "id": f"73{i:017d}",
            "title": f"Benchmark video {i}",
            "view_count": 1000 + i,
            "duration": 15.5 + i,
            "share": i % 2 == 0,
            "tags": ["a", "b"],
            "cover_image_url": f"https://example.com/cover/{i}.jpg",
        }

    small_list = [item(i) for i in range(50)]
    while len(json.dumps(small_list)) < 10_000:
        small_list.append(item(len(small_list)))
    big = dict(VIDEOS_RESPONSE)
    big["data"] = {"videos": [item(i) for i in range(5000)], "cursor": 1, "has_more": False}
    while len(json.dumps(big)) < 1_000_000:
        big["data"]["videos"].extend(item(i) for i in range(100))
    return {"token (%d B)": TOKEN_RESPONSE, "list (%d B)": small_list, "document (%d B)": big}


def json_section(profile: Profile) -> dict[str, Any]:
    import msgspec
    import orjson

    from naftiko import json_codec

    decode, encode = msgspec.json.Decoder(), msgspec.json.Encoder()
    loaders: dict[str, Callable[[bytes], Any]] = {
        "naftiko": json_codec.loads,
        "orjson": orjson.loads,
        "msgspec": decode.decode,
        "stdlib": json.loads,
    }
    dumpers: dict[str, Callable[[Any], bytes]] = {
        "naftiko": json_codec.dumps,
        "orjson": orjson.dumps,
        "msgspec": encode.encode,
        "stdlib": lambda v: json.dumps(
            v, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode(),
    }
    out: dict[str, Any] = {}
    for label, value in json_bodies().items():
        raw = orjson.dumps(value)
        name = label % len(raw)
        for op, funcs, arg in (("loads", loaders, raw), ("dumps", dumpers, value)):
            for func in funcs.values():  # all agree on these bodies
                assert orjson.loads(
                    func(arg) if op == "dumps" else orjson.dumps(func(arg))
                ) == orjson.loads(raw)
            timings: dict[str, list[float]] = {k: [] for k in funcs}
            numbers = {
                k: _calibrate(lambda f=f, a=arg: f(a), profile.json_target_s)
                for k, f in funcs.items()
            }
            for round_no in range(max(profile.rounds, 5)):
                for k in rotated(list(funcs), round_no):
                    f, n = funcs[k], numbers[k]
                    call = lambda f=f, a=arg: f(a)  # noqa: E731
                    timings[k].append(timeit.Timer(call).timeit(n) / n * 1e6)
            out.setdefault(name, {})[op] = {k: median(v) for k, v in timings.items()}
            log(
                f"json {name} {op}: "
                + ", ".join(f"{k} {v:.2f} µs" for k, v in out[name][op].items())
            )
    return out


def _calibrate(func: Callable[[], Any], target_s: float) -> int:
    """How many calls take about ``target_s`` (at least 1)."""
    number = 1
    while True:
        took = timeit.Timer(func).timeit(number)
        if took >= target_s / 4 or number >= 1_000_000:
            return max(1, int(number * target_s / max(took, 1e-9)))
        number *= 4


# --------------------------------------------------------------------------- 4. logs

SECRET = "bench-secret-value-123"
LINE = ("rest", "bench", "exchange-token", 200, False, 12.5, "req-0001", 200)


class RedactingFilter(logging.Filter):
    """The standard-library way to redact: the message and ``extra`` values, per record."""

    def __init__(self, redactor: Any) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor.redact(record.getMessage()), None
        for key in ("request_id", "adapter_type", "adapter", "unit"):
            setattr(record, key, self.redactor.redact_value(getattr(record, key), key))
        return True


class StdlibJsonFormatter(logging.Formatter):
    """naftiko's JSON request line, written the standard-library way (a dict per record)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return json.dumps(
            {
                "time": f"{stamp}.{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
                "event": "request",
                "request_id": record.request_id,
                "adapter_type": record.adapter_type,
                "adapter": record.adapter,
                "unit": record.unit,
                "status": record.status,
                "error": record.error,
                "upstream_status": record.upstream_status,
                "duration_ms": record.duration_ms,
            },
            ensure_ascii=False,
        )


def _stdlib_line(logger: logging.Logger) -> None:
    from naftiko.runtime.logs import REQUEST_MESSAGE

    kind, adapter, unit, status, error, duration, rid, upstream = LINE
    logger.info(
        REQUEST_MESSAGE,
        kind,
        adapter,
        unit,
        status,
        upstream,
        duration,
        rid,
        extra={
            "event": "request",
            "request_id": rid,
            "adapter_type": kind,
            "adapter": adapter,
            "unit": unit,
            "status": status,
            "error": error,
            "upstream_status": upstream,
            "duration_ms": duration,
        },
    )


def _naftiko_line(logger: logging.Logger) -> None:
    from naftiko.runtime.logs import log_request

    kind, adapter, unit, status, error, duration, rid, upstream = LINE
    log_request(
        logger,
        adapter_type=kind,
        adapter=adapter,
        unit=unit,
        status=status,
        is_error=error,
        duration_ms=duration,
        request_id=rid,
        upstream_status=upstream,
    )


@contextmanager
def _root_handlers(*handlers: logging.Handler) -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    root.handlers[:] = list(handlers)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def _log_variant(name: str, lines: int, sink: io.TextIOBase) -> tuple[float, float]:
    """(process CPU µs per line, caller's wall µs per line) for ``lines`` request lines."""
    from naftiko.runtime.logs import BatchingStreamHandler, Redactor, configure_logging

    redactor = Redactor([SECRET])
    logger = logging.getLogger("naftiko.request")

    async def run(emit: Callable[[logging.Logger], None]) -> float:
        started = time.perf_counter()
        for _ in range(lines):
            emit(logger)
        return time.perf_counter() - started

    if name == "naftiko":
        root = logging.getLogger()
        saved, level = list(root.handlers), root.level
        handler = configure_logging(log_format="json", level="info", redactor=redactor, stream=sink)  # type: ignore[arg-type]
        assert isinstance(handler, BatchingStreamHandler)
        try:
            cpu = time.process_time()
            wall = asyncio.run(run(_naftiko_line))
            handler.flush()
            cpu = time.process_time() - cpu
        finally:
            root.handlers[:] = saved
            root.setLevel(level)
        return cpu / lines * 1e6, wall / lines * 1e6
    target = logging.StreamHandler(sink)  # type: ignore[arg-type]
    target.setFormatter(StdlibJsonFormatter())
    if name == "stdlib-filter":
        target.addFilter(RedactingFilter(redactor))
        with _root_handlers(target):
            cpu = time.process_time()
            wall = asyncio.run(run(_stdlib_line))
            cpu = time.process_time() - cpu
        return cpu / lines * 1e6, wall / lines * 1e6
    lines_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    front = logging.handlers.QueueHandler(lines_queue)
    front.addFilter(RedactingFilter(redactor))
    listener = logging.handlers.QueueListener(lines_queue, target)
    with _root_handlers(front):
        listener.start()
        cpu = time.process_time()
        wall = asyncio.run(run(_stdlib_line))
        listener.stop()  # waits until the writer thread has written every line
        cpu = time.process_time() - cpu
    return cpu / lines * 1e6, wall / lines * 1e6


def log_section(profile: Profile) -> dict[str, Any]:
    variants = ("naftiko", "stdlib-filter", "stdlib-queue")
    samples = {}
    for name in variants:  # the same line from each, before anything is timed
        sink = io.StringIO()
        _log_variant(name, 1, sink)
        samples[name] = json.loads(sink.getvalue())
        samples[name].pop("time")
    assert all(s == samples["naftiko"] for s in samples.values()), samples
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    with open(os.devnull, "w") as sink:
        for round_no in range(max(profile.rounds, 5)):
            for name in rotated(variants, round_no):
                c, w = _log_variant(name, profile.log_lines, sink)
                cpu[name].append(c)
                wall[name].append(w)
    out = {k: {"cpu_us": median(cpu[k]), "caller_us": median(wall[k])} for k in variants}
    log(
        "log line: "
        + ", ".join(
            f"{k} {v['cpu_us']:.2f} µs CPU ({v['caller_us']:.2f} µs in the caller)"
            for k, v in out.items()
        )
    )
    return out


# --------------------------------------------------------------------------- verdicts


def measured_request_cpu_us(results: dict[str, Any]) -> float | None:
    """A REST request's server CPU as measured in this run, if it was: naftiko's REST
    adapter on naftiko's server at saturation, mean of GET and POST (as ``bench/run``
    measures naftiko-run). Shares of it are shown beside the rule's, as a check: on a
    busy machine a server that is never quite saturated batches less and pays more CPU
    per request than ``bench/run`` finds on a quiet one."""
    rest = results.get("server", {}).get("rest")
    if rest is None:
        return None
    return (
        float(rest["GET"]["naftiko"]["cpu_us_at_max"] + rest["POST"]["naftiko"]["cpu_us_at_max"])
        / 2
    )


def verdicts(results: dict[str, Any], request_cpu_us: float) -> list[dict[str, Any]]:
    """The issue 16 rule per stand-in: its saving over the best alternative, per request,
    as a share of a REST request's CPU; worse of GET and POST where there are two."""
    found: list[dict[str, Any]] = []

    def judge(
        stand_in: str,
        ours: dict[str, float],
        alternatives: dict[str, dict[str, float]],
        unit: str,
        verdict: str | None = None,
    ) -> None:
        best = {shape: min(alternatives, key=lambda k: alternatives[k][shape]) for shape in ours}
        saving = {shape: alternatives[best[shape]][shape] - ours[shape] for shape in ours}
        worst = min(saving, key=lambda s: saving[s])
        share = saving[worst] / request_cpu_us
        found.append(
            {
                "stand_in": stand_in,
                "unit": unit,
                "ours": ours,
                "alternatives": alternatives,
                "best_alternative": best[worst],
                "saving_us": saving[worst],
                "share": share,
                "shape": worst,
                "verdict": verdict or ("keep" if share > KEEP_THRESHOLD else "switch"),
            }
        )

    if "client" in results:
        client = results["client"]
        ours = {shape: client[shape]["naftiko-fetch"]["cpu_us"] for shape in client}
        alts = {
            k: {shape: client[shape][k]["cpu_us"] for shape in client} for k in ("httpx", "aiohttp")
        }
        judge("transport.py (Http11Transport)", ours, alts, "client CPU µs per upstream request")
    if "server" in results:
        for app in ("rest", "tiny"):  # the real adapter decides when it was measured
            server = results["server"].get(app)
            if server is None:
                continue
            ours = {shape: server[shape]["naftiko"]["cpu_us"] for shape in server}
            alts = {
                k: {shape: server[shape][k]["cpu_us"] for shape in server}
                for k in ("uvicorn", "granian")
            }
            # Not a speed stand-in: the protocol is where the listener limits live,
            # which neither alternative has; the row shows what they cost.
            judge(
                f"http_protocol.py (uvicorn + listener limits), {app} app",
                ours,
                alts,
                "server CPU µs per request at a fixed load",
                verdict="keep (listener limits)",
            )
    if "json" in results:
        token = next(v for k, v in results["json"].items() if k.startswith("token"))
        per_request = {k: token["loads"][k] + token["dumps"][k] for k in token["loads"]}
        judge(
            "json_codec.py",
            {"token": per_request["naftiko"]},
            {k: {"token": per_request[k]} for k in ("orjson", "msgspec")},
            "µs per request (loads + dumps of a token response)",
        )
    if "log" in results:
        logs = results["log"]
        judge(
            "logs/ request-line fast path",
            {"line": logs["naftiko"]["cpu_us"]},
            {k: {"line": logs[k]["cpu_us"]} for k in ("stdlib-filter", "stdlib-queue")},
            "process CPU µs per request line",
        )
    return found


def judge_all(results: dict[str, Any]) -> None:
    """The verdicts against ``request_cpu_us``, with the share of the measured figure."""
    results["measured_request_cpu_us"] = measured_request_cpu_us(results)
    results["verdicts"] = verdicts(results, results["request_cpu_us"])
    measured = results["measured_request_cpu_us"]
    for verdict in results["verdicts"]:
        verdict["share_of_measured"] = verdict["saving_us"] / measured if measured else None


def markdown(results: dict[str, Any]) -> str:
    out = [
        f"# Dependency bench ({results['when']})",
        "",
        f"A REST request's server CPU, the base of the shares: "
        f"{results['request_cpu_us']:.0f} µs (``--request-cpu-us``: bench/run's "
        f"naftiko-run figure); measured in this run: "
        f"{results.get('measured_request_cpu_us') or float('nan'):.0f} µs; "
        f"pinning: {results['cores']}; upstream: {results.get('upstream', '-')}; "
        f"rounds: {results['rounds']}.",
        "",
    ]
    if "client" in results:
        out += [
            "## Upstream client (client CPU µs per request, req/s; 32 concurrent)",
            "",
            "| client | GET µs | GET req/s | POST µs | POST req/s |",
            "|---|---|---|---|---|",
        ]
        c = results["client"]
        for k in CLIENTS:
            out.append(
                f"| {k} | {c['GET'][k]['cpu_us']:.1f} | {c['GET'][k]['rps']:.0f} | "
                f"{c['POST'][k]['cpu_us']:.1f} | {c['POST'][k]['rps']:.0f} |"
            )
        out.append("")
    if "server" in results:
        s = results["server"]
        for app in ("tiny", "rest"):
            if app not in s:
                continue
            g_all, p_all = s[app]["GET"], s[app]["POST"]
            what = "a tiny ASGI app" if app == "tiny" else "naftiko's REST adapter (bench.yaml)"
            out += [
                f"## ASGI server serving {what}",
                "",
                f"Server CPU µs/request at a fixed load (GET {g_all['offered_rps']} req/s, "
                f"POST {p_all['offered_rps']} req/s: half the slowest maximum), and max "
                f"req/s with the µs/request at that load; load generator "
                f"{s['load_generator']}.",
                "",
                "| server | GET µs | GET max req/s (µs) | POST µs | POST max req/s (µs) |",
                "|---|---|---|---|---|",
            ]
            for k in SERVERS:
                g, p = g_all[k], p_all[k]
                out.append(
                    f"| {k} | {g['cpu_us']:.1f} | {g['max_rps']:.0f} "
                    f"({g['cpu_us_at_max']:.1f}) | {p['cpu_us']:.1f} | "
                    f"{p['max_rps']:.0f} ({p['cpu_us_at_max']:.1f}) |"
                )
            out.append("")
    if "json" in results:
        out += [
            "## JSON (µs per operation)",
            "",
            "| body | op | naftiko | orjson | msgspec | stdlib |",
            "|---|---|---|---|---|---|",
        ]
        for body, ops in results["json"].items():
            for op, t in ops.items():
                out.append(
                    f"| {body} | {op} | {t['naftiko']:.2f} | {t['orjson']:.2f} | "
                    f"{t['msgspec']:.2f} | {t['stdlib']:.2f} |"
                )
        out.append("")
    if "log" in results:
        out += [
            "## Request log line (process CPU µs per line; caller's µs)",
            "",
            "| variant | CPU µs | in the caller µs |",
            "|---|---|---|",
        ]
        for k, v in results["log"].items():
            out.append(f"| {k} | {v['cpu_us']:.2f} | {v['caller_us']:.2f} |")
        out.append("")
    out += [
        "## Verdicts (keep only if the stand-in saves > 15% of the request's CPU)",
        "",
        f"Share: of {results['request_cpu_us']:.0f} µs; in brackets, of the REST "
        f"request's CPU measured in this run (when it was).",
        "",
        "| stand-in | ours | best alternative | saving µs/request | share | rule says |",
        "|---|---|---|---|---|---|",
    ]
    for v in results["verdicts"]:
        ours = v["ours"][v["shape"]]
        alt = v["alternatives"][v["best_alternative"]][v["shape"]]
        out.append(
            f"| {v['stand_in']} ({v['shape']}) | {ours:.1f} | {v['best_alternative']} "
            f"{alt:.1f} | {v['saving_us']:.1f} | {v['share']:.1%} "
            f"({_percent(v.get('share_of_measured'))}) | {v['verdict']} |"
        )
    return "\n".join(out) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 4)")
    parser.add_argument(
        "--only", action="append", choices=("client", "server", "json", "log"), help="repeatable"
    )
    parser.add_argument(
        "--request-cpu-us",
        type=float,
        default=230.0,
        help="a REST request's server CPU, the base of the 15%% rule "
        "(bench/run's naftiko-run rows: ~220-250 µs)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--python-upstream",
        action="store_true",
        help="use the Python upstream even when nginx is installed",
    )
    parser.add_argument(
        "--no-rest-app",
        action="store_true",
        help="servers serve the tiny app only, not the REST adapter too",
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="DEPS_JSON",
        help="judge and print an earlier run's deps.json again, measure nothing",
    )
    args = parser.parse_args(argv)
    if args.render:
        earlier = json.loads(args.render.read_text())
        earlier["request_cpu_us"] = args.request_cpu_us
        judge_all(earlier)
        print(markdown(earlier))
        return 0
    only = set(args.only or ("client", "server", "json", "log"))
    profile = Profile.for_mode(args.quick, args.rounds)
    cores = Cores.detect(not args.no_pin)
    python = sys.executable
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "request_cpu_us": args.request_cpu_us,
        "rounds": profile.rounds,
        "quick": args.quick,
        "cores": cores.describe(),
    }
    scratch = Path(tempfile.mkdtemp(prefix="naftiko-deps-"))
    try:
        if only & {"client", "server"}:
            upstream = start_upstream(
                scratch, free_port(), cores.upstream, python, prefer_nginx=not args.python_upstream
            )
            results["upstream"] = upstream.kind
            try:
                if "client" in only:
                    results["client"] = client_section(profile, cores, upstream.url, python)
                if "server" in only:
                    apps = ("tiny",) if args.no_rest_app else ("tiny", "rest")
                    results["server"] = server_section(
                        profile, cores, scratch, python, upstream.url, apps
                    )
            finally:
                upstream.service.stop()
        with _on_core(cores.server):  # in-process parts: on the server core, alone
            if "json" in only:
                results["json"] = json_section(profile)
            if "log" in only:
                results["log"] = log_section(profile)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    judge_all(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "deps.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.results_dir / "deps.md").write_text(text)
    print(text)
    return 0


@contextmanager
def _on_core(cpu: str) -> Iterator[None]:
    if not cpu:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(cpu)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


if __name__ == "__main__":
    raise SystemExit(main())
