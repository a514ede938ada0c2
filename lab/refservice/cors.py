"""CORS with an allowlist of origins.

Browsers send credentials cross-origin only when the response names the origin
exactly and allows credentials; answering `*` together with credentials is the
classic misconfiguration that lets any site act as the logged-in user. Here a
listed origin is echoed back with credentials allowed, any other origin gets no
CORS headers at all (and a 403 for its preflight). The release misconfiguration
"cors" deliberately answers every origin with `*` plus credentials so audits
have something to catch.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import REQUEST_ID_KEY, send_error

ALLOW_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = b"authorization, content-type, x-request-id"
EXPOSE_HEADERS = b"x-request-id, retry-after"
MAX_AGE = b"600"
_VARY = (b"vary", b"Origin")


class CorsMiddleware:
    def __init__(self, app: ASGIApp, *, origins: Iterable[str], wildcard: bool = False) -> None:
        self.app = app
        self.origins = {origin.encode() for origin in origins}
        self.wildcard = wildcard

    def _allow(self, origin: bytes) -> list[tuple[bytes, bytes]] | None:
        """The CORS headers for `origin`, or None when it is not allowed."""
        if self.wildcard:
            return [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-credentials", b"true"),
            ]
        if origin not in self.origins:
            return None
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            _VARY,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin: bytes | None = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None:
            await self.app(scope, receive, send)
            return

        allowed = self._allow(origin)
        if preflight and scope["method"] == "OPTIONS":
            await self._preflight(scope, send, allowed)
            return

        headers = (
            [*allowed, (b"access-control-expose-headers", EXPOSE_HEADERS)] if allowed is not None else [_VARY]
        )

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, allowed: list[tuple[bytes, bytes]] | None) -> None:
        if allowed is None:
            await send_error(
                send, 403, "forbidden", "origin not allowed", scope.get(REQUEST_ID_KEY, ""), [_VARY]
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    *allowed,
                    (b"access-control-allow-methods", ALLOW_METHODS),
                    (b"access-control-allow-headers", ALLOW_HEADERS),
                    (b"access-control-max-age", MAX_AGE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
