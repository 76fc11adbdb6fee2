"""Prompt rendering, independent of any protocol (MCP ``prompts/get`` uses it).

A prompt is an inline list of messages (or one string, a single user message) or a file
(``location: file://...``, one user message). ``{{arg}}`` placeholders are replaced by the
argument values in **one pass**, so a value that itself contains ``{{x}}`` stays literal
(no injection through arguments). A placeholder with no value is left as written, as in
the reference engine, so an optional argument the caller omitted is visible rather than
silently blank. Required arguments (the default) are enforced before rendering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from naftiko.engine.static_files import resolve_file_location
from naftiko.errors import CallerError
from naftiko.spec.models import McpPrompt
from naftiko.template_syntax import PROMPT_PLACEHOLDER


class PromptError(ValueError, CallerError):
    """A prompt could not be rendered; the message is safe to show to the caller."""


class MissingArgument(PromptError):
    def __init__(self, prompt: str, argument: str) -> None:
        super().__init__(f"prompt {prompt!r} requires argument {argument!r}")
        self.argument = argument


class PromptFileError(PromptError):
    """The prompt's file is missing or unreadable: the document's fault, not the caller's."""


@dataclass(frozen=True, slots=True)
class PromptArgument:
    name: str
    title: str | None
    description: str | None
    required: bool


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: str  # "user" or "assistant"
    text: str


def render_text(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{{name}}`` with ``values[name]``; unknown placeholders stay literal."""

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else str(value)

    return PROMPT_PLACEHOLDER.sub(replace, template)


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """A declared prompt, ready to list and render."""

    name: str
    title: str | None
    description: str | None
    arguments: tuple[PromptArgument, ...]
    messages: tuple[PromptMessage, ...]  # inline templates; empty for file prompts
    file: Path | None

    @classmethod
    def compile(cls, spec: McpPrompt, base_dir: str) -> CompiledPrompt:
        """Build from the document; a file location is resolved now, read at render time."""
        arguments = tuple(
            PromptArgument(
                name=a.name,
                title=a.label,
                description=a.description,
                required=a.required is not False,
            )
            for a in spec.arguments
        )
        if isinstance(spec.template, str):
            messages: tuple[PromptMessage, ...] = (PromptMessage("user", spec.template),)
        else:
            messages = tuple(
                PromptMessage(m.role or "user", m.content) for m in spec.template or ()
            )
        file = resolve_file_location(spec.location, base_dir) if spec.location else None
        return cls(spec.name, spec.label, spec.description, arguments, messages, file)

    def render(self, values: Mapping[str, str] | None) -> list[PromptMessage]:
        """The messages with arguments substituted; raises :class:`PromptError`."""
        values = values or {}
        for argument in self.arguments:
            if argument.required and values.get(argument.name) is None:
                raise MissingArgument(self.name, argument.name)
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                raise PromptFileError(
                    f"prompt file not found or unreadable for {self.name!r}"
                ) from None
            return [PromptMessage("user", render_text(text, values))]
        return [PromptMessage(m.role, render_text(m.text, values)) for m in self.messages]
