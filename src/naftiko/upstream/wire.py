"""Upstream requests written as bytes by us, and response headers read without httpx.

Why: building an ``httpx.Request`` (URL parsing, IP address validation, header
normalisation) and an ``httpx.Headers`` for each call cost more of the engine's CPU than
the rest of request building together. For the requests the engine builds itself
(absolute URL, already percent-encoded, no multipart), the wire form is simple enough to
write directly, and it must be *the same bytes* httpx would write: tests/engine/test_wire.py
compares the two for every request shape. Anything unusual (characters httpx would
escape, dot segments, URL credentials, a ``Host`` or framing header set by the document,
multipart, auth that is more than one header or one query parameter) returns ``None``:
``upstream.client.send`` then takes its general path, through httpx's client.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from naftiko.upstream.plans import PathTemplate
from naftiko.upstream.request import UpstreamRequest, join_url
from naftiko.upstream.transport import DEFAULT_PORTS, Origin, WireRequest, checked_head

__all__ = ["ResponseHeaders", "fixed_origin_of", "wire_of"]

_PRINTABLE = {chr(i) for i in range(0x21, 0x7F)}
# The characters httpx leaves as they are (its PATH_SAFE / QUERY_SAFE, space excluded).


def _charset(excluded: str) -> re.Pattern[str]:
    return re.compile("[" + re.escape("".join(sorted(_PRINTABLE - set(excluded)))) + "]*")


_PATH_CHARS = _charset('"#<>?`{}')
_QUERY_CHARS = _charset('"#<>')
_MAX_URL = 65536  # httpx refuses longer URLs
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # httpx sends Content-Length: 0
_FRAMING = frozenset({"host", "content-length", "transfer-encoding"})

# scheme://authority -> (origin, Host header value), or None when httpx must handle it.
_authorities: dict[str, tuple[Origin, bytes] | None] = {}
_MAX_AUTHORITIES = 1024  # base URIs come from documents: a handful per process


def wire_of(
    request: UpstreamRequest, auth: Any, timeout: httpx.Timeout, deadline: float | None = None
) -> WireRequest | None:
    """``request`` as httpx would write it (``auth`` applied), or None to use httpx.

    ``auth`` is written when it is one header (``header()``) or one query parameter
    (``query_param()``, merged into the URL by httpx's own ``copy_merge_params``, as the
    auth's flow does); any other auth returns None.
    """
    if request.files:
        return None
    url = request.url
    fixed = request.fixed_origin
    pair = None
    if auth is not None:
        header = getattr(auth, "header", None)
        pair = header() if header is not None else None
        if pair is None:
            in_query = getattr(auth, "query_param", None)
            param = in_query() if in_query is not None else None
            if param is None:
                return None
            try:
                url = str(httpx.URL(url).copy_merge_params({param[0]: param[1]}))
            except (httpx.InvalidURL, ValueError):
                return None  # httpx refuses it in its own words
            fixed = None
    if fixed is not None and len(url) <= _MAX_URL:
        origin, host, start = fixed
        target = url[start:].encode("ascii")
        if target[:1] != b"/":  # the origin's own URL, or a query right after it
            target = b"/" + target
    else:
        located = _locate(url)
        if located is None:
            return None
        origin, host, target = located
    headers: list[tuple[str, str]] = list(request.headers.items())
    if pair is not None:
        _set_header(headers, *pair)
    body = request.content or b""
    method = request.method
    lines = [b"%b %b HTTP/1.1\r\nHost: %b\r\n" % (method.encode("ascii"), target, host)]
    if not body and method in _BODY_METHODS:
        lines.append(b"Content-Length: 0\r\n")
    try:
        for name, value in headers:
            if name.lower() in _FRAMING:
                return None
            lines.append(b"%b: %b\r\n" % (name.encode("ascii"), value.encode("ascii")))
    except UnicodeEncodeError:
        return None  # httpx refuses it in its own words
    if body:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    head = checked_head(b"".join(lines), len(lines) - 1)  # Host shares the first item
    return WireRequest(origin, head, body, method == "HEAD", timeout.as_dict(), deadline)


def _locate(url: str) -> tuple[Origin, bytes, bytes] | None:
    """Origin, Host header and request target of an absolute URL; None if unusual."""
    if len(url) > _MAX_URL:
        return None
    start = url.find("://")
    if start < 0:
        return None
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start + 3)
        if 0 <= found < end:
            end = found
    authority = url[:end]
    known = _authorities.get(authority, False)
    if known is False:
        known = _parse_authority(authority)
        if len(_authorities) >= _MAX_AUTHORITIES:
            _authorities.clear()
        _authorities[authority] = known
    if known is None:
        return None
    rest = url[end:]
    path, mark, query = rest.partition("?")
    if not _PATH_CHARS.fullmatch(path) or not _QUERY_CHARS.fullmatch(query):
        return None  # needs escaping, or holds a fragment: httpx's rules apply
    if "." in path and {".", ".."} & set(path.split("/")):
        return None  # httpx removes dot segments
    target = (path or "/") + mark + query
    return known[0], known[1], target.encode("ascii")


def fixed_origin_of(base: str, path: PathTemplate) -> tuple[Origin, bytes, int] | None:
    """Origin, Host header and where the request target starts, shared by every URL
    that ``naftiko.upstream.request`` builds from ``base`` and ``path``, when no such URL
    needs httpx's rules; else None (then each URL is examined on its own). Decided once
    per operation, at compile time (``OperationPlan.fixed_origin``).

    Those URLs differ only in their variables, each written as one percent-encoded
    segment (unreserved characters and ``%XX``, never ``.`` or ``..`` alone), and in a
    form-encoded query: the characters ``_locate`` examines all come from ``base`` and
    the template's literal text, so examining one URL with ``x`` for every variable
    answers for all of them. A ``?`` or ``#`` in that text would move the query.
    """
    sample = join_url(base, "".join(p if type(p) is str else "x" for p in path.parts))
    start = sample.find("://")
    if start < 0 or "?" in sample or "#" in sample:
        return None
    located = _locate(sample)
    if located is None:
        return None
    end = sample.find("/", start + 3)
    return located[0], located[1], len(sample) if end < 0 else end


def _parse_authority(authority: str) -> tuple[Origin, bytes] | None:
    try:
        parsed = httpx.URL(authority + "/")
    except (httpx.InvalidURL, ValueError):
        return None
    port = DEFAULT_PORTS.get(parsed.raw_scheme)
    if port is None or parsed.userinfo or not parsed.raw_host:
        return None  # unsupported scheme, or credentials httpx turns into Basic auth
    origin = (parsed.raw_scheme, parsed.raw_host.decode("ascii"), parsed.port or port)
    return origin, parsed.netloc


def _set_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Replace ``name`` (any case) in place, dropping repeats, or append it: as httpx does."""
    lower = name.lower()
    found = [i for i, (key, _) in enumerate(headers) if key.lower() == lower]
    for index in reversed(found[1:]):
        del headers[index]
    if found:
        headers[found[0]] = (name, value)
    else:
        headers.append((name, value))


class ResponseHeaders(dict[str, str]):
    """Upstream response headers: lower-case names, repeats joined with ``", "``.

    The same view ``httpx.Headers`` gives (``items()`` included), at the price of one
    dict; lookups ignore case.
    """

    @classmethod
    def of(cls, raw: list[tuple[bytes, bytes]], encoding: str = "ascii") -> ResponseHeaders:
        """Read as ASCII, the usual case; at the first other byte, start again in the
        encoding httpx would choose for the whole list (:func:`_encoding`)."""
        joined: dict[str, str] = {}  # a plain dict while filling: its own methods are fast
        for name, value in raw:
            if encoding == "ascii" and not (name.isascii() and value.isascii()):
                return cls.of(raw, _encoding(raw))
            key = name.decode(encoding).lower()
            text = value.decode(encoding)
            joined[key] = f"{joined[key]}, {text}" if key in joined else text
        return cls(joined)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)


def _encoding(raw: list[tuple[bytes, bytes]]) -> str:
    """httpx's choice: ASCII, else UTF-8 when every header decodes as UTF-8, else Latin-1."""
    if all(name.isascii() and value.isascii() for name, value in raw):
        return "ascii"
    try:
        for name, value in raw:
            name.decode("utf-8")
            value.decode("utf-8")
    except UnicodeDecodeError:
        return "iso-8859-1"
    return "utf-8"
