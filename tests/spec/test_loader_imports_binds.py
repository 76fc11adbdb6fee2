"""``consumes`` imports and ``binds``: resolution, errors, and secrets kept out of text."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_loader_tolerance import base_doc, write

from naftiko.spec.binds import Bindings
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability

SECRET = "s3cr3t-value-XYZ"


def shared_file(tmp_path: Path, name: str, *namespaces: str, **extra: Any) -> Path:
    consumes = [
        {
            "type": "http",
            "namespace": ns,
            "baseUri": f"https://{ns}.example.com",
            "resources": [{"name": "r", "path": "/r", "operations": [{"name": "get-r"}]}],
        }
        for ns in namespaces
    ]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"naftiko": "1.0.0-alpha2", "consumes": consumes, **extra}))
    return path


def importing_doc(*imports: dict[str, Any]) -> dict[str, Any]:
    doc = base_doc()
    doc["capability"]["consumes"] += list(imports)
    return doc


def load_errors(path: Path, **kwargs: Any) -> list[str]:
    kwargs.setdefault("env", {})
    with pytest.raises(LoadError) as exc:
        load_capability(path, **kwargs)
    return [d.format() for d in exc.value.diagnostics if d.severity == "error"]


# --------------------------------------------------------------------------- imports


def test_import_with_alias_resolves_relative_to_the_importing_file(tmp_path: Path) -> None:
    shared_file(tmp_path, "shared/apis.yml", "hello", "other")
    doc = importing_doc(
        {"location": "./shared/apis.yml", "import": "hello", "as": "hello-en"},
        {"location": "shared/apis.yml", "import": "hello", "as": "hello-fr"},
        {"location": "./shared/apis.yml", "import": "other"},
    )
    (tmp_path / "caps").mkdir()
    loaded = load_capability(write(tmp_path / "caps", doc).rename(tmp_path / "cap.yaml"), env={})
    names = [c.namespace for c in loaded.document.capability.consumes]
    assert names == ["api", "hello-en", "hello-fr", "other"]
    assert loaded.document.consumed()[1].base_uri == "https://hello.example.com"


def test_imported_entries_report_positions_in_their_own_file(tmp_path: Path) -> None:
    shared = shared_file(tmp_path, "shared.yaml", "hello")
    text = shared.read_text().replace("name: get-r", "name: get-r\n      colour: red")
    shared.write_text(text)
    loaded = load_capability(
        write(tmp_path, importing_doc({"location": "shared.yaml", "import": "hello"})), env={}
    )
    (warning,) = [d for d in loaded.diagnostics if "colour" in d.message]
    assert warning.file == str(shared.resolve())
    assert warning.path == "consumes[0].resources[0].operations[0].colour"


def test_missing_import_file_names_both_files(tmp_path: Path) -> None:
    path = write(tmp_path, importing_doc({"location": "./nope.yaml", "import": "x"}))
    (error,) = load_errors(path)
    assert str(tmp_path / "nope.yaml") in error and f"imported by {path.resolve()}" in error
    assert "capability.consumes[1].location" in error


def test_import_cycle_names_the_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"consumes": [{"location": "b.yaml", "import": "y"}]}))
    b.write_text(yaml.safe_dump({"consumes": [{"location": "a.yaml", "import": "x"}]}))
    path = write(tmp_path, importing_doc({"location": "a.yaml", "import": "x"}))
    (error,) = load_errors(path)
    assert "import cycle" in error and str(a) in error and str(b) in error


def test_namespace_not_found_lists_what_the_file_has(tmp_path: Path) -> None:
    shared_file(tmp_path, "shared.yaml", "one", "two")
    (error,) = load_errors(
        write(tmp_path, importing_doc({"location": "shared.yaml", "import": "x"}))
    )
    assert "namespace 'x' not found" in error and "it has: one, two" in error


def test_import_without_namespace_is_an_error(tmp_path: Path) -> None:
    (error,) = load_errors(write(tmp_path, importing_doc({"location": "shared.yaml"})))
    assert "'import' (the namespace to import) is required" in error


# --------------------------------------------------------------------------- binds


def with_binds(binds: list[dict[str, Any]], uses: str = "{{TOKEN}}") -> dict[str, Any]:
    doc = base_doc()
    doc["binds"] = binds
    doc["capability"]["consumes"][0]["authentication"] = {"type": "bearer", "token": uses}
    return doc


def test_binds_from_the_environment(tmp_path: Path) -> None:
    doc = with_binds([{"namespace": "env", "keys": {"TOKEN": "PROVIDER_TOKEN"}}])
    loaded = load_capability(write(tmp_path, doc), env={"PROVIDER_TOKEN": SECRET})
    b = loaded.bindings
    assert b.get("TOKEN") == SECRET and b.get("env.TOKEN") == SECRET
    assert "TOKEN" in b and b.names() == ("TOKEN",)
    assert b.namespaced() == {"env": {"TOKEN": SECRET}}
    assert b.as_scope() == {"TOKEN": SECRET}
    assert b.secret_values() == frozenset({SECRET})


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("secrets.yaml", f"token: {SECRET}\n"),
        ("secrets.json", json.dumps({"token": SECRET})),
        (".env", f"# comment\ntoken={SECRET}\n"),
        ("prod.env", f'export token="{SECRET}"\n'),
    ],
)
@pytest.mark.parametrize("form", ["file:///./{}", "file://./{}", "./{}", "{}", "file:///{abs}"])
def test_binds_from_files(tmp_path: Path, name: str, content: str, form: str) -> None:
    (tmp_path / name).write_text(content)
    location = form.format(name, abs=str(tmp_path / name)[1:])
    doc = with_binds([{"namespace": "vault", "location": location, "keys": {"TOKEN": "token"}}])
    loaded = load_capability(write(tmp_path, doc), env={})
    assert loaded.bindings.get("vault.TOKEN") == SECRET


def test_capability_binds_are_honoured_and_later_binds_win(tmp_path: Path) -> None:
    doc = with_binds([{"keys": {"TOKEN": "A"}}])
    doc["capability"]["binds"] = [{"namespace": "cap", "keys": {"TOKEN": "B"}}]
    loaded = load_capability(write(tmp_path, doc), env={"A": "first", "B": "second"})
    assert loaded.bindings.get("TOKEN") == "second"


def test_missing_used_env_bind_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    doc = with_binds([{"keys": {"TOKEN": "PROVIDER_TOKEN"}}])
    (error,) = load_errors(write(tmp_path, doc))
    assert "'TOKEN'" in error and "environment variable 'PROVIDER_TOKEN' is not set" in error
    assert "binds[0].keys.TOKEN" in error


@pytest.mark.parametrize("uses", ["{{env.TOKEN}}", "{{ vault.TOKEN }}", "Bearer {{TOKEN}}"])
def test_every_reference_form_makes_a_bind_required(tmp_path: Path, uses: str) -> None:
    doc = with_binds([{"namespace": "vault", "keys": {"TOKEN": "PROVIDER_TOKEN"}}], uses)
    assert load_errors(write(tmp_path, doc))


def test_missing_unused_bind_is_a_warning(tmp_path: Path) -> None:
    doc = with_binds([{"keys": {"UNUSED": "NOT_SET_ANYWHERE"}}], uses="static")
    loaded = load_capability(write(tmp_path, doc), env={})
    (warning,) = [d for d in loaded.diagnostics if "UNUSED" in d.message]
    assert warning.severity == "warning" and "nothing in the document uses it" in warning.message


def test_missing_binds_are_warnings_when_not_serving(tmp_path: Path) -> None:
    doc = with_binds([{"keys": {"TOKEN": "PROVIDER_TOKEN"}}])
    loaded = load_capability(write(tmp_path, doc), env={}, require_binds=False)
    assert [d.severity for d in loaded.diagnostics] == ["warning"]


def test_bind_used_only_by_an_imported_file_is_required(tmp_path: Path) -> None:
    shared = shared_file(tmp_path, "shared.yaml", "hello")
    shared.write_text(
        shared.read_text().replace("name: get-r", "name: get-r\n      path: /{{TOKEN}}")
    )
    doc = importing_doc({"location": "shared.yaml", "import": "hello"})
    doc["binds"] = [{"keys": {"TOKEN": "PROVIDER_TOKEN"}}]
    assert load_errors(write(tmp_path, doc))


def test_missing_bind_file_and_missing_key(tmp_path: Path) -> None:
    doc = with_binds([{"location": "file:///./nope.yaml", "keys": {"TOKEN": "token"}}])
    (error,) = load_errors(write(tmp_path, doc))
    assert "bind file not found" in error and str(tmp_path / "nope.yaml") in error
    (tmp_path / "s.json").write_text(json.dumps({"other": SECRET}))
    doc = with_binds([{"location": "./s.json", "keys": {"TOKEN": "token"}}])
    (error,) = load_errors(write(tmp_path, doc))
    assert "key 'token' not found in bind file" in error and SECRET not in error


def test_unsupported_scheme_is_reported(tmp_path: Path) -> None:
    doc = with_binds([{"location": "vault://secret/x", "keys": {"TOKEN": "token"}}])
    (error,) = load_errors(write(tmp_path, doc))
    assert "unsupported location scheme" in error


def test_secret_values_never_appear_in_messages_or_reprs(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(f"token: {SECRET}\nbroken: [{SECRET}\n")
    doc = with_binds(
        [
            {"namespace": "env", "keys": {"TOKEN": "PROVIDER_TOKEN", "GONE": "UNSET"}},
            {"namespace": "file", "location": "./s.yaml", "keys": {"X": "token"}},
        ],
        uses="{{TOKEN}}",
    )
    doc["capability"]["exposes"][0]["port"] = SECRET  # a wrong type quoting a secret
    with pytest.raises(LoadError) as exc:
        load_capability(write(tmp_path, doc), env={"PROVIDER_TOKEN": SECRET})
    text = str(exc.value) + "".join(d.format() + repr(d) for d in exc.value.diagnostics)
    assert SECRET not in text
    doc["capability"]["exposes"][0]["port"] = 8080
    (tmp_path / "s.yaml").write_text(f"token: {SECRET}\n")
    loaded = load_capability(write(tmp_path, doc), env={"PROVIDER_TOKEN": SECRET})
    shown = (
        repr(loaded.bindings)
        + str(loaded.bindings)
        + "".join(d.format() for d in loaded.diagnostics)
    )
    assert SECRET not in shown and "TOKEN" in repr(loaded.bindings)
    with pytest.raises(TypeError):
        pickle.dumps(loaded.bindings)


def test_empty_bindings() -> None:
    empty = Bindings.empty()
    assert empty.get("X") is None and "X" not in empty and empty.names() == ()
    assert empty.secret_values() == frozenset()
