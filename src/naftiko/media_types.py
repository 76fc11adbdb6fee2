"""Media types (``Content-Type`` values): the one place they are parsed and classified.

A value is ``type/subtype`` followed by ``;``-separated parameters (RFC 9110 §8.3.1).
Type, subtype and parameter names are case-insensitive, so the essence is lower-cased;
parameter values are kept as written (quotes dropped). Engine and adapters both use this
module, as does the upstream client: it sits below every layer and imports nothing of ours.
These functions run on the request path: string methods only, no regular expression.
"""

from __future__ import annotations

JSON_MEDIA_TYPE = JSON = "application/json"
PROBLEM_MEDIA_TYPE = "application/problem+json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MULTIPART_MEDIA_TYPE = "multipart/form-data"
OCTET_STREAM = "application/octet-stream"


def as_written(value: str | None) -> str:
    """``type/subtype`` with its case kept and the parameters dropped; "" when absent.

    For echoing an upstream's own media type back (MCP ``mimeType``, messages).
    """
    return (value or "").split(";", 1)[0].strip()


def essence(value: str | None) -> str:
    """``type/subtype`` lower-cased, parameters dropped; "" when absent."""
    return (value or "").split(";", 1)[0].strip().lower()


def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``(essence, parameters)``: names lower-cased, values unquoted; a repeat wins last."""
    if not value:
        return "", {}
    main, *pairs = value.split(";")
    params: dict[str, str] = {}
    for pair in pairs:
        name, _, param = pair.partition("=")
        params[name.strip().lower()] = param.strip().strip('"')
    return main.strip().lower(), params


def media_and_charset(value: str | None) -> tuple[str, str | None]:
    """``(essence, charset or None)``: :func:`parse_media_type` for the one parameter a
    request body needs, without building the dict (REST runs it on every body)."""
    if not value:
        return "", None
    main, *pairs = value.split(";")
    charset = None
    for pair in pairs:
        name, _, param = pair.partition("=")
        if name.strip().lower() == "charset":
            charset = param.strip().strip('"') or None
    return main.strip().lower(), charset


def is_json(value: str | None) -> bool:
    """JSON by its media type: ``application/json`` or any ``+json`` suffix (RFC 6839)."""
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()  # essence(), inlined: once per answer
    return media == JSON or media.endswith("+json")


def is_json_request_body(media: str) -> bool:
    """A request body we parse as JSON: ``application/json`` or ``application/*+json``.

    Stricter than :func:`is_json` (``text/x+json`` is not taken); ``media`` is an essence.
    """
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))
