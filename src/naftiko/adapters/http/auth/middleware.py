"""The ASGI middleware that applies an adapter's inbound authentication."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from naftiko.adapters.http.auth.base import InboundAuth

__all__ = ["EXEMPT_METHODS", "InboundAuthMiddleware"]

EXEMPT_METHODS = frozenset({"GET", "HEAD"})  # exempt paths only ever serve reads


class InboundAuthMiddleware:
    """Pure ASGI middleware: checks every http and websocket request except exempt ones.

    Only a GET or HEAD whose (decoded) path is exactly an exempt path, with or without the
    ``root_path`` prefix, is exempt: any other method or a websocket on the same path is
    checked, so an app that serves something else there (a catch-all mount) cannot be
    reached through the exemption. A refused websocket gets the problem response when the
    server supports the denial-response extension, otherwise a close with code 1008
    (policy violation).
    """

    def __init__(
        self, app: ASGIApp, auth: InboundAuth, *, exempt_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.auth = auth
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        failure = await self.auth.check(HTTPConnection(scope))
        if failure is None:
            await self.app(scope, receive, send)
            return
        can_respond = "websocket.http.response" in scope.get("extensions", {})
        if scope["type"] == "http" or can_respond:
            await failure.response()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})

    def _exempt(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") not in EXEMPT_METHODS:
            return False
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if path in self.exempt_paths:
            return True
        return bool(root) and path.startswith(root) and path[len(root) :] in self.exempt_paths
