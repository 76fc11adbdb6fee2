"""Redaction: the secrets a log line must never carry, found and replaced.

Two layers: the exact values of every bind (``Bindings.secret_values()``, in every
spelling a value takes inside a message), and patterns for credentials that never went
through a bind (Authorization headers, bearer tokens, ``client_secret=...`` in a form
body echoed by an error message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # shorter bind values would blank out ordinary words and numbers

# Field names whose value is a credential, in forms, JSON, query strings and headers.
SECRET_NAMES = (
    "client_secret",
    "client_assertion",
    "access_token",
    "refresh_token",
    "id_token",
    "code_verifier",
    "code",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
)
_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
# "name": "value"  /  'name': 'value'  (JSON, Python reprs); the value may hold spaces.
_QUOTED = re.compile(
    rf"""(?ix)(?<![\w-])(["']?)({_NAMES})\1(\s*[:=]\s*)(["'])((?:\\.|(?!\4).)*)\4"""
)
# name=value / name: value (forms, query strings, headers); value runs to a delimiter.
# ``Authorization: Bearer xyz`` keeps the scheme word out of the value.
_BARE = re.compile(
    rf"""(?ix)(?<![\w-])({_NAMES})(\s*[:=]\s*)(?!["'\s])((?:bearer|basic|digest)\s+)?([^\s&,;"'}}\]]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|digest)(\s+)([A-Za-z0-9._~+/=-]{6,})")


class Redactor:
    """Replaces secrets in text. Bind values can be added at reload time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # Bumped whenever the secrets change: verdicts cached on text ("this prefix
        # is clean") are only valid for the generation they were made in.
        self.generation = 0
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        if not fresh - self._secrets:
            return
        self._secrets |= fresh
        # Longest first, so a secret containing another is replaced whole; also match
        # the URL-encoded and JSON-escaped spellings a value takes inside messages.
        spellings: set[str] = set()
        for secret in self._secrets:
            spellings.add(secret)
            spellings.add(json.dumps(secret)[1:-1])
            spellings.add(quote(secret, safe=""))
            spellings.add(quote_plus(secret))
        ordered = sorted(spellings, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        self.generation += 1

    def holds_secret_value(self, text: str) -> bool:
        """Whether ``text`` contains a bind value (any spelling); the patterns are not run."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        text = _QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{REDACTED}{m[4]}", text)
        text = _BARE.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{REDACTED}", text)
        return _BEARER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)

    def redact_value(self, value: Any, key: str | None = None) -> Any:
        """Redact a structured ``extra`` value: secret-named keys lose their value."""
        if key is not None and key.lower() in SECRET_NAMES and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {str(k): self.redact_value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact(str(value))
