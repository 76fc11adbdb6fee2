"""JSON in and out of the request path: orjson where its answer is the standard library's,
the standard library where it would not be.

Why: parsing the upstream body and encoding the reply are a large part of the CPU of a
REST call, and orjson does each several times faster than the standard library (bench/
measures both). Its answers differ from the
standard library's in a few places, and each one is routed to the standard library so
that nothing changes but the speed (``tests/engine/test_json_codec.py`` checks this on
generated documents and on junk):

* integers wider than 64 bits: orjson parses them as floats (silently losing digits).
  A body with a run of 20 digits, or ``-`` and 19, is parsed by the standard library
  (text, not ``bytes``, always is: no caller passes it);
* nesting: orjson parses 1,024 levels, deeper than the stages after it can recurse (the
  standard library stops at Python's recursion limit, wherever the stack stands). Only
  documents with at most 256 ``{``/``[`` bytes, hence at most 256 levels, go to orjson:
  an API response rarely has more containers, and beyond that nothing changes;
* ``NaN``, ``Infinity``, lone surrogates, byte-order marks, UTF-16/32, nesting deeper
  than 1024: orjson refuses them, the standard library decides (and words the error);
* non-finite floats on the way out: orjson writes ``null`` for them, where a reply must
  refuse them (``ValueError``, as ``allow_nan=False``). Output holding ``null`` is
  therefore encoded again by the standard library, which also refuses what it did;
* integers wider than 64 bits, non-string keys, ``datetime`` and dataclass values on the
  way out: orjson refuses them (datetimes and dataclasses by option), the standard
  library encodes what it did and raises what it raised.

Floats may be written in another spelling (``1e-7`` for ``1e-07``): the same number.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

# Digits become "0" and the bytes a JSON number can follow (``:``, ``,``, ``[``,
# whitespace) become "|", so that a number literal too wide for 64 bits is found by
# ``in`` in C (a regex over the body would cost more than parsing it). A digit run inside a string
# follows a quote or a letter (TikTok's ``log_id`` is 29 digits) and is left alone; one
# after ``-`` anywhere counts, as does a document that is one wide number.
_NUMBER_SHAPE = bytes.maketrans(b"123456789:,[ \t\n\r", b"000000000|||||||")
_WIDE = b"0" * 20
_WIDE_AFTER_SEPARATOR = b"|" + _WIDE
_WIDE_NEGATIVE = b"-" + b"0" * 19
_MAX_CONTAINERS = 256
_STDLIB_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _orjson_reads_as_stdlib(raw: bytes) -> bool:
    """At most 256 containers, and no integer literal wider than 64 bits."""
    if raw.count(b"{") + raw.count(b"[") > _MAX_CONTAINERS:
        return False
    shape = raw.translate(_NUMBER_SHAPE)
    return (
        _WIDE_AFTER_SEPARATOR not in shape
        and _WIDE_NEGATIVE not in shape
        and not shape.startswith(_WIDE)
    )


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``: the same value, the same errors."""
    if type(raw) is bytes and _orjson_reads_as_stdlib(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library accepts more, or words the error
    return json.loads(raw)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False).encode()``: raises ``ValueError`` for NaN and
    infinities, ``TypeError`` for what JSON cannot hold."""
    try:
        data = orjson.dumps(value, option=_STDLIB_ONLY)
    except (TypeError, orjson.JSONEncodeError):
        return _encode(value).encode()
    if b"null" in data:  # maybe a NaN or an infinity orjson wrote as null
        return _encode(value).encode()
    return data
