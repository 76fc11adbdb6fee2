"""Tests of the one size-limited body reader (``http_common.receive_body``) and its two
users: REST refuses an unfinished body, the MCP fast path replays it to the SDK."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from naftiko.adapters.http.common import (
    BodyTooLarge,
    UnfinishedBody,
    read_asgi_body,
    receive_body,
)
from naftiko.adapters.mcp.fast_path import _replay_of


def _receive(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def _part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_whole_body_in_chunks() -> None:
    read = await receive_body(_receive(_part(b"ab", True), _part(b"", True), _part(b"c", False)), 3)
    assert read == b"abc"


async def test_over_the_limit_keeps_what_was_read() -> None:
    read = await receive_body(_receive(_part(b"ab", True), _part(b"cd", True)), 3)
    assert read == UnfinishedBody(b"abcd", True, True, None)
    with pytest.raises(BodyTooLarge):
        await read_asgi_body(_receive(_part(b"ab", True), _part(b"cd", True)), None, 3)


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    read = await receive_body(_receive(), 3, "4")  # an empty queue: any read would fail
    assert read == UnfinishedBody(b"", False, False, None)
    with pytest.raises(BodyTooLarge):
        await read_asgi_body(_receive(), "4", 3)


async def test_a_disconnect_interrupts() -> None:
    gone = {"type": "http.disconnect"}
    read = await receive_body(_receive(_part(b"ab", True), gone), 10)
    assert read == UnfinishedBody(b"ab", True, True, gone)
    with pytest.raises(ClientDisconnect):
        await read_asgi_body(_receive(_part(b"ab", True), gone), None, 10)


async def test_the_mcp_fast_path_replays_what_it_could_not_finish() -> None:
    async def replay(*messages: dict[str, Any]) -> Any:
        read = await receive_body(_receive(*messages), 3)
        return read if isinstance(read, bytes) else _replay_of(read)

    gone = {"type": "http.disconnect"}
    assert await replay(_part(b"abc", False)) == b"abc"
    assert await replay(_part(b"ab", True), _part(b"cd", False)) == [_part(b"abcd", False)]
    assert await replay(_part(b"a", True), gone) == [_part(b"a", True), gone]
    assert await replay(gone) == [gone]
