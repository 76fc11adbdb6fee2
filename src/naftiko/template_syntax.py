"""The ``{{ name }}`` template-variable syntax: the one place its patterns are defined.

Templates proper (bodies, headers, ``with`` values) are parsed by pystache in
``engine/templating.py``; the users below only need to find variable tags, and each takes
its own slice of the syntax. All of them are built here from the same pieces, so a change
to the syntax is made once and the differences stand side by side. ``spec`` is the lowest
layer (it imports nothing of ours), so the engine and the adapters can all import this.

* :data:`REFERENCE_TAG` — binds (``referenced_names``): any mustache tag, section and raw
  sigils included (``{{#x}}``, ``{{{x}}}``, ``{{& x}}``); names of word characters, dots,
  ``$`` and ``-``.
* :data:`VARIABLE_TAG` — inbound authentication fields: ``{{x}}`` or ``{{{x}}}``; a name is
  anything but braces and white space.
* :data:`PATH_VARIABLE` — exposed paths (REST routes, OpenAPI, MCP resources): ``{x}`` or
  ``{{x}}``.
* :data:`CONSUMED_PATH_VARIABLE` — consumed operation paths: ``{{ x }}`` (group 1; a name may
  hold spaces) or ``{x}`` without a slash (group 2).
* :data:`PROMPT_PLACEHOLDER` — MCP prompt text: ``{{ name }}`` of ASCII letters, digits, ``_``.
"""

from __future__ import annotations

import re

__all__ = [
    "CONSUMED_PATH_VARIABLE",
    "OPEN",
    "PATH_VARIABLE",
    "PROMPT_PLACEHOLDER",
    "REFERENCE_TAG",
    "VARIABLE_TAG",
    "has_tags",
]

OPEN = "{{"  # a string without it holds no tag (the cheap test before any parsing)

# The pieces, as regular-expression source. Built by concatenation: in an f-string every
# brace of the syntax would have to be doubled again.
_OPEN = r"\{\{"
_CLOSE = r"\}\}"
_THIRD_CLOSE = r"\}?"  # the closing brace of a triple-brace (raw) tag
_PAD = r"\s*"

REFERENCE_TAG = re.compile(
    _OPEN + r"[{#^&/]?" + _PAD + r"([A-Za-z_$][\w.$-]*)" + _PAD + _THIRD_CLOSE + _CLOSE
)
VARIABLE_TAG = re.compile(_OPEN + r"\{?" + _PAD + r"([^{}\s]+)" + _PAD + _THIRD_CLOSE + _CLOSE)
PATH_VARIABLE = re.compile(r"\{\{?" + _PAD + r"([^{}\s]+?)" + _PAD + r"\}?\}")
CONSUMED_PATH_VARIABLE = re.compile(_OPEN + _PAD + r"([^{}]+?)" + _PAD + _CLOSE + r"|\{([^{}/]+)\}")
PROMPT_PLACEHOLDER = re.compile(_OPEN + _PAD + r"([A-Za-z0-9_]+)" + _PAD + _CLOSE)


def has_tags(text: str) -> bool:
    """Whether ``text`` may hold a template tag (else it is taken literally)."""
    return OPEN in text
