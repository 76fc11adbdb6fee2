"""Raw upstream formats converted to JSON (reference-semantics §3.7)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from naftiko.engine.mapping import compile_outputs
from naftiko.spec.models import OutputParameter
from naftiko.upstream import formats
from naftiko.upstream.formats import FormatError, check_format, parse_body

SECRET = "tok-SECRET-123"

# --------------------------------------------------------------------------- json / yaml


def test_json_default_and_case_insensitive() -> None:
    assert parse_body(b'{"a": [1, 2.5, true, null]}', None) == {"a": [1, 2.5, True, None]}
    assert parse_body(b'"x"', "JSON") == "x"
    assert parse_body("\ufeff[1]".encode(), "json") == [1]
    assert parse_body(b"  ", "json") is None


def test_json_error_has_position_not_content() -> None:
    with pytest.raises(FormatError) as info:
        parse_body(b'{"token": "' + SECRET.encode() + b'" oops}', "json")
    message = str(info.value)
    assert "line 1 column" in message
    assert SECRET not in message


def test_yaml_safe_with_native_types() -> None:
    body = b"a: 1\nb: [x, true]\nwhen: 2024-01-02\n"
    assert parse_body(body, "yaml") == {"a": 1, "b": ["x", True], "when": "2024-01-02"}
    with pytest.raises(FormatError):
        parse_body(b"!!python/object/apply:os.system ['echo hi']", "yaml")


def test_yaml_alias_bomb_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_NODES", 10_000)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 10)}]")
    with pytest.raises(FormatError, match="expands"):
        parse_body("\n".join(lines).encode(), "yaml")
    assert parse_body(b"base: &b {x: 1}\nother: *b\n", "yaml") == {
        "base": {"x": 1},
        "other": {"x": 1},
    }


def test_yaml_aliases_to_one_large_string_count_their_expanded_size() -> None:
    """Few nodes, but each alias repeats 100 KB of text: 30 MB once expanded."""
    body = b'big: &b "' + b"y" * 100_000 + b'"\ncopies: [' + b", ".join([b"*b"] * 300) + b"]\n"
    with pytest.raises(FormatError, match="expands to more than 1000000 bytes"):
        parse_body(body, "yaml", max_bytes=1_000_000)
    with pytest.raises(FormatError, match=f"expands to more than {formats.MAX_EXPANDED_BYTES}"):
        parse_body(body, "yaml")  # a limit always applies
    few = b'big: &b "' + b"y" * 100_000 + b'"\ncopies: [*b, *b]\n'
    assert parse_body(few, "yaml", max_bytes=1_000_000)["copies"] == ["y" * 100_000] * 2


def test_yaml_keys_and_front_matter_count_too() -> None:
    keys = b"k: &k {" + b"x" * 1000 + b": 1}\nall: [" + b", ".join([b"*k"] * 50) + b"]\n"
    with pytest.raises(FormatError, match="expands"):
        parse_body(keys, "yaml", max_bytes=20_000)
    front = b"---\n" + keys + b"---\n# Title\n"
    with pytest.raises(FormatError, match="expands"):
        parse_body(front, "markdown", max_bytes=20_000)


def test_yaml_error_does_not_quote_the_body() -> None:
    with pytest.raises(FormatError) as info:
        parse_body(f"token: {SECRET}\n  bad: : [\n".encode(), "yaml")
    assert SECRET not in str(info.value)
    assert "line" in str(info.value)


# --------------------------------------------------------------------------- xml

DOCKYARD = b"""<?xml version="1.0" encoding="UTF-8"?>
<vessels>
  <vessel>
    <vesselCode>DY-001</vesselCode>
    <vesselName>Old Faithful</vesselName>
    <category>tanker</category>
    <flagState>PA</flagState>
    <operationalStatus>active</operationalStatus>
    <yearBuilt>1998</yearBuilt>
  </vessel>
  <vessel>
    <vesselCode>DY-002</vesselCode>
    <vesselName>Rusty</vesselName>
    <category>bulk</category>
    <flagState>LR</flagState>
    <operationalStatus>laid_up</operationalStatus>
    <yearBuilt>1987</yearBuilt>
  </vessel>
</vessels>
"""


def test_xml_root_dropped_repeated_siblings_become_arrays_scalars_strings() -> None:
    document = parse_body(DOCKYARD, "xml")
    assert list(document) == ["vessel"]
    assert len(document["vessel"]) == 2
    assert document["vessel"][0]["yearBuilt"] == "1998"
    assert document["vessel"][1]["vesselCode"] == "DY-002"


def test_xml_tutorial_legacy_vessels_mapping() -> None:
    mapper = compile_outputs(
        [
            OutputParameter.model_validate(
                {
                    "type": "array",
                    "mapping": "$.vessel",
                    "items": {
                        "type": "object",
                        "properties": {
                            "vesselCode": {"type": "string", "mapping": "$.vesselCode"},
                            "type": {"type": "string", "mapping": "$.category"},
                            "year": {"type": "integer", "mapping": "$.yearBuilt"},
                        },
                    },
                }
            )
        ]
    )
    assert mapper.apply(parse_body(DOCKYARD, "xml")) == [
        {"vesselCode": "DY-001", "type": "tanker", "year": 1998},
        {"vesselCode": "DY-002", "type": "bulk", "year": 1987},
    ]
    single = b"<vessels><vessel><vesselCode>DY-9</vesselCode></vessel></vessels>"
    assert mapper.apply(parse_body(single, "xml")) == [
        {"vesselCode": "DY-9", "type": None, "year": None}
    ]


def test_xml_attributes_text_and_namespaces() -> None:
    body = (
        b'<r xmlns:x="urn:x"><price currency="EUR">12.5</price>'
        b'<x:item id="1"/><empty/><e2></e2></r>'
    )
    assert parse_body(body, "xml") == {
        "price": {"currency": "EUR", "": "12.5"},
        "item": {"id": "1"},
        "empty": "",
        "e2": "",
    }


def test_xml_leaf_root_is_its_text() -> None:
    assert parse_body(b"<r>hello</r>", "xml") == "hello"


def test_xml_entities_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>'
    )
    with pytest.raises(FormatError, match="not allowed"):
        parse_body(bomb, "xml")
    external = b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r>&e;</r>'
    with pytest.raises(FormatError):
        parse_body(external, "xml")


def test_xml_error_has_position_not_content() -> None:
    with pytest.raises(FormatError) as info:
        parse_body(f"<r><token>{SECRET}</token><r>".encode(), "xml")
    assert "line 1" in str(info.value)
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- delimited


@pytest.mark.parametrize(("fmt", "sep"), [("csv", ","), ("tsv", "\t"), ("PSV", "|")])
def test_delimited_header_row_gives_objects_of_strings(fmt: str, sep: str) -> None:
    body = sep.join(["imo", "name", "year"]) + "\r\n"
    body += sep.join(["IMO-1", "North", "2015"]) + "\r\n"
    body += sep.join(["IMO-2", "South"]) + "\n\n"
    assert parse_body(body.encode(), fmt) == [
        {"imo": "IMO-1", "name": "North", "year": "2015"},
        {"imo": "IMO-2", "name": "South", "year": ""},
    ]


def test_csv_quoting_and_empty() -> None:
    body = b'id,comment\n1,"hello, ""world""\nline2"\n'
    assert parse_body(body, "csv") == [{"id": "1", "comment": 'hello, "world"\nline2'}]
    assert parse_body(b"", "csv") == []
    assert parse_body(b"only,header\n", "csv") == []


def test_csv_error_has_line() -> None:
    with pytest.raises(FormatError, match="line"):
        parse_body(b'a,b\n1,"unterminated\n', "csv")


# --------------------------------------------------------------------------- html

HTML = b"""<html><body>
<div id="ships"><table>
  <thead><tr><th>IMO</th><th>Name</th></tr></thead>
  <tbody>
    <tr><td> IMO-1 </td><td>North <b>Star</b></td></tr>
    <tr><th>section</th><td>skipped</td></tr>
    <tr><td>IMO-2</td></tr>
  </tbody>
</table></div>
<table class="crew"><tr><th>Crew</th></tr><tr><td>Ann</td></tr></table>
<table><tr><td>no headers</td></tr></table>
</body></html>"""


def test_html_tables() -> None:
    assert parse_body(HTML, "html") == {
        "tables": [
            [{"IMO": "IMO-1", "Name": "North Star"}, {"IMO": "IMO-2", "Name": ""}],
            [{"Crew": "Ann"}],
        ]
    }


def test_html_selector_limits_tables() -> None:
    assert parse_body(HTML, "html", schema="#ships") == {
        "tables": [[{"IMO": "IMO-1", "Name": "North Star"}, {"IMO": "IMO-2", "Name": ""}]]
    }
    assert parse_body(HTML, "html", schema="table.crew") == {"tables": [[{"Crew": "Ann"}]]}
    assert parse_body(HTML, "html", schema="#nothing") == {"tables": []}


def test_html_nested_tables_are_separate() -> None:
    body = (
        b"<table><tr><th>A</th></tr><tr><td>1<table><tr><th>B</th></tr>"
        b"<tr><td>2</td></tr></table></td></tr></table>"
    )
    tables = parse_body(body, "html")["tables"]
    assert tables[1] == [{"B": "2"}]
    assert len(tables[0]) == 1


# --------------------------------------------------------------------------- markdown

MARKDOWN = b"""---
title: Fleet report
version: 2
---
Intro before any heading.

# Fleet

The fleet has **two** ships.
Second line.

| IMO | Name |
|-----|------|
| IMO-1 | North |
| IMO-2 |  |

## Fleet status

- active
- laid up

```
code block
```

# Crew

Crew text.
"""


def test_markdown_front_matter_tables_sections() -> None:
    document = parse_body(MARKDOWN, "markdown")
    assert document["frontMatter"] == {"title": "Fleet report", "version": 2}
    assert document["tables"] == [[{"IMO": "IMO-1", "Name": "North"}, {"IMO": "IMO-2", "Name": ""}]]
    assert document["sections"] == [
        {"heading": "Fleet", "level": 1, "content": "The fleet has two ships.\nSecond line."},
        {"heading": "Fleet status", "level": 2, "content": "active\nlaid up\ncode block"},
        {"heading": "Crew", "level": 1, "content": "Crew text."},
    ]


def test_markdown_heading_prefix_filter_and_no_front_matter() -> None:
    document = parse_body(MARKDOWN, "markdown", schema="Fleet")
    assert [s["heading"] for s in document["sections"]] == ["Fleet", "Fleet status"]
    plain = parse_body(b"# Only\n\ntext\n---\n", "markdown")
    assert plain["frontMatter"] == {}
    assert plain["sections"][0]["heading"] == "Only"


# --------------------------------------------------------------------------- avro

AVRO_SCHEMA = {
    "type": "record",
    "name": "Ship",
    "fields": [
        {"name": "imo", "type": "string"},
        {"name": "year", "type": "int"},
        {"name": "tonnage", "type": "double"},
        {"name": "active", "type": "boolean"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "owner", "type": ["null", "string"], "default": None},
        {"name": "blob", "type": "bytes"},
    ],
}


@pytest.fixture
def avsc(tmp_path: Path) -> Path:
    path = tmp_path / "schemas" / "ship.avsc"
    path.parent.mkdir()
    path.write_text(json.dumps(AVRO_SCHEMA))
    return path


def avro_record(record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(AVRO_SCHEMA), record)
    return buffer.getvalue()


def test_avro_round_trip(avsc: Path) -> None:
    raw = avro_record(
        {
            "imo": "IMO-1",
            "year": 2015,
            "tonnage": 1.5,
            "active": True,
            "tags": ["a"],
            "owner": None,
            "blob": b"\x00\x01",
        }
    )
    check_format("avro", "schemas/ship.avsc", avsc.parent.parent)
    result = parse_body(raw, "Avro", schema="schemas/ship.avsc", base_dir=avsc.parent.parent)
    assert result == {
        "imo": "IMO-1",
        "year": 2015,
        "tonnage": 1.5,
        "active": True,
        "tags": ["a"],
        "owner": None,
        "blob": "AAE=",
    }
    json.dumps(result)


def test_avro_truncated_record(avsc: Path) -> None:
    raw = avro_record(
        {"imo": "IMO-1", "year": 1, "tonnage": 1.0, "active": True, "tags": [], "blob": b""}
    )
    with pytest.raises(FormatError, match="invalid Avro record"):
        parse_body(raw[:3], "avro", schema=str(avsc))


def test_avro_schema_problems(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="requires outputSchema"):
        check_format("avro", None, tmp_path)
    with pytest.raises(FormatError, match="not found"):
        check_format("avro", "missing.avsc", tmp_path)
    (tmp_path / "bad.avsc").write_text('{"type": "record"}')
    with pytest.raises(FormatError, match="not a valid schema"):
        check_format("avro", "bad.avsc", tmp_path)


# --------------------------------------------------------------------------- check_format


@pytest.mark.parametrize(
    "fmt", [None, "json", "XML", "yaml", "csv", "tsv", "psv", "html", "Markdown", "text"]
)
def test_known_formats(fmt: str | None) -> None:
    check_format(fmt, None, ".")


def test_unknown_format_says_what_to_use() -> None:
    with pytest.raises(FormatError, match=r"unsupported outputRawFormat 'excel'.*json"):
        check_format("excel", None, ".")
    with pytest.raises(FormatError, match="unsupported"):
        parse_body(b"", "excel")


def test_protobuf_refused_with_explanation() -> None:
    with pytest.raises(FormatError, match=r"protobuf.*not supported"):
        check_format("protobuf", "ship.proto", ".")
    with pytest.raises(FormatError, match="protoc"):
        parse_body(b"\x08\x01", "protobuf", schema="ship.proto")


def test_html_selector_checked_at_load() -> None:
    check_format("html", "div#ships > table", ".")
    with pytest.raises(FormatError, match="CSS selector"):
        check_format("html", "div[[", ".")


def test_text_and_binary_extensions() -> None:
    assert parse_body("héllo".encode(), "text") == "héllo"
    assert parse_body(b"\x00\xff", "binary") == b"\x00\xff"
