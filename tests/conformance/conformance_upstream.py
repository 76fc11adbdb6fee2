"""The upstream behind ``capabilities/conformance.yaml``: the fixture answers of the
official MCP conformance suite's server scenarios, one path each (not a test module)."""

from __future__ import annotations

from typing import Any

# A 1x1 red PNG and the smallest WAV: the suite checks type, data and MIME type only.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)
WAV = bytes.fromhex(
    "52494646240000005741564566d7420100000001000100401f0000401f00000100080064617461"
)
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/text": (200, "text/plain; charset=utf-8", b"This is a simple text response for testing."),
    "/image": (200, "image/png", PNG),
    "/audio": (200, "audio/wav", WAV),
    "/embedded": (200, "application/pdf", b"%PDF-1.4 embedded resource for testing"),
    "/error": (500, "text/plain; charset=utf-8", b"This tool intentionally returns an error."),
    "/static-text": (
        200,
        "text/plain; charset=utf-8",
        b"This is the content of the static text resource.",
    ),
    "/static-binary": (200, "image/png", PNG),
}


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answers the fixture of each path; ``/template/{id}/data`` names the id it got."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/template/"):
        ident = path.split("/")[2]
        answer = (200, "text/plain; charset=utf-8", f"Resource data for ID: {ident}".encode())
    else:
        answer = ANSWERS.get(path, (404, "text/plain", b"no such fixture"))
    status, media, body = answer
    headers = [(b"content-type", media.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
