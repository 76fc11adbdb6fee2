"""Resolved ``binds``: variables from the environment or from ``file://`` locations.

A bind maps variable names to provider keys. Without ``location`` the value is the
environment variable named by the provider key; with a ``file://`` location (YAML, JSON
or ``.env``) it is that key of the file's root mapping. Relative locations
(``file:///./x``, ``file://./x``, ``./x``) resolve against the capability's directory,
not the working directory, so a capability behaves the same wherever it is started.

Values are secrets: nothing in this module puts a value into a message, a ``repr`` or an
exception. Diagnostics name the variable, the provider key and where it was looked up.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from naftiko.errors import LoadTimeError
from naftiko.spec.models import Binding
from naftiko.spec.source import PathT
from naftiko.template_syntax import REFERENCE_TAG

# ``{{ VAR }}``, ``{{ns.VAR}}``, ``{{env.VAR}}``, ``{{{VAR}}}``, sections ``{{#VAR}}``.


class Bindings:
    """Bound variables. ``repr`` and ``str`` list names only, never values."""

    __slots__ = ("_flat", "_namespaced")

    def __init__(self, entries: Iterable[tuple[str | None, str, str]] = ()) -> None:
        self._flat: dict[str, str] = {}
        self._namespaced: dict[str, dict[str, str]] = {}
        for namespace, name, value in entries:
            self._flat[name] = value  # later binds win, as in the reference engine
            if namespace:
                self._namespaced.setdefault(namespace, {})[name] = value

    @classmethod
    def empty(cls) -> Bindings:
        return cls()

    def get(self, name: str) -> str | None:
        """``VAR``, ``ns.VAR`` or ``env.VAR``."""
        if name in self._flat:
            return self._flat[name]
        namespace, _, var = name.partition(".")
        if var:
            if namespace in self._namespaced:
                return self._namespaced[namespace].get(var)
            if namespace == "env":
                return self._flat.get(var)
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._flat)

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat)

    def names(self) -> tuple[str, ...]:
        return tuple(self._flat)

    def namespaced(self) -> dict[str, dict[str, str]]:
        """``{namespace: {VAR: value}}`` for binds that declare a namespace."""
        return {ns: dict(values) for ns, values in self._namespaced.items()}

    def as_scope(self) -> Mapping[str, str]:
        """Flat ``VAR -> value`` (the templating scope's binds layer)."""
        return dict(self._flat)

    def secret_values(self) -> frozenset[str]:
        """Every non-empty value, for log redaction."""
        return frozenset(v for v in self._flat.values() if v)

    def __repr__(self) -> str:
        return f"Bindings(names={sorted(self._flat)!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would copy secrets somewhere unexpected
        raise TypeError("Bindings cannot be pickled")


def referenced_names(texts: Iterable[str]) -> frozenset[str]:
    """Every name used in a mustache tag of ``texts`` (``VAR``, ``ns.VAR``, ``env.VAR``)."""
    return frozenset(m.group(1) for text in texts for m in REFERENCE_TAG.finditer(text))


class BindLookupError(LoadTimeError):
    """A bind source cannot be read. The message names the file, never a value."""


def bind_file_path(location: str, base_dir: Path) -> Path:
    """Filesystem path of a bind or import ``location`` (``file://`` URI or plain path)."""
    if location.startswith("file:"):
        parts = urlsplit(location)
        raw = (
            unquote(parts.netloc + parts.path)
            if parts.netloc in (".", "..")
            else unquote(parts.path)
        )
        if raw.startswith("/./") or raw.startswith("/../"):
            raw = raw[1:]
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", location):
        raise BindLookupError(f"unsupported location scheme in {location!r}: use file://")
    else:
        raw = location
    path = Path(raw).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve()


def read_bind_file(path: Path) -> dict[str, Any]:
    """Root mapping of a YAML, JSON or ``.env`` file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BindLookupError(f"bind file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BindLookupError(f"cannot read bind file {path}: {type(exc).__name__}") from None
    name = path.name.lower()
    try:
        if name.endswith(".json"):
            data: Any = json.loads(text)
        elif name == ".env" or name.endswith(".env") or name.startswith(".env."):
            from dotenv import dotenv_values  # here, not at the top: only .env binds need it

            data = dict(dotenv_values(stream=io.StringIO(text)))
        else:
            data = yaml.load(text, Loader=yaml.CSafeLoader)
    except (ValueError, yaml.YAMLError):
        # the parser's message may quote the file's content: keep only the kind of error
        raise BindLookupError(f"bind file {path} is not valid for its format") from None
    if not isinstance(data, dict):
        raise BindLookupError(f"bind file {path} does not hold a mapping at its root")
    return data


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


MissingReport = Callable[[PathT, str, str], None]  # (path, variable, message)


def resolve_binds(
    binds: Iterable[tuple[PathT, Binding]],
    *,
    env: Mapping[str, str],
    base_dir: Path,
    missing: MissingReport,
) -> Bindings:
    """Resolve every bind in order; each value that cannot be found goes to ``missing``."""
    entries: list[tuple[str | None, str, str]] = []
    for path, bind in binds:
        source: dict[str, Any] | None = None
        problem = ""
        where = "the environment"
        if bind.location:
            try:
                file = bind_file_path(bind.location, base_dir)
                where = f"bind file {file}"
                source = read_bind_file(file)
            except BindLookupError as exc:
                problem = str(exc)
        for var, provider_key in bind.keys.items():
            key_path = (*path, "keys", var)
            if problem:
                missing(key_path, var, f"bind variable {var!r} unresolved: {problem}")
                continue
            value = (source if source is not None else env).get(provider_key)
            if value is None:
                looked = (
                    f"key {provider_key!r} not found in {where}"
                    if source is not None
                    else f"environment variable {provider_key!r} is not set"
                )
                missing(key_path, var, f"bind variable {var!r} unresolved: {looked}")
                continue
            entries.append((bind.namespace, var, _text(value)))
    return Bindings(entries)
