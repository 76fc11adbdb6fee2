"""``naftiko run`` as a real subprocess with the published TikTok capability.

Ports are ephemeral (``--port NS=0``); the fake TikTok upstream replaces the real host
through ``--base-uri``. Covers serving REST and MCP, the control port, graceful SIGTERM
with a call in flight, and that logs never carry a secret.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
from mcp import Client
from naftiko_process import NaftikoProcess

from fakes.tiktok import DEFAULT_CLIENT_KEY, DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URI, FakeTikTok
from support.servers import LiveFake

NS = "tiktok-login-kit-oauth"
REST, MCP = f"{NS}-rest", f"{NS}-mcp"
BIND_SECRET = "bind-secret-Q9x7!value"


def args(capability: Path, upstream: str, *extra: str) -> list[str]:
    return [
        str(capability),
        "--host",
        "127.0.0.1",
        "--base-uri",
        f"{NS}={upstream}",
        "--port",
        f"{REST}=0",
        "--port",
        f"{MCP}=0",
        "--control-port",
        "0",
        *extra,
    ]


def exchange_form(fake: FakeTikTok) -> dict[str, str]:
    return {
        "client_key": DEFAULT_CLIENT_KEY,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": fake.issue_code(),
        "grant_type": "authorization_code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
    }


async def test_serves_rest_and_mcp_and_stops_gracefully_on_sigterm(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    fake = fake_tiktok.state
    fake.accept_json = True  # the published capability sends the MCP body as JSON
    env = {"TIKTOK_FOR_DEVELOPERS_API_KEY": BIND_SECRET}
    with NaftikoProcess(args(tiktok_capability_path, fake_tiktok.url), env) as run:
        urls = run.wait_ready()
        assert set(urls) == {REST, MCP, "control"}
        async with httpx.AsyncClient(timeout=30) as http:
            # REST: a JSON body is forwarded as JSON (the published document declares JSON
            # bodies, so a form would be a 415), TikTok answers with tokens.
            token = await http.post(f"{urls[REST]}/v1/v2/oauth/token", json=exchange_form(fake))
            assert token.status_code == 200, token.text
            assert token.json()["access_token"].startswith("act.")

            # MCP over streamable HTTP.
            async with Client(urls[MCP]) as mcp:
                tools = {t.name for t in (await mcp.list_tools()).tools}
                assert tools == {
                    "revoke-access-token",
                    "exchange-authorization-code-token",
                    "refresh-access-token",
                }
                result = await mcp.call_tool(
                    "exchange-authorization-code-token", {"body": exchange_form(fake)}
                )
                assert not result.is_error, result
                assert result.structured_content["access_token"].startswith("act.")

            # Control port: probes, counters after the calls, a status without secrets.
            control = urls["control"]
            assert (await http.get(f"{control}/health/live")).json() == {"status": "UP"}
            ready = await http.get(f"{control}/health/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "UP"
            metrics = (await http.get(f"{control}/metrics")).text
            assert (
                f'naftiko_requests_total{{adapter="{REST}",adapter_type="rest",'
                f'status="200",unit="exchangetoken"}} 1.0'
            ) in metrics
            assert f'adapter="{MCP}",adapter_type="mcp"' in metrics
            assert f'naftiko_upstream_requests_total{{method="POST",namespace="{NS}"' in metrics
            status = await http.get(f"{control}/status")
            assert status.json()["capabilities"][0]["specVersion"] == "1.0.0-alpha2"
            assert {a["state"] for a in status.json()["adapters"]} == {"started"}
            assert BIND_SECRET not in status.text and "TIKTOK_FOR" not in status.text

            # SIGTERM while an upstream call is in flight: the call completes, exit 0.
            fake.delay_s = 1.5
            seen = len(fake.requests)
            slow = asyncio.create_task(
                http.post(f"{urls[REST]}/v1/v2/oauth/token", json=exchange_form(fake))
            )
            while len(fake.requests) == seen:  # the upstream has the request
                assert not slow.done(), slow.result()
                await asyncio.sleep(0.01)
            run.signal(signal.SIGTERM)
            started = time.monotonic()
            response = await slow
            assert response.status_code == 200, response.text
            code = await asyncio.to_thread(run.wait)
            shutdown_s = time.monotonic() - started
        assert code == 0, run.output
        assert "SIGTERM received" in run.output
        assert "Traceback" not in run.output
        print(f"shutdown with a call in flight took {shutdown_s:.2f}s")  # for the report


async def test_logs_never_contain_secrets(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    fake = fake_tiktok.state
    fake.accept_json = True
    env = {"TIKTOK_FOR_DEVELOPERS_API_KEY": BIND_SECRET}
    client_secret = "caller-client-secret-5c1d"
    with NaftikoProcess(
        args(
            tiktok_capability_path, fake_tiktok.url, "--log-format", "json", "--log-level", "debug"
        ),
        env,
    ) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=30) as http:
            # Unknown client: TikTok answers 401 invalid_client.
            form = {
                "client_key": "nobody",
                "client_secret": client_secret,
                "code": BIND_SECRET,
                "grant_type": "authorization_code",
                "redirect_uri": DEFAULT_REDIRECT_URI,
            }
            refused = await http.post(f"{urls[REST]}/v1/v2/oauth/token", json=form)
            assert refused.status_code == 401
            # A body the REST adapter cannot parse, with secrets in it.
            await http.post(
                f"{urls[REST]}/v1/v2/oauth/token",
                content=f'{{"client_secret": "{client_secret}", "x": '.encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {BIND_SECRET}",
                },
            )
            async with Client(urls[MCP]) as mcp:
                await mcp.call_tool(
                    "revoke-access-token",
                    {"body": {"client_secret": client_secret, "token": BIND_SECRET}},
                )
        run.signal(signal.SIGTERM)
        assert run.wait() == 0
    assert fake.requests, "the upstream was called"
    requests = [e for e in run.events() if e.get("event") == "request"]
    assert len(requests) >= 3
    assert {e["status"] for e in requests} >= {401}
    assert all(e["request_id"] for e in requests if e["adapter_type"] == "rest")
    for secret in (BIND_SECRET, client_secret, DEFAULT_CLIENT_SECRET):
        assert secret not in run.output


@pytest.mark.parametrize("second_signal", [False, True])
async def test_shutdown_is_bounded_by_the_grace_period_or_a_second_signal(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path, second_signal: bool
) -> None:
    """An upstream that never answers cannot hold the process: after the grace period
    the call is cut (exit 0), and a second signal exits at once (exit 1)."""
    fake = fake_tiktok.state
    fake.accept_json = True
    fake.delay_s = 60  # ends early when naftiko hangs up
    grace = "60" if second_signal else "0.2"
    env = {"TIKTOK_FOR_DEVELOPERS_API_KEY": BIND_SECRET}
    argv = args(tiktok_capability_path, fake_tiktok.url, "--grace-period", grace)
    with NaftikoProcess(argv, env) as run:
        urls = run.wait_ready()
        async with httpx.AsyncClient(timeout=60) as http:
            stuck = asyncio.create_task(
                http.post(f"{urls[REST]}/v1/v2/oauth/token", json=exchange_form(fake))
            )
            while not fake.requests:
                await asyncio.sleep(0.01)
            run.signal(signal.SIGTERM)
            if second_signal:
                await asyncio.to_thread(run.wait_for, lambda line: "SIGTERM received" in line)
                run.signal(signal.SIGTERM)
            code = await asyncio.to_thread(run.wait)
            outcome = await asyncio.gather(stuck, return_exceptions=True)
    if second_signal:
        assert code == 1 and "second SIGTERM: exiting now" in run.output
        assert isinstance(outcome[0], httpx.TransportError)
    else:
        assert code == 0, run.output
        assert isinstance(outcome[0], httpx.TransportError) or outcome[0].status_code >= 500
        assert "graceful shutdown exceeded" in run.output
    assert "Traceback" not in run.output
