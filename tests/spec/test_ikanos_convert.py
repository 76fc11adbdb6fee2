"""``naftiko convert``: alpha2 <-> Ikanos beta4, comments kept, refusals, corpus round trip."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from naftiko.adapters.exposes import compile_capability
from naftiko.cli.convert import ConversionError, convert_text
from naftiko.cli.validate import validate_file
from naftiko.spec.diagnostics import Diagnostic
from naftiko.spec.loader import load_capability
from naftiko.spec.source import Reporter, SourceMap, read_source
from naftiko.spec.strict import check_schema

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".." / "shared" / "corpus"
cli = importlib.import_module("naftiko.cli.entry")
# The corpus holds ~3,500 documents: the suite round-trips every STRIDE-th one (all kinds
# of document appear many times over); NAFTIKO_CORPUS_STRIDE=1 runs every one.
STRIDE = int(os.environ.get("NAFTIKO_CORPUS_STRIDE", "60"))

ALPHA2 = """\
naftiko: "1.0.0-alpha2"
# what this capability is for
info:
  label: Users   # shown to agents
  description: The users API.
capability:
  consumes:
    - type: http
      namespace: api
      baseUri: https://api.example.com
      resources:
        - name: users
          path: /users
          operations:
            - name: list-users
              method: GET
              outputParameters:
                - name: users
                  type: array
                  value: $.users
  exposes:
    - type: rest
      port: 8080
      namespace: rest
      resources:
        - path: /users
          operations:
            - method: GET   # unnamed: its unit is 'rest.GET /users'
              call: api.list-users
"""


def units(path: Path) -> dict[str, Any]:
    compiled = compile_capability(load_capability(path, env={}, require_binds=False))
    return {u.id: (u.kind, type(u.plan).__name__, u.input_schema) for u in compiled.units.values()}


def schema_errors(path: Path) -> list[str]:
    sink: list[Diagnostic] = []
    check_schema(read_source(path).data, Reporter(SourceMap.empty(), sink))
    return [d.message for d in sink]


def test_alpha2_to_beta4_and_back_keeps_comments_order_and_units(tmp_path: Path) -> None:
    source = tmp_path / "a.yaml"
    source.write_text(ALPHA2)
    beta4, violations = convert_text(ALPHA2, "ikanos-1.0.0-beta4")
    assert violations == []
    assert beta4.startswith('ikanos: "1.0.0-beta4"\n# what this capability is for\n')
    assert "  display: Users # shown to agents\n" in beta4
    assert "        list-users:\n" in beta4 and "get-users:  # name made by" in beta4
    (tmp_path / "b.yaml").write_text(beta4)
    assert schema_errors(tmp_path / "b.yaml") == []
    back, _ = convert_text(beta4, "naftiko-1.0.0-alpha2")
    assert "name: get-users" not in back and "# shown to agents" in back
    (tmp_path / "c.yaml").write_text(back)
    assert units(tmp_path / "c.yaml") == units(source)
    assert "rest.GET /users" in units(source)
    assert len(units(tmp_path / "b.yaml")) == 1


def test_what_alpha2_cannot_say_is_refused_one_line_each() -> None:
    beta4, _ = convert_text(ALPHA2, "ikanos-1.0.0-beta4")
    beta4 = beta4.replace("      port: 8080\n", "      port: 8080\n      tags: [x]\n", 1)
    beta4 = beta4.replace("  description: The users API.\n", "  description: d\n  version: '2'\n")
    with pytest.raises(ConversionError) as exc:
        convert_text(beta4, "naftiko-1.0.0-alpha2")
    assert exc.value.problems == [
        "cannot be expressed in naftiko 1.0.0-alpha2: info.version: a capability version (beta4)",
        "cannot be expressed in naftiko 1.0.0-alpha2: capability.exposes[0].tags: tags "
        "(alpha2 has them on info only)",
    ]


def test_two_entries_of_one_name_are_refused_for_ikanos() -> None:
    text = ALPHA2.replace(
        "            - name: list-users\n",
        "            - name: list-users\n              method: POST\n"
        "            - name: list-users\n",
    )
    with pytest.raises(ConversionError) as exc:
        convert_text(text, "ikanos-1.0.0-beta4")
    assert exc.value.problems == [
        "capability.consumes[0].resources.users.operations: two entries named 'list-users': "
        "Ikanos keys them by name"
    ]


def test_the_command_writes_the_file_or_lists_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "a.yaml"
    source.write_text(ALPHA2)
    out = tmp_path / "b.yaml"
    assert cli.main(["convert", str(source), "--to", "ikanos-1.0.0-beta4", "-o", str(out)]) == 0
    assert out.read_text().startswith('ikanos: "1.0.0-beta4"')
    source.write_text(ALPHA2.replace("  description: The users API.\n", ""))
    assert cli.main(["convert", str(source), "--to", "ikanos-1.0.0-beta4"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{source}:3: error: cannot be expressed in ikanos-1.0.0-beta4: 'info': 'description' "
        "is a required property (the source breaks this rule of naftiko 1.0.0-alpha2 too)",
        f"{source}: not converted to ikanos-1.0.0-beta4",
    ]
    assert cli.main(["convert", str(source), "--to", "ikanos-1.0.0-beta4", "--force"]) == 0


def test_corpus_round_trip(tmp_path: Path) -> None:
    """alpha2 -> beta4 -> alpha2 of every corpus document that loads compiles to the same
    units; every beta4 result the converter accepts validates against the beta4 schema,
    and every source valid against alpha2's schema converts to one it accepts.
    Converted files are written beside copies of the originals (imports are relative)."""
    copy = tmp_path / "corpus"
    shutil.copytree(CORPUS.resolve(), copy)
    for folder, _, _ in os.walk(copy):
        os.chmod(folder, 0o755)  # shared/ may be read-only: the copy keeps its modes
    counts = {"loads": 0, "refused": 0, "round-trip": 0, "strict": 0}
    paths = sorted(p for p in CORPUS.resolve().rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    for path in paths[::STRIDE]:
        if validate_file(path)[0] not in ("ok", "warnings"):
            continue
        counts["loads"] += 1
        try:
            beta4, violations = convert_text(path.read_text(), "ikanos-1.0.0-beta4", check=False)
            back, _ = convert_text(beta4, "naftiko-1.0.0-alpha2")
        except ConversionError:
            counts["refused"] += 1  # duplicate or missing names: listed, never guessed
            continue
        target = copy / path.relative_to(CORPUS.resolve())
        b_path = target.with_name(f"{target.stem}.beta4.yaml")
        a_path = target.with_name(f"{target.stem}.alpha2.yaml")
        b_path.write_text(beta4)
        a_path.write_text(back)
        assert units(a_path) == units(path), path
        assert len(units(b_path)) == len(units(path)), path
        counts["round-trip"] += 1
        if not schema_errors(path):
            # valid alpha2 always makes valid beta4: what does not is the source's own bend
            assert violations == [], (path, violations)
        if not violations:
            assert schema_errors(b_path) == [], path
            counts["strict"] += 1
    print(counts)
    assert counts["round-trip"] >= 0.8 * counts["loads"], counts


ORCHESTRATED = """\
naftiko: "1.0.0-alpha2"
info:
  label: Ships
  description: Ships and crews.
capability:
  consumes:
    - type: http
      namespace: registry
      baseUri: https://registry.example.com
      resources:
        - name: ships
          path: /ships/{imo}
          operations:
            - name: get-ship
              method: GET
  exposes:
    - type: mcp
      namespace: tools
      port: 9090
      tools:
        - name: ship-with-crew
          description: A ship and its crew.
          steps:
            - type: call
              name: get-ship
              call: registry.get-ship
          outputParameters:
            - name: route
              type: object
              properties:
                from:
                  name: from
                  type: string
            - name: crew
              type: array
              items:
                - name: fullName
                  type: string
                - name: role
                  type: string
"""


def test_alpha2_orchestrated_outputs_become_beta4_maps_and_validate(tmp_path: Path) -> None:
    """alpha2 writes an orchestrated array's ``items`` as a list of named properties and
    may repeat a property's key as its ``name``; beta4 has a map and no ``name``."""
    source = tmp_path / "a.yaml"
    source.write_text(ORCHESTRATED)
    beta4, violations = convert_text(ORCHESTRATED, "ikanos-1.0.0-beta4")
    assert violations == []
    assert "              items:\n                fullName:\n" in beta4
    (tmp_path / "b.yaml").write_text(beta4)
    assert schema_errors(source) == [] and schema_errors(tmp_path / "b.yaml") == []
    (tool,) = [u for u in compile_capability(load_capability(source, env={})).units.values()]
    crew = tool.output_schema["properties"]["crew"]
    assert set(crew["items"]["properties"]) == {"fullName", "role"}  # read, not ignored
    assert units(tmp_path / "b.yaml") == units(source)


def test_a_refusal_names_the_construct_and_its_source_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bent = ALPHA2.replace("      port: 8080\n", "      port: 8080\n      description: REST.\n")
    bent = bent.replace(
        "                  value: $.users\n",
        "                  value: $.users\n"
        "              inputParameters:\n"
        "                - name: page\n                  in: query\n"
        "                  type: integer\n",
    )
    source = tmp_path / "a.yaml"
    source.write_text(bent)
    assert cli.main(["convert", str(source), "--to", "ikanos-1.0.0-beta4"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{source}:22: error: cannot be expressed in ikanos-1.0.0-beta4: input parameter 'page' "
        "of operation 'list-users' of resource 'users' of consumed API 'api': property not "
        "allowed here: type (the source breaks this rule of naftiko 1.0.0-alpha2 too)",
        f"{source}:26: error: cannot be expressed in ikanos-1.0.0-beta4: rest adapter 'rest': "
        "property not allowed here: description (the source breaks this rule of naftiko "
        "1.0.0-alpha2 too)",
        f"{source}: not converted to ikanos-1.0.0-beta4",
    ]
    unnamed = ORCHESTRATED.replace(
        "        - name: ship-with-crew\n          description", "        - description"
    )
    source.write_text(unnamed)
    assert cli.main(["convert", str(source), "--to", "ikanos-1.0.0-beta4"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{source}:21: error: capability.exposes[0].tools[0] has no name: Ikanos keys these by name"
    )


def test_a_list_shared_through_a_yaml_anchor_is_keyed_once(tmp_path: Path) -> None:
    """Two adapters sharing their resources through an anchor: the twin shares one map
    (the same names for both), not a second keying of entries already unnamed."""
    text = ALPHA2.replace(
        "      resources:\n        - path: /users\n",
        "      resources: &shared\n        - path: /users\n",
        1,
    )
    text += "    - type: rest\n      port: 8081\n      namespace: again\n      resources: *shared\n"
    source = tmp_path / "a.yaml"
    source.write_text(text)
    beta4, violations = convert_text(text, "ikanos-1.0.0-beta4")
    assert violations == []
    assert "      resources: &shared\n" in beta4 and "      resources: *shared\n" in beta4
    (tmp_path / "b.yaml").write_text(beta4)
    assert set(units(tmp_path / "b.yaml")) == {"rest.get-users", "again.get-users"}
    back, _ = convert_text(beta4, "naftiko-1.0.0-alpha2")
    (tmp_path / "c.yaml").write_text(back)
    assert units(tmp_path / "c.yaml") == units(source)
    assert set(units(source)) == {"rest.GET /users", "again.GET /users"}


def test_an_adapter_without_namespace_is_refused_for_ikanos(tmp_path: Path) -> None:
    """alpha2 loads it; Ikanos refuses to load it."""
    text = ALPHA2.replace("      namespace: rest\n", "")
    assert set(units_of_text(tmp_path, text)) == {".GET /users"}
    with pytest.raises(ConversionError) as exc:
        convert_text(text, "ikanos-1.0.0-beta4")
    assert exc.value.problems == [
        "cannot be expressed in ikanos-1.0.0-beta4: capability.exposes[0]: a rest adapter "
        "with no namespace"
    ]
    assert exc.value.lines == [22]  # "- type: rest"


def units_of_text(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    return units(path)


def test_a_bad_name_is_located_at_its_entry_and_a_pre_alpha_import_refused() -> None:
    text = ALPHA2.replace("        - name: users\n", "        - name: all_users\n")
    with pytest.raises(ConversionError) as exc:
        convert_text(text, "ikanos-1.0.0-beta4")
    assert exc.value.problems == [
        "cannot be expressed in ikanos-1.0.0-beta4: resource 'all_users' of consumed API "
        "'api': does not match the pattern ^[a-zA-Z0-9-]+$ (the source breaks this rule of "
        "naftiko 1.0.0-alpha2 too)"
    ]
    assert exc.value.lines == [12]
    text = ALPHA2.replace("  consumes:\n", "  consumes:\n    - import: other.yml\n      as: o\n")
    with pytest.raises(ConversionError) as exc:
        convert_text(text, "ikanos-1.0.0-beta4")
    assert exc.value.problems[0] == (
        "cannot be expressed in ikanos-1.0.0-beta4: capability.consumes[0]: an import with "
        "no 'location' ('import: FILE')"
    )
    assert exc.value.lines[0] == 8
