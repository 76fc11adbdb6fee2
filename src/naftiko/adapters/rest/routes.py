"""REST route paths: spelling, matching and the paths the REST adapter reserves.

Shared by the compiler (a resource that would be shadowed by a reserved path is a load
error) and the REST adapter (request routing), so both agree on what a path matches.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from naftiko.template_syntax import PATH_VARIABLE

__all__ = [
    "OPENAPI_PATH",
    "normalize_route_path",
    "route_pattern",
    "shadowing_reserved_path",
]

OPENAPI_PATH = "/.well-known/openapi.json"
"""Served by every REST adapter (its OpenAPI document); no resource may declare it."""

# Characters that may appear unencoded in a path segment (RFC 3986 pchar minus "%").
_PCHAR_SAFE = "/:@!$&'()*+,;=-._~"


def normalize_route_path(path: str) -> str:
    """``/ships/{{imo}}`` -> ``/ships/{imo}`` (both spellings are accepted)."""
    return re.sub(r"\{\{\s*([^{}]+?)\s*\}\}", r"{\1}", path)


@functools.lru_cache(maxsize=4096)
def route_pattern(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex over the *raw* (percent-encoded) request path, and its variable names.

    Groups are positional (``v0``, ``v1``...) because variable names need not be valid
    group names. A final ``/{path}`` also matches the bare prefix (empty remainder) and
    keeps a trailing slash as part of the remainder; any other path accepts one optional
    trailing slash.

    Cached: the compiler's reserved-path check and the adapter's routing ask for the same
    paths, and the documents of a folder share many (a pattern is immutable).
    """
    template = path if path.startswith("/") else "/" + path
    names: list[str] = []
    regex: list[str] = []
    pos = 0
    matches = list(PATH_VARIABLE.finditer(template))
    rest_tail = False
    for index, match in enumerate(matches):
        literal = template[pos : match.start()]
        name = match.group(1)
        group = f"v{len(names)}"
        names.append(name)
        is_last = index == len(matches) - 1 and match.end() == len(template)
        if name == "path" and is_last and literal.endswith("/"):
            regex.append(re.escape(quote(literal[:-1], safe=_PCHAR_SAFE)))
            regex.append(f"(?:/(?P<{group}>.*))?")
            rest_tail = True
        else:
            regex.append(re.escape(quote(literal, safe=_PCHAR_SAFE)))
            regex.append(f"(?P<{group}>.*)" if name == "path" else f"(?P<{group}>[^/]+)")
        pos = match.end()
    if not rest_tail:
        tail = template[pos:].rstrip("/")
        regex.append(re.escape(quote(tail, safe=_PCHAR_SAFE)))
        regex.append("/?")
    return re.compile("".join(regex)), tuple(names)


def shadowing_reserved_path(path: str) -> str | None:
    """The reserved path a resource ``path`` would also match, or None."""
    if "{" not in path and "well-known" not in path:
        # Literal text matches only itself; compiling a pattern for every route of a
        # thousand documents just to learn that was a twentieth of their start.
        return None
    template = path if path.startswith("/") else "/" + path
    head = template.split("{", 1)[0].rstrip("/")
    if not OPENAPI_PATH.startswith(quote(head, safe=_PCHAR_SAFE)):
        # The pattern starts with this literal text (a final ``/{path}`` makes only its
        # last slash optional): it cannot match a path that does not start with it.
        return None
    pattern, _ = route_pattern(path)
    return OPENAPI_PATH if pattern.fullmatch(OPENAPI_PATH) else None
