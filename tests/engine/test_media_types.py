"""Tests of the one media-type parser (``naftiko.media_types``)."""

from __future__ import annotations

from naftiko.media_types import (
    as_written,
    essence,
    is_json,
    is_json_request_body,
    media_and_charset,
    parse_media_type,
)


def test_parse_lower_cases_names_and_keeps_values() -> None:
    assert parse_media_type('Application/JSON; Charset="UTF-8"; q') == (
        "application/json",
        {"charset": "UTF-8", "q": ""},
    )
    assert parse_media_type(None) == ("", {})
    assert parse_media_type("text/plain; charset=a; charset=b")[1]["charset"] == "b"


def test_media_and_charset_agrees_with_the_parser() -> None:
    values = (None, "", "Text/Plain", 't/p; CHARSET="x"; a=b', "a/b; charset=; x")
    for value in values:
        media, params = parse_media_type(value)
        assert media_and_charset(value) == (media, params.get("charset") or None)


def test_essence_and_as_written() -> None:
    assert essence(" Text/HTML ; charset=utf-8") == "text/html"
    assert essence(None) == ""
    assert as_written("Image/PNG; x=1") == "Image/PNG"


def test_json_by_suffix_and_the_stricter_request_body_rule() -> None:
    assert is_json("application/problem+json; charset=utf-8")
    assert is_json("text/x+json")
    assert not is_json("text/json-ish")
    assert not is_json(None)
    assert is_json_request_body("application/json")
    assert is_json_request_body("application/vnd.api+json")
    assert not is_json_request_body("text/x+json")
