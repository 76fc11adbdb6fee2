"""Masking of the secrets we inject, in upstream answers on their way to a caller.

An upstream that echoes the request (many error pages do, and some successes) would hand
the caller the credentials the runtime added: bind values, outbound API keys, bearer
tokens, basic passwords, OAuth2 client secrets and access tokens. The engine masks them
once, right after an answer arrives (``Engine._masked``), so passthrough and mapped
bodies, orchestration steps, forwards, REST and MCP all see the same masked answer.

What is masked is decided at load (:func:`load_secrets`): every bind value of at least
``MIN_SECRET_LENGTH`` characters (except one that a consumed base URI starts with: an
address, whose masking would break the links an API returns), and each outbound
credential the document resolves from binds or literals, in every spelling the runtime
sends it with: raw, JSON-escaped, URL- and form-encoded, the cookie encoding, and a basic
credential's base64 ``user:password``. OAuth2 access tokens are fetched at run time: the
engine adds the ones its token cache holds (:meth:`SecretMask.plus`).

The cost when nothing matches is one substring search per secret over the body
(``bytes.__contains__`` for the prefix its spellings share); with nothing to mask, none.
A JSON body that holds a secret is parsed and written again with each string masked
(numbers and structure kept); any other body has its bytes replaced. Not masked: values
shorter than four characters (they would blank out ordinary words and numbers), a secret
echoed as a JSON number, or in a spelling the runtime does not use (hashed, split,
encoded some other way).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from naftiko import json_codec
from naftiko.templating import Scope, render_or_none
from naftiko.upstream.plans import ConsumesPlan

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SecretMask", "load_secrets", "spellings"]

MASK = "***"
_MASK_BYTES = MASK.encode()
MIN_SECRET_LENGTH = 4
# RFC 6265 cookie-octets sent unencoded by an API key in a cookie (``outbound_auth``).
_COOKIE_SAFE = "!#$%&'()*+-./:<=>?@[]^_`{|}~"


def spellings(secret: str) -> set[str]:
    """The forms ``secret`` takes in what the runtime sends: raw, JSON string (ASCII and
    UTF-8), URL path/query, form and cookie encodings."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret),
        quote(secret, safe=_COOKIE_SAFE),
    }


class SecretMask:
    """The spellings to mask, longest first (a secret holding another is masked whole)."""

    __slots__ = ("_encoded", "_needles", "_probes", "_secrets", "_texts")

    def __init__(self, secrets: Iterable[str] = (), encoded: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        self._encoded = frozenset(e for e in encoded if len(e) >= MIN_SECRET_LENGTH)
        forms: set[str] = set()
        # What a body is searched for first: the prefix every spelling of a secret starts
        # with (the text before its first character some encoding changes), so that a
        # clean body costs one search per secret, not one per spelling.
        probes: set[str] = set(self._encoded)
        for secret in self._secrets:
            spelled = spellings(secret)
            forms |= spelled
            common = _common_prefix(spelled)
            probes |= {common} if len(common) >= MIN_SECRET_LENGTH else spelled
        self._texts = tuple(sorted(forms | self._encoded, key=len, reverse=True))
        self._needles = tuple(text.encode() for text in self._texts)
        self._probes = tuple(probe.encode() for probe in probes)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def plus(self, secrets: Iterable[str]) -> SecretMask:
        """This mask and ``secrets`` (access tokens fetched at run time)."""
        return SecretMask((*self._secrets, *secrets), self._encoded)

    def text(self, text: str) -> str:
        """``text`` with every spelling masked."""
        for form in self._texts:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def content(self, content: bytes, json_body: bool) -> bytes | None:
        """``content`` masked, or None when it holds no spelling (the common case).

        A JSON body is masked string by string and written again, so that it stays
        JSON; when it does not parse (or cannot be written back), its bytes are masked.
        """
        if not any(probe in content for probe in self._probes):
            return None
        found = [needle for needle in self._needles if needle in content]
        if not found:
            return None
        if json_body:
            try:
                return json_codec.dumps(self._value(json_codec.loads(content)))
            except (ValueError, TypeError, RecursionError):
                pass  # not JSON after all: masked as bytes
        for needle in found:
            content = content.replace(needle, _MASK_BYTES)
        return content

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self._value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v) for v in value]
        return value


def _common_prefix(texts: Iterable[str]) -> str:
    """The longest text every one of ``texts`` starts with."""
    ordered = sorted(texts)
    first, last = ordered[0], ordered[-1]
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def load_secrets(
    bindings: Any, consumes: Mapping[str, ConsumesPlan]
) -> tuple[frozenset[str], frozenset[str]]:
    """``(secret values, extra encoded spellings)`` of a capability, decided at load.

    ``bindings`` is the loaded ``Bindings`` (or None). Credential fields are rendered
    with binds only: a field fed by the caller's inputs is the caller's own value.
    """
    values: set[str] = set(bindings.secret_values()) if bindings is not None else set()
    addresses = {
        value
        for value in values
        for plan in consumes.values()
        if plan.base_uri and _is_address(value) and plan.base_uri.startswith(value)
    }
    values -= addresses
    encoded: set[str] = set()
    scope = Scope(
        binds=bindings.as_scope() if bindings is not None else {},
        bind_namespaces=bindings.namespaced() if bindings is not None else {},
    )
    for plan in consumes.values():
        spec = plan.authentication
        if spec is None:
            continue
        for text in (spec.password, spec.token, spec.value, spec.client_secret):
            value = render_or_none(text, scope)
            if value:
                values.add(value)
        user, password = render_or_none(spec.username, scope), render_or_none(spec.password, scope)
        if user is not None and password:
            encoded.add(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
    return frozenset(values), frozenset(encoded)


def _is_address(value: str) -> bool:
    """An http(s) URL without credentials in it: where an API is, not a secret."""
    scheme, sep, rest = value.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and "@" not in rest.split("/")[0]
