"""The MCP adapter imports the SDK's server modules without its package ``__init__``s,
and the SDK stays whole for everyone else in the process.

Each case runs in a fresh interpreter: the test process has imported ``mcp`` long ago.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_adapter_does_not_import_the_client_or_mcpserver() -> None:
    out = _run(
        """
        import sys
        import naftiko.adapters.mcp.server
        skipped = ["mcp.client", "mcp.server.mcpserver", "httpx2"]
        print([name for name in skipped if name in sys.modules])
        """
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "statement",
    [
        "from mcp import ClientSession, types",
        "from mcp.server import MCPServer, Server",
        "import mcp.server; mcp.server.MCPServer",
        "import mcp; mcp.Client",
        "from mcp import *; Client",
    ],
)
def test_the_sdk_package_is_whole_after_the_adapter(statement: str) -> None:
    out = _run(
        f"""
        import naftiko.adapters.mcp.server as adapter
        {statement}
        import mcp, mcp.server, mcp.types
        assert mcp.server.Server is adapter.Server
        assert mcp.types.Tool is adapter.types.Tool
        assert len(mcp.__all__) > 10 and "__getattr__" not in vars(mcp)
        try:
            mcp.no_such_name
        except AttributeError:
            print("ok")
        """
    )
    assert out.strip() == "ok"


def test_an_sdk_imported_first_is_left_alone() -> None:
    out = _run(
        """
        import mcp
        init = mcp.__dict__.get("__getattr__")
        import naftiko.adapters.mcp.server
        import sys
        print(init is None and "mcp.client" in sys.modules)
        """
    )
    assert out.strip() == "True"
