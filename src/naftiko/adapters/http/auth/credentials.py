"""The credentials of an inbound ``authentication`` block, resolved from binds.

A field's ``{{VAR}}``, ``{{env.VAR}}`` or ``{{ns.VAR}}`` tags (the syntax of
``naftiko.template_syntax.VARIABLE_TAG``) are replaced by bound values, once, at start-up;
a missing field, an unbound or empty variable or a tag left over refuses to start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from naftiko.adapters.http.auth.base import InboundAuthConfigError
from naftiko.template_syntax import VARIABLE_TAG

__all__ = ["resolve_credential"]


def resolve_credential(
    field: str,
    template: str | None,
    binds: Mapping[str, str],
    namespaces: Mapping[str, Mapping[str, str]],
) -> str:
    """A credential field with its ``{{VAR}}`` / ``{{env.VAR}}`` / ``{{ns.VAR}}`` from binds.

    Raises when the field is missing, a variable is unbound, or the result is empty.
    """
    if template is None or not template.strip():
        raise InboundAuthConfigError(f"inbound authentication needs {field!r}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value: str | None = None
        if "." in name:
            ns, _, var = name.partition(".")
            value = namespaces.get(ns, {}).get(var)
            if value is None and ns == "env":
                value = binds.get(var)
        if value is None:
            value = binds.get(name)
        if not value:
            raise InboundAuthConfigError(
                f"inbound authentication field {field!r}: variable {name!r} is not bound "
                "or is empty (declare it in binds)"
            )
        return value

    value = VARIABLE_TAG.sub(substitute, template)
    if "{{" in value or "}}" in value:
        raise InboundAuthConfigError(
            f"inbound authentication field {field!r} has a template that cannot be resolved"
        )
    return value
