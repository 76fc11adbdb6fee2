"""``--reload``, port clashes, load errors and override precedence, on real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from mcp import Client
from naftiko_process import NaftikoProcess, clean_env, run_to_exit

from fakes.tiktok import DEFAULT_CLIENT_KEY, DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URI, FakeTikTok
from support.servers import LiveFake

NS = "tiktok-login-kit-oauth"
REST, MCP = f"{NS}-rest", f"{NS}-mcp"
ENV = {"TIKTOK_FOR_DEVELOPERS_API_KEY": "bind-value-for-tests"}


def write(path: Path, text: str) -> None:
    """Replace the file's content and make sure its mtime moves (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def reload_outcome(line: str) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get("outcome") if event.get("event") == "reload" else None


async def test_reload_swaps_the_model_and_survives_a_broken_edit(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path, tmp_path: Path
) -> None:
    original = tiktok_capability_path.read_text(encoding="utf-8")
    capability = tmp_path / "tiktok.yaml"
    write(capability, original)
    fake = fake_tiktok.state
    fake.accept_json = True
    argv = [
        str(capability),
        "--reload",
        "--host",
        "127.0.0.1",
        "--log-format",
        "json",
        "--base-uri",
        f"{NS}={fake_tiktok.url}",
        "--port",
        f"{REST}=0",
        "--port",
        f"{MCP}=0",
    ]
    with NaftikoProcess(argv, ENV) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=30) as http:
            # A slow call in flight while the model is swapped still completes.
            fake.delay_s = 1.0
            form = {
                "client_key": DEFAULT_CLIENT_KEY,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "code": fake.issue_code(),
                "grant_type": "authorization_code",
                "redirect_uri": DEFAULT_REDIRECT_URI,
            }
            slow = asyncio.create_task(http.post(f"{urls[REST]}/v1/v2/oauth/token", json=form))
            while not fake.requests:
                await asyncio.sleep(0.01)

            edited = original.replace("name: revoke-access-token", "name: revoke-token-v2")
            edited = edited.replace("path: /v1/v2/oauth/revoke", "path: /v2/revoke")
            write(capability, edited)
            await asyncio.to_thread(run.wait_for, lambda line: reload_outcome(line) == "ok")
            assert (await slow).status_code == 200
            fake.delay_s = 0

            async with Client(urls[MCP]) as mcp:
                tools = {t.name for t in (await mcp.list_tools()).tools}
            assert "revoke-token-v2" in tools and "revoke-access-token" not in tools
            revoke = await http.post(f"{urls[REST]}/v2/revoke", json={"token": "t"})
            assert revoke.status_code != 404  # the new route exists (TikTok refuses the call)
            assert (await http.post(f"{urls[REST]}/v1/v2/oauth/revoke")).status_code == 404

            # A broken edit: diagnostics logged, the previous model keeps serving.
            write(capability, edited.replace("capability:", "capability: [unclosed", 1))
            await asyncio.to_thread(run.wait_for, lambda line: reload_outcome(line) == "failed")
            async with Client(urls[MCP]) as mcp:
                tools = {t.name for t in (await mcp.list_tools()).tools}
            assert "revoke-token-v2" in tools

            # A port change needs a restart: said so, nothing swapped.
            write(capability, edited.replace("port: 9090", "port: 9191"))
            await asyncio.to_thread(
                run.wait_for, lambda line: reload_outcome(line) == "restart-needed"
            )
            assert (await http.post(f"{urls[REST]}/v2/revoke", json={})).status_code != 404
        run.signal(signal.SIGTERM)
        assert run.wait() == 0
    failed = [
        e
        for e in run.events()
        if e.get("event") == "diagnostic"
        and str(capability) in e["message"]
        and "error" in e["message"]
    ]
    assert failed, run.output


def test_port_clash_across_documents_is_reported_before_start(
    tiktok_capability_path: Path, tmp_path: Path
) -> None:
    text = tiktok_capability_path.read_text(encoding="utf-8")
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    write(first, text)
    write(
        second,
        text.replace(f"namespace: {REST}", "namespace: other-rest").replace(
            f"namespace: {MCP}", "namespace: other-mcp"
        ),
    )
    result = run_to_exit([str(first), str(second), "--host", "127.0.0.1"], ENV)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    (clash,) = [line for line in lines if "port 8080" in line]
    assert f"rest {REST} ({first})" in clash and f"rest other-rest ({second})" in clash
    assert any("port 9090" in line for line in lines)
    assert "Traceback" not in result.stderr and "ready" not in result.stdout

    # Moving one adapter resolves it; port 0 never clashes.
    moved = run_to_exit(
        [
            str(first),
            str(second),
            "--check",
            "--port",
            "other-rest=8081",
            "--port",
            f"{MCP}=0",
            "--port",
            "other-mcp=0",
        ],
        ENV,
    )
    assert moved.returncode == 0, moved.stderr


def test_load_errors_are_diagnostic_lines(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    write(broken, "naftiko: 1.0.0-alpha2\ncapability:\n  exposes: [\n")
    result = run_to_exit([str(broken)])
    assert result.returncode == 2
    assert result.stderr.startswith(f"{broken}:")
    assert ": error: " in result.stderr and "Traceback" not in result.stderr


def test_overrides_precedence_flags_over_environment_over_document(
    tiktok_capability_path: Path,
) -> None:
    def rest_url(*flags: str, env: dict[str, str] | None = None) -> str:
        result = run_to_exit(
            [str(tiktok_capability_path), "--check", *flags], {**ENV, **(env or {})}
        )
        assert result.returncode == 0, result.stderr
        (line,) = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("rest ")]
        return line.split()[2].rstrip(":")

    assert rest_url("--host", "127.0.0.1") == "http://127.0.0.1:8080"
    env = {"NAFTIKO_PORTS": f"{REST}=7001", "NAFTIKO_HOST": "127.0.0.2"}
    assert rest_url(env=env) == "http://127.0.0.2:7001"
    assert rest_url("--port", f"{REST}=7002", "--host", "127.0.0.3", env=env) == (
        "http://127.0.0.3:7002"
    )


def test_a_second_stdio_adapter_is_refused(tiktok_capability_path: Path, tmp_path: Path) -> None:
    text = tiktok_capability_path.read_text(encoding="utf-8").replace(
        "transport: http", "transport: stdio"
    )
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write(first, text)
    write(
        second,
        text.replace(f"namespace: {REST}", "namespace: b-rest").replace(
            f"namespace: {MCP}", "namespace: b-mcp"
        ),
    )
    result = run_to_exit([str(first), str(second), "--check", "--port", "b-rest=0"], ENV)
    assert result.returncode == 2
    assert "only one stdio MCP adapter" in result.stderr
    assert str(first) in result.stderr and str(second) in result.stderr


def test_a_directory_serves_every_capability_in_it(
    tiktok_capability_path: Path, tmp_path: Path
) -> None:
    write(tmp_path / "tiktok.yaml", tiktok_capability_path.read_text(encoding="utf-8"))
    write(tmp_path / "notes.yaml", "just: some other yaml\n")
    result = run_to_exit([str(tmp_path), "--check"], ENV)
    assert result.returncode == 0, result.stderr
    assert "capability 'TikTok Login Kit API" in result.stdout
    assert f"skipped (not a capability): {tmp_path / 'notes.yaml'}" in result.stdout


def test_stdio_mcp_owns_stdout_and_logs_go_to_stderr(
    tiktok_capability_path: Path, tmp_path: Path
) -> None:
    capability = tmp_path / "stdio.yaml"
    write(
        capability,
        tiktok_capability_path.read_text(encoding="utf-8").replace(
            "transport: http", "transport: stdio"
        ),
    )
    argv = [
        sys.executable,
        "-m",
        "naftiko",
        "run",
        str(capability),
        "--host",
        "127.0.0.1",
        "--port",
        f"{REST}=0",
    ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(ENV),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stderr: list[str] = []
        for line in proc.stderr:  # the REST adapter also listens before we talk
            stderr.append(line)
            if "naftiko ready:" in line:
                break
        assert f"mcp {MCP} stdio" in stderr[-1] and f"rest {REST} http://" in stderr[-1]
        messages = [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        ]
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        first, second = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
        assert first["id"] == 1 and second["id"] == 2
        assert len(second["result"]["tools"]) == 3
        proc.stdin.close()  # the client leaves: the process ends cleanly
        assert proc.wait(30) == 0
        assert proc.stdout.read() == ""  # nothing but JSON-RPC ever reached stdout
        assert "stdio MCP session ended" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
