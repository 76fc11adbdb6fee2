"""Content decoding of upstream bodies (gzip, deflate, stacked), bounded by the size limit.

Why not httpx's decoders: they inflate each chunk whole before anyone can count, so 1,793
bytes of ``Content-Encoding: gzip, gzip`` became 2 GB of memory and seconds of a blocked
event loop. Here every coding inflates at most ``limit + 1`` bytes per call and stops
there, so decoding a bomb costs about ``limit`` bytes of memory and work per coding:

* the final output counts against the response size limit
  (:class:`~naftiko.errors.ResponseTooLarge`);
* so does each intermediate coding's output: a first coding can inflate into a second
  stream that decodes to almost nothing (empty deflate blocks), all CPU and no output;
* at most :data:`MAX_CODINGS` codings are accepted (:class:`TooManyCodings`): real
  servers apply one; two leaves room for a proxy compressing again; more is an attack.

Codings are undone in the reverse order of their listing (RFC 9110 §8.4). As with httpx,
``identity`` is a no-op and a coding we do not know leaves the body as it is (it still
counts towards :data:`MAX_CODINGS`); malformed data is an ``httpx.DecodingError``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

from naftiko.errors import ResponseTooLarge, UpstreamError

__all__ = [
    "CODINGS_EXTENSION",
    "MAX_CODINGS",
    "BodyDecoder",
    "BodyTooLarge",
    "LimitedStream",
    "TooManyCodings",
    "read_limited",
]

MAX_CODINGS = 2


# Where ``upstream.client`` keeps a response's Content-Encoding once it has taken the header
# away from httpx (whose decoders would otherwise inflate every body it reads itself).
CODINGS_EXTENSION = "naftiko.content_encoding"


# One class for every "upstream body too large" (the transport raises it too); the name
# this module gave it stays importable.
BodyTooLarge = ResponseTooLarge


class TooManyCodings(httpx.DecodingError, UpstreamError):
    """More content codings than :data:`MAX_CODINGS` (a message in our own words)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} content encodings (at most {MAX_CODINGS} are decoded)")


class _Inflater:
    """One gzip or deflate coding, never producing more than it is allowed to."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding == "gzip"
        # deflate is zlib-wrapped by the RFC, raw in practice from some servers: httpx
        # tries the first and falls back to the second on the first failure; so do we.
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._first = True
        self.produced = 0

    def feed(self, data: bytes, limit: int) -> bytes:
        room = limit - self.produced
        try:
            # max_length: zlib stops there; reaching room + 1 means over the limit.
            out = self._zlib.decompress(data, room + 1)
        except zlib.error:
            if not self._first or self._gzip:
                raise httpx.DecodingError("the response content encoding is invalid") from None
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            return self.feed(data, limit)
        self._first = False
        return self._count(out, limit)

    def flush(self, limit: int) -> bytes:
        try:
            # Everything was consumed by feed (else it raised): what is left is small.
            out = self._zlib.flush()
        except zlib.error:
            raise httpx.DecodingError("the response content encoding is invalid") from None
        return self._count(out, limit)

    def _count(self, out: bytes, limit: int) -> bytes:
        self.produced += len(out)
        if self.produced > limit:
            raise ResponseTooLarge(limit, decoded=True)
        return out


class BodyDecoder:
    """Undoes a response's content codings chunk by chunk, within ``limit`` bytes."""

    def __init__(self, codings: list[str], limit: int) -> None:
        if len(codings) > MAX_CODINGS:
            raise TooManyCodings(len(codings))
        self._limit = limit
        # Outermost first: the last coding listed was applied last.
        self._stages = [_Inflater(c) for c in reversed(codings) if c in ("gzip", "deflate")]

    @classmethod
    def of(cls, value: str | None, limit: int) -> BodyDecoder | None:
        """The decoder a ``Content-Encoding`` value calls for; None when nothing to undo."""
        if not value:
            return None
        codings = [c.strip().lower() for c in value.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        return cls(codings, limit) if codings else None

    @property
    def produced(self) -> tuple[int, ...]:
        """Bytes each coding has produced so far, outermost first."""
        return tuple(stage.produced for stage in self._stages)

    def feed(self, data: bytes) -> bytes:
        for stage in self._stages:
            if not data:
                break
            data = stage.feed(data, self._limit)
        return data

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            if data:
                data = stage.feed(data, self._limit)
            data += stage.flush(self._limit)
        return data

    def decode(self, content: bytes) -> bytes:
        """All of ``content`` decoded (a body already read whole)."""
        return self.feed(content) + self.flush()


async def read_limited(response: httpx.Response, limit: int, codings: str | None) -> bytes:
    """``response``'s body undone of ``codings``, within ``limit`` bytes as received and
    as decoded (:class:`~naftiko.errors.ResponseTooLarge`). httpx's decoders are never
    used: ``codings`` is the Content-Encoding the caller took away from them."""
    if response.is_stream_consumed:  # read (and decoded) by a test double's transport
        if len(response.content) > limit:
            raise ResponseTooLarge(limit, status=response.status_code)
        return response.content
    decoder = BodyDecoder.of(codings, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(limit, status=response.status_code)
        chunks.append(chunk if decoder is None else decoder.feed(chunk))
    if decoder is not None:
        chunks.append(decoder.flush())
    return b"".join(chunks)


class LimitedStream(httpx.AsyncByteStream):
    """A response stream cut at ``limit`` bytes: for the bodies httpx reads by itself
    (redirects it follows, the 401 an auth flow answers), which nobody else bounds."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int, status: int) -> None:
        self._stream = stream
        self._limit = limit
        self._status = status

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise ResponseTooLarge(self._limit, status=self._status)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
