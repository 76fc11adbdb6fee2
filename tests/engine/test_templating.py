"""Mustache rendering, scope precedence and ``with`` values (reference-semantics §2)."""

from __future__ import annotations

import json

import pytest

from naftiko.templating import (
    MISSING,
    Scope,
    TemplateError,
    compile_template,
    compile_value,
    format_value,
)

NS = ("shipyard-tools",)


def scope(**kwargs: object) -> Scope:
    kwargs.setdefault("input_namespaces", NS)
    return Scope(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- rendering


def test_missing_and_null_render_empty() -> None:
    template = compile_template("hello {{name}}/{{missing}}/{{nothing}}")
    assert template.render(scope(inputs={"name": "alice", "nothing": None})) == "hello alice//"


def test_arrays_and_objects_render_as_compact_json() -> None:
    template = compile_template('{"crewIds": {{crewIds}}, "meta": {{meta}}}')
    rendered = template.render(
        scope(inputs={"crewIds": ["CREW-001", "CREW-003"], "meta": {"a": 1, "b": [True]}})
    )
    assert rendered == '{"crewIds": ["CREW-001","CREW-003"], "meta": {"a":1,"b":[true]}}'


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (42, "42"), (2.5, "2.5"), (0, "0"), ("é", "é")],
)
def test_scalars(value: object, text: str) -> None:
    assert compile_template("{{v}}").render(scope(inputs={"v": value})) == text
    assert format_value(value) == text


def test_no_html_escaping() -> None:
    template = compile_template("{{v}}|{{{v}}}|{{&v}}")
    assert template.render(scope(inputs={"v": '<a href="x">&</a>'})) == (
        '<a href="x">&</a>|<a href="x">&</a>|<a href="x">&</a>'
    )


def test_whitespace_inside_tags() -> None:
    assert compile_template("{{ name }}").render(scope(inputs={"name": "n"})) == "n"


def test_sections_and_inverted_sections() -> None:
    template = compile_template("{{#ids}}[{{.}}]{{/ids}}{{^none}}empty{{/none}}{{#o}}{{k}}{{/o}}")
    rendered = template.render(scope(inputs={"ids": ["a", "b"], "o": {"k": "K"}}))
    assert rendered == "[a][b]emptyK"
    assert template.references == frozenset({"ids", "none", "o", "k"})


def test_section_falls_back_to_scope() -> None:
    template = compile_template("{{#items}}{{name}}-{{env.TOKEN}};{{/items}}")
    rendered = template.render(
        scope(binds={"TOKEN": "t"}, inputs={"items": [{"name": "x"}, {"name": "y"}]})
    )
    assert rendered == "x-t;y-t;"


@pytest.mark.parametrize("text", ["{{#open}}never closed", "{{/close}}", "{{#a}}{{/b}}"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(text)


def test_partials_are_refused() -> None:
    with pytest.raises(TemplateError, match="partials"):
        compile_template("{{>header}}")


def test_constant_templates() -> None:
    plain = compile_template("no tags here")
    assert plain.is_constant
    assert plain.references == frozenset()
    assert plain.render(Scope()) == "no tags here"
    assert plain.resolve(Scope()) == "no tags here"
    assert compile_template("{{! a comment }}x").render(Scope()) == "x"
    assert not compile_template("{{x}}").is_constant


def test_references_as_written() -> None:
    template = compile_template(
        "{{tools.body}} {{REGISTRY_TOKEN}} {{get-ship.vessel_name}} {{$this.ns.x}}"
    )
    assert template.references == frozenset(
        {"tools.body", "REGISTRY_TOKEN", "get-ship.vessel_name", "$this.ns.x"}
    )


# --------------------------------------------------------------------------- resolve


def test_lone_reference_keeps_type() -> None:
    template = compile_template("{{payload}}")
    payload = {"a": [1, 2]}
    assert template.resolve(scope(inputs={"payload": payload})) is payload
    assert template.resolve(scope()) is MISSING
    assert compile_template("{{n}}").resolve(scope(inputs={"n": 3})) == 3


def test_resolve_of_mixed_text_is_a_string() -> None:
    assert compile_template("n={{n}}").resolve(scope(inputs={"n": 3})) == "n=3"
    assert compile_template(" {{n}}").resolve(scope(inputs={"n": 3})) == " 3"


def test_missing_is_falsy_singleton() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"


# --------------------------------------------------------------------------- scope


def test_binds_win_over_every_other_layer() -> None:
    s = scope(
        binds={"TOKEN": "secret"},
        with_values={"TOKEN": "with"},
        inputs={"TOKEN": "caller"},
        steps={"TOKEN": "step"},
    )
    assert compile_template("{{TOKEN}}").render(s) == "secret"


def test_precedence_with_then_steps_then_inputs() -> None:
    s = scope(
        with_values={"a": "w"}, inputs={"a": "i", "b": "i", "d": "i"}, steps={"a": "s", "b": "s"}
    )
    assert [s.lookup(name) for name in "abd"] == ["w", "s", "i"]


def test_a_caller_input_never_answers_for_a_step_output() -> None:
    """Issue 15: ``get-profile.tenant`` is the step's, whether the caller sends the dotted
    key or a nested object, and even when the step's output lacks the field."""
    steps = {"get-profile": {"tenant": "A"}}
    dotted = scope(inputs={"get-profile.tenant": "B"}, steps=steps)
    nested = scope(inputs={"get-profile": {"tenant": "C", "user": "x"}}, steps=steps)
    assert dotted.lookup("get-profile.tenant") == "A"
    assert nested.lookup("get-profile.tenant") == "A"
    assert nested.lookup("get-profile.user") is MISSING
    assert compile_template("{{get-profile.tenant}}").render(nested) == "A"
    # The caller's own namespace still reads the caller's values.
    assert nested.lookup("tools.get-profile.tenant") == "C"


def test_a_caller_key_spelled_like_a_bind_never_answers_for_it() -> None:
    s = scope(
        binds={"K": "secret"},
        bind_namespaces={"cfg": {"K": "secret"}},
        inputs={"cfg.K": "caller", "env.K": "caller", "cfg.OTHER": "caller"},
    )
    assert s.lookup("cfg.K") == "secret"
    assert s.lookup("env.K") == "secret"
    assert s.lookup("cfg.OTHER") is MISSING


def test_env_and_bind_namespaces() -> None:
    s = scope(
        binds={"REGISTRY_TOKEN": "tok"},
        bind_namespaces={"registry-env": {"REGISTRY_TOKEN": "tok"}},
        inputs={"env": {"REGISTRY_TOKEN": "caller"}},
    )
    assert s.lookup("env.REGISTRY_TOKEN") == "tok"
    assert s.lookup("registry-env.REGISTRY_TOKEN") == "tok"
    assert s.lookup("env.UNKNOWN") is MISSING
    assert s.lookup("registry-env.UNKNOWN") is MISSING


@pytest.mark.parametrize(
    "name", ["tools.imo", "rest.imo", "shipyard-tools.imo", "$this.shipyard-tools.imo"]
)
def test_input_namespace_forms(name: str) -> None:
    s = scope(inputs={"imo": "IMO-1"})
    assert s.lookup(name) == "IMO-1"
    assert compile_template("{{" + name + "}}").render(s) == "IMO-1"


def test_input_forms_prefer_with_values_and_never_read_binds_or_steps() -> None:
    s = scope(
        binds={"imo": "secret"},
        with_values={"imo": "from-with"},
        inputs={"imo": "from-input"},
        steps={"status": "step"},
    )
    assert s.lookup("tools.imo") == "from-with"
    assert s.lookup("tools.status") is MISSING
    assert scope(binds={"K": "v"}).lookup("tools.K") is MISSING


def test_unknown_namespace_is_not_an_input() -> None:
    assert scope(inputs={"imo": "x"}).lookup("other-ns.imo") is MISSING


def test_step_outputs_by_dotted_walk() -> None:
    s = scope(
        steps={"get-ship": {"vessel_name": "Northern Star", "specs": {"l": 120}, "t": [1, 2]}}
    )
    assert s.lookup("get-ship.vessel_name") == "Northern Star"
    assert s.lookup("get-ship.specs.l") == 120
    assert s.lookup("get-ship.t.1") == 2
    assert s.lookup("get-ship.t.9") is MISSING
    assert s.lookup("get-ship.nope") is MISSING
    assert s.lookup("get-ship.vessel_name.deeper") is MISSING


def test_exact_dotted_key_wins_over_walk() -> None:
    s = scope(inputs={"a.b": "exact", "a": {"b": "walked"}})
    assert s.lookup("a.b") == "exact"


def test_walk_falls_through_layers() -> None:
    s = scope(with_values={"x": {"other": 1}}, steps={"x": {"y": "step"}})
    assert s.lookup("x.y") == "step"


def test_with_child_and_with_step_share_binds() -> None:
    base = scope(binds={"K": "v"}, inputs={"a": 1})
    child = base.with_child(with_values={"b": 2})
    assert (child.lookup("K"), child.lookup("a"), child.lookup("b")) == ("v", 1, 2)
    stepped = child.with_step("s1", {"out": 3})
    assert stepped.lookup("s1.out") == 3
    assert child.lookup("s1.out") is MISSING  # the parent is not changed
    assert stepped.lookup("tools.b") == 2


def test_repr_never_shows_values() -> None:
    text = repr(scope(binds={"K": "s3cr3t"}, inputs={"a": "tok-123"}))
    assert "s3cr3t" not in text
    assert "tok-123" not in text


# --------------------------------------------------------------------------- with values


def test_input_reference_values() -> None:
    s = scope(inputs={"imo": "IMO-1", "ids": [1, 2]})
    for raw in ("tools.imo", "rest.imo", "shipyard-tools.imo", "$this.shipyard-tools.imo"):
        expr = compile_value(raw, NS)
        assert expr.is_input_reference
        assert expr.input_references == frozenset({"imo"})
        assert expr.evaluate(s) == "IMO-1"
    ids = compile_value("tools.ids", NS)
    assert ids.evaluate(s) == [1, 2]
    assert compile_value("tools.missing", NS).evaluate(s) is MISSING


def test_template_values() -> None:
    s = scope(inputs={"x": [1], "y": "why"})
    lone = compile_value("{{tools.x}}", NS)
    assert not lone.is_input_reference
    assert lone.input_references == frozenset({"x"})
    assert lone.evaluate(s) == [1]
    mixed = compile_value("a-{{y}}-{{shipyard-tools.y}}", NS)
    assert mixed.evaluate(s) == "a-why-why"
    assert mixed.input_references == frozenset({"y"})
    assert mixed.references == frozenset({"y", "shipyard-tools.y"})
    assert compile_value("{{nothing}}", NS).evaluate(s) is MISSING


@pytest.mark.parametrize("raw", ["location", "other-ns.x", "x.y", "tools.", "tools. x", ""])
def test_literal_strings(raw: str) -> None:
    expr = compile_value(raw, NS)
    assert not expr.is_input_reference
    assert expr.input_references == frozenset()
    assert expr.evaluate(scope(inputs={"x": "no"})) == raw


def test_without_namespaces_only_rest_tools_this_are_references() -> None:
    assert compile_value("shipyard-tools.imo", ()).evaluate(Scope(inputs={"imo": 1})) == (
        "shipyard-tools.imo"
    )
    assert compile_value("tools.imo", ()).evaluate(Scope(inputs={"imo": 1})) == 1


@pytest.mark.parametrize("raw", [5, 2.5, True, False, None])
def test_non_string_literals(raw: object) -> None:
    assert compile_value(raw, NS).evaluate(scope()) == raw


def test_structures_render_template_leaves_keeping_types() -> None:
    raw = {"a": "{{n}}", "b": ["{{ids}}", 1, "plain"], "c": {"d": "x-{{n}}"}, "e": "{{gone}}"}
    expr = compile_value(raw, NS)
    value = expr.evaluate(scope(inputs={"n": 7, "ids": ["i"]}))
    assert value == {"a": 7, "b": [["i"], 1, "plain"], "c": {"d": "x-7"}, "e": None}
    assert raw["a"] == "{{n}}"  # the document is not mutated
    assert expr.references == frozenset({"n", "ids", "gone"})


def test_constant_structures_are_literals() -> None:
    raw = {"a": [1, "b"]}
    expr = compile_value(raw, NS)
    assert expr.is_constant
    assert expr.evaluate(scope()) == raw


def test_structure_input_references() -> None:
    expr = compile_value({"q": "{{tools.query}}", "n": "{{rest.n}}"}, NS)
    assert expr.input_references == frozenset({"query", "n"})


# --------------------------------------------------------------------------- contexts

INJECTION = 'IMO-1", "status": "approved", "approvedBy": "attacker'


def test_json_context_escapes_inside_strings_and_renders_values_outside() -> None:
    template = compile_template(
        '{"ship": "{{ship}}", "crew": {{crew}}, "n": {{n}}, "c": {{c}}}', "json"
    )
    s = scope(inputs={"ship": INJECTION, "crew": ["a", 'b"'], "n": "7"})
    assert json.loads(template.render(s)) == {
        "ship": INJECTION,
        "crew": ["a", 'b"'],
        "n": 7,
        "c": None,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('1, "approvedBy": "x"', '1, "approvedBy": "x"'),
        ("-2.5e3", -2500.0),
        ("true", True),
        (True, True),
        (3, 3),
        ({"a": [1]}, {"a": [1]}),
        ("plain", "plain"),
        (None, None),
        ("", ""),
        (float("nan"), "nan"),
    ],
)
def test_json_context_bare_value_is_one_json_value(value: object, expected: object) -> None:
    template = compile_template('{"v": {{v}}}', "json")
    assert json.loads(template.render(scope(inputs={"v": value}))) == {"v": expected}


def test_json_context_string_state_survives_escaped_quotes_and_sections() -> None:
    template = compile_template(
        '{"a": "x\\"{{p}}", "ids": [{{#ids}}"{{.}}",{{/ids}}"end"], "b": {{q}}}', "json"
    )
    s = scope(inputs={"p": 'p"', "ids": ['1"', "2"], "q": 'q"'})
    assert json.loads(template.render(s)) == {"a": 'x"p"', "ids": ['1"', "2", "end"], "b": 'q"'}


def test_triple_braces_are_raw_in_every_context() -> None:
    template = compile_template('{"raw": {{{raw}}}, "amp": {{&raw}}}', "json")
    s = scope(inputs={"raw": '{"deck": 1}'})
    assert json.loads(template.render(s)) == {"raw": {"deck": 1}, "amp": {"deck": 1}}


def test_a_lone_reference_keeps_its_value_in_a_context() -> None:
    template = compile_template("{{body}}", "json")
    assert template.resolve(scope(inputs={"body": '{"a": 1}'})) == '{"a": 1}'


def test_xml_context_escapes_markup_and_quotes() -> None:
    template = compile_template("<v a=\"{{x}}\" b='{{x}}'>{{x}}</v>", "xml")
    text = template.render(scope(inputs={"x": "<&\"'>"}))
    assert text == (
        "<v a=\"&lt;&amp;&quot;&apos;&gt;\" b='&lt;&amp;&quot;&apos;&gt;'>"
        "&lt;&amp;&quot;&apos;&gt;</v>"
    )


def test_form_context_percent_encodes_each_value() -> None:
    template = compile_template("a={{x}}&b=2", "form")
    assert template.render(scope(inputs={"x": "1&b=3 +"})) == "a=1%26b%3D3+%2B&b=2"


def test_text_context_is_unchanged_and_contexts_are_cached_apart() -> None:
    assert compile_template('"{{x}}"').render(scope(inputs={"x": '"'})) == '"""'
    assert compile_template('"{{x}}"', "json") is not compile_template('"{{x}}"')
    with pytest.raises(ValueError):
        compile_template("{{x}}", "yaml")
