"""What cannot run is refused with a message that says where and what to change."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from test_loader_tolerance import base_doc, write

from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.loader import discover, is_capability_document, load_capability
from naftiko.spec.source import SourceError, parse_source


def errors(path: Path, **kwargs: Any) -> list[Diagnostic]:
    kwargs.setdefault("env", {})
    with pytest.raises(LoadError) as exc:
        load_capability(path, **kwargs)
    found = [d for d in exc.value.diagnostics if d.severity == "error"]
    assert found, "LoadError without an error diagnostic"
    return found


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty document"),
        (b"# only a comment\n", "empty document"),
        (b"- a\n- b\n", "root is a list"),
        (b"just some words\n", "root is a plain string"),
        (b"\x00\x01\x02binary", "binary file"),
        (b"\xff\xfe\xfa garbage", "not UTF-8"),
        (b"naftiko: [unclosed\n", "YAML syntax error"),
        (b"foo: bar\n", "no 'naftiko' key"),
    ],
)
def test_unusable_files_fail_with_one_clear_error(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "cap.yaml"
    path.write_bytes(content)
    (error,) = errors(path)
    assert expected in error.message
    assert error.file == str(path)


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "naftiko: 1.0.0-alpha2\ninfo:\n  label: x\n   bad: indent\n")
    (error,) = errors(path)
    assert (error.line, error.column) == (4, 7)
    assert error.format().startswith(f"{path}:4:7: error: YAML syntax error")


def test_large_garbage_fails_quickly_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(os.urandom(10 * 1024 * 1024))
    (error,) = errors(path)
    assert "binary" in error.message or "UTF-8" in error.message


def test_deeply_nested_input_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "naftiko: " + "[" * 5000 + "]" * 5000 + "\n")
    errors(path)


def test_json_syntax_error_has_position(tmp_path: Path) -> None:
    (error,) = errors(write(tmp_path, '{"naftiko": "1.0.0-alpha2",\n  "info": }', "cap.json"))
    assert error.line == 2 and "JSON syntax error" in error.message


def test_missing_file(tmp_path: Path) -> None:
    (error,) = errors(tmp_path / "nope.yaml")
    assert error.message == "file not found"


def test_shared_consumes_file_is_not_a_capability(tmp_path: Path) -> None:
    shared = {"naftiko": "1.0.0-alpha2", "consumes": [{"namespace": "x", "baseUri": "https://x"}]}
    assert not is_capability_document(shared)
    assert is_capability_document(base_doc())
    (error,) = errors(write(tmp_path, shared))
    assert "shared consumes file" in error.message


def test_wrong_types_are_errors_at_their_path(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["port"] = "eighty"
    (error,) = errors(write(tmp_path, doc))
    assert error.path == "capability.exposes[0].port"
    assert "got text" in error.message and "eighty" not in error.message


def test_a_body_type_that_is_not_text_is_a_diagnostic_not_a_crash(tmp_path: Path) -> None:
    """Found by the structure fuzzer: ``type: [form]`` on a body reached a dict lookup."""
    doc = base_doc()
    operation = doc["capability"]["consumes"][0]["resources"][0]["operations"][0]
    operation["body"] = {"type": ["form"], "data": {"a": "b"}}
    found = errors(write(tmp_path, doc))
    assert all(e.path.startswith("capability.consumes[0]") for e in found), found


def test_duplicate_exposes_namespace_of_one_type(tmp_path: Path) -> None:
    doc = base_doc()
    second = copy.deepcopy(doc["capability"]["exposes"][0])
    second["port"] = 8081
    doc["capability"]["exposes"].append(second)
    (error,) = errors(write(tmp_path, doc))
    assert "exposes namespace 'api-rest' is already used by exposes[0]" in error.message
    assert error.path == "capability.exposes[1].namespace" and error.line is not None


def test_duplicate_consumes_namespace_with_other_settings(tmp_path: Path) -> None:
    doc = base_doc()
    second = copy.deepcopy(doc["capability"]["consumes"][0])
    second["baseUri"] = "https://other.example.com"
    doc["capability"]["consumes"].append(second)
    (error,) = errors(write(tmp_path, doc))
    assert "consumes namespace 'api' is declared twice" in error.message


def test_port_clash(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"].append(
        {"type": "mcp", "namespace": "api-mcp", "port": 8080, "tools": []}
    )
    (error,) = errors(write(tmp_path, doc))
    assert "port 8080 is already used by exposes[0]" in error.message
    assert error.path == "capability.exposes[1].port"


def test_unknown_call_target_is_an_error_in_strict_mode(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["resources"][0]["operations"][0]["call"] = "api.list-item"
    found = [e for e in errors(write(tmp_path, doc), strict=True) if "call target" in e.message]
    assert "did you mean 'api.list-items'?" in found[0].message


def test_unknown_ref_suggests_the_closest_function(tmp_path: Path) -> None:
    doc = base_doc(
        aggregates=[
            {"namespace": "agg", "functions": [{"name": "list-all", "call": "api.list-items"}]}
        ]
    )
    op = doc["capability"]["exposes"][0]["resources"][0]["operations"][0]
    del op["call"]
    op["ref"] = "agg.list-al"
    found = [e for e in errors(write(tmp_path, doc), strict=True) if "ref" in e.message]
    assert "did you mean 'agg.list-all'?" in found[0].message


def test_unknown_step_call_target(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["exposes"][0]["resources"][0]["operations"][0]
    del op["call"]
    op["name"] = "orchestrated"
    op["steps"] = [{"type": "call", "name": "s1", "call": "apx.list-items"}]
    found = [e for e in errors(write(tmp_path, doc), strict=True) if "call target" in e.message]
    assert found[0].path.endswith("steps[0].call")


def test_discover_walks_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("a/x.yaml", "a/y.yml", "a/z.json", "a/readme.md", ".hidden/h.yaml"):
        (tmp_path / name).write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])]
    assert found == ["a/x.yaml", "a/y.yml", "a/z.json"]
    assert discover([tmp_path / "a" / "readme.md"]) == [tmp_path / "a" / "readme.md"]


def test_parse_source_positions() -> None:
    text = "a:\n  b:\n    - x\n    - c: 1\n"
    data, source_map = parse_source(text, "f.yaml")
    assert data == {"a": {"b": ["x", {"c": 1}]}}
    assert source_map.position(("a", "b", 1, "c")) == (4, 7)
    assert source_map.position(("a", "nope")) is None
    assert source_map.locate(("a", "nope", 3))["line"] == 1
    diagnostic = source_map.diagnostic_at(("a", "b", 0), "error", "bad")
    assert diagnostic.format() == "f.yaml:3:7: error: bad (at a.b[0])"


def test_parse_source_raises_source_error() -> None:
    with pytest.raises(SourceError) as exc:
        parse_source("a: [1,\n", "f.yaml")
    assert exc.value.line == 2


# --------------------------------------------------------------------------- YAML aliases

BASE_TEXT = "naftiko: 1.0.0-alpha2\ninfo: {label: x}\ncapability: {}\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (BASE_TEXT + "x: &x\n  - *x\n", 4),
        (BASE_TEXT + "x: &x {a: [1, {b: *x}]}\n", 4),
        (BASE_TEXT + "x: &x {*x : 1}\n", 4),
    ],
    ids=["sequence", "nested-mapping", "key"],
)
def test_self_referencing_alias_is_one_positioned_error(
    tmp_path: Path, text: str, line: int
) -> None:
    path = write(tmp_path, text)
    (error,) = errors(path, require_binds=False)
    assert "alias refers to a node that contains it" in error.message
    assert error.line == line
    assert error.format().startswith(f"{path}:{line}:")


def alias_bomb(levels: int) -> str:
    lines = [f"l{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return BASE_TEXT + "l0: &a0 [x, x]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [17, 40, 900])
def test_alias_bomb_is_refused_at_the_anchor_past_the_limit(tmp_path: Path, levels: int) -> None:
    (error,) = errors(write(tmp_path, alias_bomb(levels)), require_binds=False)
    assert "aliases expand to more than 100000 nodes" in error.message
    assert error.line == 4 + 15  # l15 expands to 2**17 nodes: the first anchor past the limit


def test_aliases_below_the_limit_are_expanded(tmp_path: Path) -> None:
    data, _ = parse_source(alias_bomb(14), "f.yaml")  # about 2**16 nodes once expanded
    assert len(data["l13"]) == 2 and data["l13"][0] is data["l13"][1]
    shared = (
        "op: &op {name: list-items, method: GET}\n"
        "m:\n  <<: *op\n  name: other\n"
        "list: [*op, *op, *op]\n"
    )
    data, _ = parse_source(shared, "f.yaml")
    assert data["m"] == {"name": "other", "method": "GET"}
    assert data["list"] == [data["op"]] * 3


def test_shared_objects_are_normalised_once(tmp_path: Path) -> None:
    text = BASE_TEXT.replace("capability: {}\n", "") + (
        "capability:\n"
        "  consumes:\n"
        "    - type: http\n      namespace: api\n      baseUri: https://api.example.com\n"
        "      resources:\n"
        "        - name: items\n          path: /items\n"
        "          operations:\n"
        "            - &op {name: list-items, method: get}\n"
        "        - name: more\n          path: /more\n"
        "          operations: [*op]\n"
    )
    loaded = load_capability(write(tmp_path, text), env={})
    methods = [d for d in loaded.diagnostics if "upper case" in d.message]
    assert len(methods) == 1 and methods[0].line == 12
    (consumes,) = loaded.document.capability.consumes
    assert [r.operations[0].method for r in consumes.resources] == ["GET", "GET"]


def test_nesting_at_the_parser_limit_is_an_error_not_a_crash(tmp_path: Path) -> None:
    depth = 995  # libyaml refuses 1000 levels; normalising walks this deep without recursion
    path = write(
        tmp_path,
        BASE_TEXT.replace("capability: {}\n", "capability:\n  exposes: ")
        + "[" * depth
        + "]" * depth
        + "\n",
    )
    for strict in (False, True):
        assert errors(path, strict=strict)


def test_a_key_with_line_breaks_is_reported_on_one_line(tmp_path: Path) -> None:
    """Found by the loader fuzzer: a mapping key of blank lines split the warning in two."""
    path = tmp_path / "cap.yaml"
    path.write_text(
        "naftiko: 1.0.0-alpha2\ninfo:\n  label: x\n  description: y\n"
        'capability:\n  exposes: []\n  consumes: []\n? "\\n\\n  \\r"\n: null\n',
        encoding="utf-8",
    )
    loaded = load_capability(path, env={})
    lines = [d.format() for d in loaded.diagnostics]
    assert any("unknown property '\\n\\n  \\r'" in line for line in lines), lines
    assert all("\n" not in line and "\r" not in line for line in lines)
