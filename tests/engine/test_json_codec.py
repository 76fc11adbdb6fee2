"""``json_codec``: the standard library's answers, at orjson's speed where they agree.

Every case where orjson would answer differently (wide integers, NaN, surrogates, BOMs,
non-string keys, datetimes) must come out as the standard library's answer: the same
value, or the same kind of error.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naftiko import json_codec

_stdlib_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except Exception as exc:  # the kind of error is part of the answer
        return "error", ValueError if isinstance(exc, ValueError) else type(exc)


def _same(a: Any, b: Any) -> bool:
    """Equal to the type and the float bits (``1`` is not ``1.0``; NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return repr(a) == repr(b)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=3000, deadline=None)
@given(values)
def test_loads_of_documents_is_the_standard_librarys(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    expected, got = _outcome(json.loads, raw), _outcome(json_codec.loads, raw)
    assert expected[0] == got[0]
    assert _same(expected[1], got[1])
    assert _same(json.loads(raw.decode("utf-8", "surrogatepass")), expected[1])


junk = st.binary(max_size=40) | st.text(
    alphabet=' \t\n\r{}[]",:0123456789.eE+-tfnulraxNI\\\x00\x01é\ud800', max_size=30
).map(lambda text: text.encode("utf-8", "surrogatepass"))


@settings(max_examples=3000, deadline=None)
@given(junk)
def test_loads_of_junk_is_the_standard_librarys(raw: bytes) -> None:
    expected, got = _outcome(json.loads, raw), _outcome(json_codec.loads, raw)
    assert expected[0] == got[0], raw
    if expected[0] == "ok":
        assert _same(expected[1], got[1]), raw


@pytest.mark.parametrize(
    "raw",
    [
        b"18446744073709551616",  # 2**64: orjson would give a float
        b"-9223372036854775809",
        b'{"id": 123456789012345678901234567890}',
        b"[NaN, Infinity, -Infinity]",
        b"1e400",
        b'"\\ud800"',
        b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
        '{"a": 1}'.encode("utf-16"),
        b"[" * 2000 + b"]" * 2000,  # deeper than orjson goes: the standard library's error
        b'{"a":1,"a":2}',
    ],
)
def test_where_orjson_differs_the_standard_library_answers(raw: bytes) -> None:
    expected, got = _outcome(json.loads, raw), _outcome(json_codec.loads, raw)
    assert expected[0] == got[0]
    assert _same(expected[1], got[1])


def test_wide_integers_keep_every_digit() -> None:
    assert json_codec.loads(b'{"id": 18446744073709551616123}') == {"id": 18446744073709551616123}
    assert json_codec.dumps({"id": 2**70}) == b'{"id":1180591620717411303424}'


@settings(max_examples=3000, deadline=None)
@given(values)
def test_dumps_writes_what_the_standard_library_wrote_or_refuses_alike(value: Any) -> None:
    expected = _outcome(lambda v: _stdlib_encode(v).encode(), value)
    got = _outcome(json_codec.dumps, value)
    assert expected[0] == got[0]
    if expected[0] == "ok":
        assert _same(json.loads(expected[1]), json.loads(got[1]))
    else:
        assert expected[1] == got[1]


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"x": [1, float("inf")]},
        {"when": datetime.datetime(2026, 1, 1)},
        {1: "a", None: "b"},  # non-string keys: the standard library's "1" and "null"
        {"s": "\ud800"},
        [2**64, -(2**63) - 1],
        {"nothing": None},
    ],
)
def test_dumps_where_orjson_differs(value: Any) -> None:
    expected = _outcome(lambda v: _stdlib_encode(v).encode(), value)
    got = _outcome(json_codec.dumps, value)
    assert expected == got or (expected[0] == got[0] == "ok" and expected[1] == got[1])


def test_nan_is_refused_not_written_as_null() -> None:
    with pytest.raises(ValueError):
        json_codec.dumps({"x": float("nan")})
    assert json_codec.dumps({"x": None, "y": "null"}) == b'{"x":null,"y":"null"}'


def test_documents_with_many_containers_take_the_standard_librarys_way() -> None:
    many = b"[" + b",".join(b'{"i": %d}' % i for i in range(300)) + b"]"
    assert json_codec.loads(many) == json.loads(many)
    deep = b"[" * 300 + b"]" * 300
    assert json_codec.loads(deep) == json.loads(deep)


def test_too_deep_upstream_json_is_a_format_error_not_a_crash() -> None:
    from naftiko.upstream.formats import FormatError, parse_body

    with pytest.raises(FormatError, match="nested too deeply"):
        parse_body(b"[" * 100_000 + b"]" * 100_000, "json")


@pytest.mark.parametrize(
    "raw",
    [
        b"12345678901234567890",
        b" 12345678901234567890",
        b'{"a":12345678901234567890}',
        b'{"a": 12345678901234567890}',
        b"[1,12345678901234567890]",
        b"[\n12345678901234567890]",
        b"[-1234567890123456789]",
        b'{"log_id":"20261125000000010113006207250BENCH","n":18446744073709551616}',
    ],
)
def test_every_place_a_wide_integer_can_stand_is_seen(raw: bytes) -> None:
    assert not json_codec._orjson_reads_as_stdlib(raw)
    assert repr(json_codec.loads(raw)) == repr(json.loads(raw))


def test_digits_inside_strings_leave_the_fast_way_open() -> None:
    raw = b'{"log_id":"20261125000000010113006207250BENCH","id":"7300000000000000000"}'
    assert json_codec._orjson_reads_as_stdlib(raw)
    assert json_codec.loads(raw) == json.loads(raw)
