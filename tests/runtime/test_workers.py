"""``--workers N`` end to end on real sockets: processes sharing the listeners, /status and
/metrics over every worker, a killed worker restarted, SIGTERM under load losing nothing.

Plus the pure part: how worker snapshots are merged into one exposition.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from naftiko.runtime.workers import exposition, merge_families, restart_delay
from runtime.naftiko_process import NaftikoProcess, run_to_exit
from support.servers import ServerThread

SLOW_S = 1.0  # an upstream call still running when SIGTERM comes


def document(upstream: str) -> str:
    return f"""\
naftiko: 1.0.0-alpha2
info:
  label: workers
  description: Two operations, one slow.
capability:
  consumes:
    - type: http
      namespace: backend
      baseUri: {upstream}
      resources:
        - name: fast
          path: /fast
          operations:
            - name: get-fast
              method: GET
        - name: slow
          path: /slow
          operations:
            - name: get-slow
              method: GET
  exposes:
    - type: rest
      namespace: api
      port: 8080
      resources:
        - path: /fast
          name: fast
          operations:
            - method: GET
              name: getFast
              call: backend.get-fast
        - path: /slow
          name: slow
          operations:
            - method: GET
              name: getSlow
              call: backend.get-slow
    - type: mcp
      namespace: tools
      port: 9090
      tools:
        - name: get-fast
          description: Gets the fast thing.
          call: backend.get-fast
"""


class Upstream:
    """Counts the answers it sent: every call the runtime finished reached it once."""

    def __init__(self) -> None:
        self.answered = 0
        self.slow_in_flight = 0
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def fast(request: Request) -> JSONResponse:
            return self._answer()

        async def slow(request: Request) -> JSONResponse:
            with self.lock:
                self.slow_in_flight += 1
            try:
                await asyncio.sleep(SLOW_S)
            finally:
                with self.lock:
                    self.slow_in_flight -= 1
            return self._answer()

        return Starlette(routes=[Route("/fast", fast), Route("/slow", slow)])

    def _answer(self) -> JSONResponse:
        with self.lock:
            self.answered += 1
        return JSONResponse({"ok": True})


def argv(capability: Path, *extra: str) -> list[str]:
    return [
        str(capability),
        "--host",
        "127.0.0.1",
        "--port",
        "api=0",
        "--port",
        "tools=0",
        "--control-port",
        "0",
        "--log-format",
        "json",
        "--workers",
        "2",
        *extra,
    ]


def workers_event(run: NaftikoProcess) -> dict[str, Any]:
    line = run.wait_for(lambda text: '"event": "workers"' in text or "workers ready" in text)
    return json.loads(line)


async def poll(check: Any, timeout: float = 15.0) -> Any:
    """``await check()`` until it returns something truthy (snapshots come every second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check.__name__}")
        await asyncio.sleep(0.2)


def requests_total(metrics: str) -> float:
    found = re.search(
        r'naftiko_requests_total\{adapter="api",adapter_type="rest",status="200",'
        r'unit="getFast"\} ([0-9.e+]+)',
        metrics,
    )
    return float(found.group(1)) if found else 0.0


async def test_two_workers_share_listeners_sum_metrics_and_restart_a_killed_one(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    with ServerThread(upstream.app()) as server:
        capability = tmp_path / "workers.yaml"
        capability.write_text(document(server.url), encoding="utf-8")
        with NaftikoProcess(argv(capability)) as run:
            urls = run.wait_ready()
            pids = workers_event(run)["pids"]
            assert len(set(pids)) == 2 and run.proc is not None and run.proc.pid not in pids
            fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request
            async with httpx.AsyncClient(timeout=30, limits=fresh) as http:
                answers = await asyncio.gather(
                    *(http.get(f"{urls['api']}/fast") for _ in range(40))
                )
                assert [a.status_code for a in answers] == [200] * 40
                async with Client(urls["tools"]) as mcp:  # apps built before the fork
                    result = await mcp.call_tool("get-fast", {})
                    assert not result.is_error, result

                async def both_served() -> Any:
                    status = (await http.get(f"{urls['control']}/status")).json()
                    workers = status["workers"]
                    counts = [w["requests"] for w in workers]
                    # 40 REST calls + the MCP call (and /status is not counted).
                    if len(workers) == 2 and sum(counts) == 41 and min(counts) > 0:
                        return status
                    return None

                status = await poll(both_served)
                assert {w["pid"] for w in status["workers"]} == set(pids)
                assert status["worker"]["pid"] in pids
                answering = set()
                for _ in range(30):
                    answer = await http.get(f"{urls['control']}/status")
                    answering.add(answer.json()["worker"]["pid"])
                assert answering == set(pids)  # both accept from the shared listener

                async def summed() -> bool:
                    metrics = (await http.get(f"{urls['control']}/metrics")).text
                    return requests_total(metrics) == 40.0

                await poll(summed)
                metrics = (await http.get(f"{urls['control']}/metrics")).text
                assert metrics.count("# TYPE naftiko_requests_total counter") == 1
                assert "naftiko_build_info{" in metrics

                # SIGKILL one worker: logged, forked again, its counts kept.
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
                line = run.wait_for(lambda text: "ended unexpectedly" in text)
                event = json.loads(line)
                assert event["pid"] == killed and event["ended"] == "killed by SIGKILL"
                assert str(event.get("level")).lower() == "error", event
                restarted = json.loads(
                    run.wait_for(
                        lambda text: (
                            '"event": "worker"' in text
                            and "started" in text
                            and f'"pid": {killed}' not in text
                            and str(pids[1]) not in text
                            and json.loads(text).get("worker") == 1
                        )
                    )
                )["pid"]

                async def replaced() -> Any:
                    status = (await http.get(f"{urls['control']}/status")).json()
                    return {w["pid"] for w in status["workers"]} == {restarted, pids[1]}

                await poll(replaced)
                answers = await asyncio.gather(
                    *(http.get(f"{urls['api']}/fast") for _ in range(10))
                )
                assert [a.status_code for a in answers] == [200] * 10

                async def kept() -> bool:
                    metrics = (await http.get(f"{urls['control']}/metrics")).text
                    return requests_total(metrics) == 50.0

                await poll(kept)
            run.signal(signal.SIGTERM)
            assert await asyncio.to_thread(run.wait) == 0, run.output
        assert "Traceback" not in run.output


class Load:
    """Concurrent loops of fresh-connection GETs until the listener is gone.

    A loop ends on its first call that gets no answer at all: the connection refused
    (the listener is closed), or closed before a single byte of answer (it waited in the
    kernel's queue or was accepted an instant before the stop, and no worker ever read
    its request: the kernel resets what is queued on a listener being closed, as with
    one process). Anything else -- a status other than 200, part of an answer, a
    connection dropped after the request reached the app -- is a failure; the last one
    shows as a call the upstream answered that the caller never got.
    """

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base = http, base
        self.ok = 0
        self.slow_ok_after_signal = 0
        self.refused = 0
        self.unserved = 0
        self.failures: list[str] = []
        self.signalled = False

    async def loop(self, path: str) -> None:
        while True:
            before_signal = not self.signalled
            try:
                answer = await self.http.get(f"{self.base}{path}")
            except httpx.ConnectError:  # the listener is closed: never accepted
                self.refused += 1
                return
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if "without sending a response" in str(exc) or isinstance(exc, httpx.ReadError):
                    self.unserved += 1  # no byte of answer: never read by a worker
                else:
                    self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                return
            except httpx.HTTPError as exc:
                self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                return
            if answer.status_code != 200:
                self.failures.append(f"{path}: {answer.status_code} {answer.text[:200]}")
                return
            self.ok += 1
            if path == "/slow" and before_signal and self.signalled:
                self.slow_ok_after_signal += 1


async def test_sigterm_under_load_drains_every_worker_and_loses_nothing(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    with ServerThread(upstream.app()) as server:
        capability = tmp_path / "workers.yaml"
        capability.write_text(document(server.url), encoding="utf-8")
        with NaftikoProcess(argv(capability, "--grace-period", "10")) as run:
            urls = run.wait_ready()
            workers_event(run)
            fresh = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=30, limits=fresh) as http:
                load = Load(http, urls["api"])
                loops = [asyncio.create_task(load.loop("/fast")) for _ in range(8)]
                loops += [asyncio.create_task(load.loop("/slow")) for _ in range(8)]
                await asyncio.sleep(2.5)  # a few slow rounds, slow calls in flight now
                assert load.ok > 0 and not load.failures, load.failures
                # Signal while the upstream holds a slow call (a busy machine may be between
                # rounds after a fixed sleep): that call must still reach its caller.
                for _ in range(200):
                    if upstream.slow_in_flight:
                        break
                    await asyncio.sleep(0.05)
                load.signalled = True
                run.signal(signal.SIGTERM)
                await asyncio.wait_for(asyncio.gather(*loops), 30)
                code = await asyncio.to_thread(run.wait)
        assert code == 0, run.output
        assert not load.failures, (load.failures, run.output)
        # Every call the workers made was answered to its caller: none dropped mid-way.
        assert load.ok == upstream.answered, (load.ok, upstream.answered)
        assert load.slow_ok_after_signal > 0  # calls in flight at SIGTERM finished
        # Each loop ended on a listener that was gone (mostly refused outright).
        assert load.refused + load.unserved == len(loops), (load.refused, load.unserved)
        print(f"answered {load.ok}, then refused {load.refused}, unread {load.unserved}")
        stopped = [e for e in run.events() if "stopped:" in str(e.get("message", ""))]
        assert len(stopped) == 2 and all("exit code 0" in e["message"] for e in stopped)


async def test_group_sigterm_still_drains_and_a_second_one_to_the_parent_kills(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    with ServerThread(upstream.app()) as server:
        capability = tmp_path / "workers.yaml"
        capability.write_text(document(server.url), encoding="utf-8")
        async with httpx.AsyncClient(timeout=30) as http:
            # SIGTERM to every process, as systemd or a terminal's process group gets it:
            # the workers see it twice (theirs and the parent's) and still drain.
            with NaftikoProcess(argv(capability, "--grace-period", "10")) as run:
                urls = run.wait_ready()
                pids = workers_event(run)["pids"]
                slow = asyncio.create_task(http.get(f"{urls['api']}/slow"))
                await asyncio.sleep(0.5)
                for pid in pids:
                    os.kill(pid, signal.SIGTERM)
                run.signal(signal.SIGTERM)
                assert (await slow).status_code == 200
                assert await asyncio.to_thread(run.wait) == 0, run.output
            assert "ended unexpectedly" not in run.output

            # A second SIGTERM to the parent: the workers are killed, exit 1.
            with NaftikoProcess(argv(capability, "--grace-period", "10")) as run:
                urls = run.wait_ready()
                pids = workers_event(run)["pids"]
                slow = asyncio.create_task(http.get(f"{urls['api']}/slow"))
                await asyncio.sleep(0.5)
                run.signal(signal.SIGTERM)
                await asyncio.to_thread(run.wait_for, lambda text: "stopping 2 workers" in text)
                run.signal(signal.SIGTERM)
                assert await asyncio.to_thread(run.wait) == 1, run.output
                assert "the workers exit now" in run.output
                assert "killed by SIGKILL" in run.output
                try:
                    answer = await slow
                except httpx.HTTPError:
                    pass  # cut, as asked
                else:
                    assert answer.status_code == 200  # it may have been just in time


async def test_gateway_and_reload_with_workers(tmp_path: Path) -> None:
    upstream = Upstream()
    with ServerThread(upstream.app()) as server:
        folder = tmp_path / "capabilities"
        folder.mkdir()
        capability = folder / "workers.yaml"
        capability.write_text(document(server.url), encoding="utf-8")
        args = [str(folder), "--gateway", "0", "--host", "127.0.0.1", "--reload"]
        args += ["--log-format", "json", "--workers", "2"]
        with NaftikoProcess(args) as run:
            base = run.wait_ready()["gateway"]
            workers_event(run)
            async with httpx.AsyncClient(timeout=30) as http:
                assert (await http.get(f"{base}/api/fast")).status_code == 200
                status = (await http.get(f"{base}/status")).json()
                assert len(status["workers"]) == 2
                # Each worker swaps the edited document in itself.
                edited = document(server.url).replace(
                    "path: /fast\n          name: fast\n", "path: /quick\n          name: fast\n"
                )
                capability.write_text(edited, encoding="utf-8")

                async def both_reloaded() -> bool:
                    events = run.events()
                    return sum(e.get("outcome") == "reloaded" for e in events) == 2

                await poll(both_reloaded, 20)
                fresh = httpx.Limits(max_keepalive_connections=0)
                async with httpx.AsyncClient(timeout=30, limits=fresh) as each:
                    answers = await asyncio.gather(
                        *(each.get(f"{base}/api/quick") for _ in range(20))
                    )
                assert [a.status_code for a in answers] == [200] * 20

                # A worker forked again after a crash reloads what changed since the
                # parent loaded the folder: it does not serve the first version.
                os.kill(status["workers"][0]["pid"], signal.SIGKILL)

                async def third_reload() -> bool:
                    events = run.events()
                    return sum(e.get("outcome") == "reloaded" for e in events) == 3

                await poll(third_reload, 20)
                async with httpx.AsyncClient(timeout=30, limits=fresh) as each:
                    answers = await asyncio.gather(
                        *(each.get(f"{base}/api/quick") for _ in range(20))
                    )
                assert [a.status_code for a in answers] == [200] * 20
            run.signal(signal.SIGTERM)
            assert await asyncio.to_thread(run.wait) == 0, run.output


def test_refusals_before_anything_forks(tmp_path: Path) -> None:
    capability = tmp_path / "workers.yaml"
    capability.write_text(document("http://127.0.0.1:9"), encoding="utf-8")
    stdio = run_to_exit([str(capability), "--workers", "2", "--stdio", "tools"])
    assert stdio.returncode == 2
    assert stdio.stderr.strip().splitlines() == [
        "naftiko-run: --stdio serves one MCP client on this process's stdin/stdout and "
        "cannot be shared by 2 workers; drop --workers (or NAFTIKO_WORKERS) or set it to 1"
    ]
    zero = run_to_exit([str(capability)], env={"NAFTIKO_WORKERS": "0"})
    assert zero.returncode == 2 and "workers" in zero.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("naftiko: 1.0.0-alpha2\ncapability: [unclosed\n", encoding="utf-8")
    bad = run_to_exit([str(broken), "--workers", "2", "--port", "api=0"])
    assert bad.returncode == 2 and "broken.yaml:" in bad.stderr
    assert "worker" not in bad.stdout + bad.stderr


def family(name: str, kind: str, samples: list[list[Any]]) -> dict[str, Any]:
    return {"name": name, "type": kind, "help": f"{name}.", "unit": "", "samples": samples}


def test_merge_sums_counters_and_histograms_keeps_own_gauges() -> None:
    mine = [
        family(
            "req", "counter", [["req_total", {"s": "200"}, 3.0], ["req_created", {"s": "200"}, 5.0]]
        ),
        family("up", "gauge", [["up", {}, 1.0]]),
        family("lat", "histogram", [["lat_bucket", {"le": "+Inf"}, 3.0], ["lat_sum", {}, 0.3]]),
    ]
    theirs = [
        family(
            "req",
            "counter",
            [
                ["req_total", {"s": "200"}, 4.0],
                ["req_total", {"s": "500"}, 1.0],
                ["req_created", {"s": "200"}, 2.0],
            ],
        ),
        family("up", "gauge", [["up", {}, 7.0]]),
        family("lat", "histogram", [["lat_bucket", {"le": "+Inf"}, 2.0], ["lat_sum", {}, 0.2]]),
    ]
    merged = {
        f["name"]: {(s[0], tuple(s[1].items())): s[2] for s in f["samples"]}
        for f in merge_families(mine, [theirs])
    }
    assert merged["req"] == {
        ("req_total", (("s", "200"),)): 7.0,
        ("req_created", (("s", "200"),)): 2.0,
        ("req_total", (("s", "500"),)): 1.0,
    }
    assert merged["up"] == {("up", ()): 1.0}
    assert merged["lat"][("lat_bucket", (("le", "+Inf"),))] == 5.0
    assert abs(merged["lat"][("lat_sum", ())] - 0.5) < 1e-9
    text = exposition(merge_families(mine, [theirs])).decode()
    assert 'req_total{s="200"} 7.0' in text and "up 1.0" in text
    # Retired totals keep no gauge: a dead worker's gauge is not a value any more.
    assert [f["name"] for f in merge_families(theirs, [], gauges=False)] == ["req", "lat"]


def test_restart_delay_doubles_then_caps() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(7) == 30.0 and restart_delay(50) == 30.0
