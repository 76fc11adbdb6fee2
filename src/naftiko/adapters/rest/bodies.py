"""The REST adapter's request bodies: the four kinds (none, JSON, form, multipart)
read and parsed, and the checks that refuse a body before or after parsing (415 for a
media type the operation does not take, 400 for a malformed, null or unread body)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message, Scope

from naftiko import json_codec
from naftiko.adapters.http.common import problem_fields
from naftiko.adapters.rest.routing import Operation
from naftiko.engine.types import FORM_MEDIA_TYPE
from naftiko.errors import CallerError
from naftiko.media_types import is_json_request_body

__all__ = [
    "Refused",
    "bad_request",
    "check_media_type",
    "check_null_body",
    "check_unread_body",
    "empty_body",
    "parse_body",
    "parse_multipart",
]


class Refused(CallerError):
    """A request we answer ourselves with a problem (400, 413, 415)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields["title"])
        self.fields = fields


def _multi_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Pairs to a dict; a repeated key becomes a list of its values in order."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in result:
            result[key] = value
        elif isinstance(result[key], list):
            result[key].append(value)
        else:
            result[key] = [result[key], value]
    return result


def bad_request(title: str, detail: str, parameter: str | None = None) -> Refused:
    return Refused(problem_fields(400, title, detail, "validation", parameter=parameter))


def parse_body(raw: bytes, media: str, charset: str | None) -> tuple[Any, str]:
    """A non-empty body of a media type the operation takes (``check_media_type``), as
    the engine wants it, and its kind (json/form).

    ``media``/``charset`` as :func:`media_and_charset` gives them; multipart is
    :func:`parse_multipart`'s (the only one that awaits).
    """
    if media == FORM_MEDIA_TYPE:
        try:
            pairs = parse_qsl(
                raw.decode("latin-1"),
                keep_blank_values=True,
                encoding=charset or "utf-8",
                errors="strict",
            )
        except (UnicodeDecodeError, LookupError):
            raise bad_request("Malformed form body", "The form body is not valid UTF-8.") from None
        return _multi_dict(pairs), "form"
    try:
        return json_codec.loads(raw), "json"
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot be decoded"
        detail = f"The request body is not JSON: {reason}."
        raise bad_request("Malformed JSON body", detail) from None


async def parse_multipart(scope: Scope, raw: bytes) -> dict[str, Any]:
    """Multipart fields as strings, files as their bytes (kept simple on purpose)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    # Without "app" in the scope Starlette raises its MultiPartException (which also wraps
    # python-multipart's errors) instead of an HTTPException that would escape as a 500.
    form_scope = {key: value for key, value in scope.items() if key != "app"}
    try:
        form = await Request(form_scope, replay).form()
    except (MultiPartException, ValueError):
        detail = "The multipart body cannot be parsed."
        raise bad_request("Malformed multipart body", detail) from None
    pairs: list[tuple[str, Any]] = []
    try:
        for key, value in form.multi_items():
            pairs.append((key, await value.read() if isinstance(value, UploadFile) else value))
    finally:
        await form.close()
    return _multi_dict(pairs)


def check_media_type(operation: Operation, media: str) -> None:
    """415 unless a body's media type is JSON or one the document declares (form,
    multipart). What a browser sends cross-site without a preflight (form, multipart,
    ``text/plain``) or a body without a Content-Type never runs a JSON operation.

    A JSON body of the wrong shape (an array, a string) is not a media type problem: the
    engine's validation answers it with a 400 naming the missing field.
    """
    if not (is_json_request_body(media) or media in operation.unit.body_media):
        raise Refused(operation.unsupported)


def empty_body(operation: Operation, media: str) -> tuple[Any, str]:
    """An empty body: a form with no fields where the operation takes forms (its schema
    is an object), else nothing at all."""
    if media == FORM_MEDIA_TYPE and media in operation.unit.body_media:
        return {}, "form"
    return None, "none"


def check_null_body(operation: Operation, kind: str, body: Any) -> None:
    """400 for a JSON ``null`` where the OpenAPI document promises an object of fields.

    ``null`` is a body that was sent, not an absent one: reading no field from it would
    accept what the served contract refuses (schemathesis sends it).
    """
    if operation.reads_fields and kind == "json" and body is None:
        raise bad_request(
            "Invalid request body",
            "The request body is JSON null; this operation reads fields of a JSON object.",
            parameter="body",
        )


def check_unread_body(operation: Operation, kind: str, body: Any) -> None:
    """400 for a body no input reads: it would be dropped on the way to the upstream.

    A JSON or form object with a field named like an input, or like a name the unit's
    templates read (``Unit.reads``), is read (leniently, as undeclared fields are); an
    empty one carries nothing to drop.
    """
    if operation.reads_body or kind == "none" or body == {}:
        return
    if isinstance(body, dict):
        reads = operation.unit.reads
        if reads is None or not operation.declared.isdisjoint(body) or not reads.isdisjoint(body):
            return
    raise bad_request(
        "Unexpected request body",
        "This operation reads no request body; it would not reach the upstream.",
        parameter="body",
    )
