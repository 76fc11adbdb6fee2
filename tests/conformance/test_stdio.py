"""``naftiko-run FILE --stdio [NAMESPACE]``: one MCP adapter on stdin/stdout, nothing else.

An MCP client launches the process itself; a REST port of the same document that is
already taken must not fail that launch (issue 20 item 6). Other adapters are served
only when asked for with ``--port``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from naftiko_process import clean_env

CONTRACT = Path(__file__).parent / "capabilities" / "contract.yaml"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MESSAGES = [
    INITIALIZE,
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def on_taken_port(tmp_path: Path, taken: int) -> Path:
    """The contract document with its REST adapter on ``taken``."""
    text = CONTRACT.read_text(encoding="utf-8")
    document = tmp_path / "contract.yaml"
    document.write_text(
        text.replace(
            "namespace: contract-rest\n      port: 0",
            f"namespace: contract-rest\n      port: {taken}",
        ),
        encoding="utf-8",
    )
    return document


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naftiko", "run", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,  # a guard against a hung process, not a speed expectation
    )


def session(*args: str) -> tuple[list[dict[str, Any]], str]:
    """Talk to ``naftiko run ARGS`` as an MCP client on stdio: two answers, then leave."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "naftiko", "run", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        for message in MESSAGES:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        answers = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.stdin.close()  # the client leaves: the process ends cleanly
        assert proc.wait(60) == 0
        assert proc.stdout.read() == ""  # nothing but JSON-RPC on stdout
        return answers, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)


def test_stdio_serves_the_mcp_adapter_alone_even_when_a_rest_port_is_taken(
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        document = on_taken_port(tmp_path, holder.getsockname()[1])
        for flags in (["--stdio"], ["--stdio", "contract-mcp"]):
            (first, second), stderr = session(str(document), "--host", "127.0.0.1", *flags)
            assert first["id"] == 1 and first["result"]["serverInfo"]["name"] == "contract-mcp"
            assert [t["name"] for t in second["result"]["tools"]] == ["lookup"]
            assert "contract-rest" in stderr and "--port contract-rest=" in stderr


def test_stdio_check_names_what_is_served(tmp_path: Path) -> None:
    done = run(str(CONTRACT), "--host", "127.0.0.1", "--check", "--stdio")
    assert done.returncode == 0, done.stderr
    assert "  mcp contract-mcp stdio: 1 served" in done.stdout
    assert "  rest contract-rest" not in done.stdout
    asked = run(
        str(CONTRACT), "--host", "127.0.0.1", "--check", "--stdio", "--port", "contract-rest=0"
    )
    assert asked.returncode == 0, asked.stderr
    assert "  rest contract-rest http://127.0.0.1:0: 4 served" in asked.stdout


def test_stdio_names_a_known_mcp_adapter() -> None:
    typo = run(str(CONTRACT), "--check", "--stdio", "contract-mpc")
    assert typo.returncode == 2
    assert "did you mean 'contract-mcp'?" in typo.stderr and "Traceback" not in typo.stderr
    rest = run(str(CONTRACT), "--check", "--stdio", "contract-rest")
    assert rest.returncode == 2 and "not an MCP adapter" in rest.stderr
