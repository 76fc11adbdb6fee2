"""Tests of the one definition of the ``{{ name }}`` syntax (``spec/template_syntax.py``):
each user's slice, so a change to a shared piece shows where it lands."""

from __future__ import annotations

import re

from naftiko.template_syntax import (
    CONSUMED_PATH_VARIABLE,
    PATH_VARIABLE,
    PROMPT_PLACEHOLDER,
    REFERENCE_TAG,
    VARIABLE_TAG,
    has_tags,
)


def _names(pattern: re.Pattern[str], text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in pattern.finditer(text)]


def test_each_slice_of_the_syntax() -> None:
    text = "{{a}} {{ env.B }} {{{raw}}} {{#sec}}{{/sec}} {single} {{x y}}"
    assert _names(REFERENCE_TAG, text) == ["a", "env.B", "raw", "sec", "sec"]
    assert _names(VARIABLE_TAG, text) == ["a", "env.B", "raw", "#sec", "/sec"]
    assert _names(PATH_VARIABLE, "/a/{id}/{{ sub }}/{{path}}") == ["id", "sub", "path"]
    assert _names(CONSUMED_PATH_VARIABLE, "/a/{id}/{{ x y }}") == ["id", "x y"]
    assert _names(PROMPT_PLACEHOLDER, "{{ who }} {{a.b}} {{ok_1}}") == ["who", "ok_1"]


def test_has_tags() -> None:
    assert has_tags("x {{y}}")
    assert not has_tags("x {y}")
