"""Cross-cutting request handling as plain ASGI middleware.

Starlette's BaseHTTPMiddleware runs each request through extra tasks and
streams; at ~1,000 req/s on two cores that overhead shows in p95. These classes
only wrap `send` (and `receive` where they must), so a request costs a few
function calls per layer.

Order, outermost first (see main.create_app):
    RequestContext -> CORS -> BodyLimit -> Faults -> FastAPI
so every response, including a 413 or a CORS rejection, carries the request
id and security headers, is logged once and is counted in the metrics.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs, metrics
from .errors import REQUEST_ID_KEY, send_error

_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

log = logs.get("request")


class RequestContextMiddleware:
    """Request id, security headers, access log, metrics and the last-resort 500.

    Exceptions nothing else handled are answered here with the standard error
    body (FastAPI's own last-resort handler sits outside user middleware, where
    the response would miss the request id and headers).
    """

    def __init__(self, app: ASGIApp, *, security_headers: bool = True, access_log: bool = True) -> None:
        self.app = app
        self.security_headers = security_headers
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        request_id: bytes | None = None
        https = scope.get("scheme") == "https"
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _SANE_REQUEST_ID.match(value):
                    request_id = value
            elif name == b"x-forwarded-proto" and value.lower() == b"https":
                https = True
        if request_id is None:
            request_id = uuid.uuid4().hex.encode()
        rid = request_id.decode()
        scope[REQUEST_ID_KEY] = rid

        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id)]
        if self.security_headers:
            extra.extend(SECURITY_HEADERS)
            if https:
                extra.append(HSTS)
        status = 500
        started = False

        async def send_with_context(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            log.exception(
                "unhandled exception",
                extra={"fields": {"request_id": rid, "method": scope["method"], "path": scope["path"]}},
            )
            if started:
                raise  # the response is half sent; let the server cut the connection
            await send_error(send_with_context, 500, "internal_error", "internal server error", rid)
        finally:
            duration = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe_request(template, scope["method"], status, duration)
            if self.access_log:
                _access_log(rid, scope, status, duration)


def _access_log(request_id: str, scope: Scope, status: int, duration: float) -> None:
    logs.emit(
        "error" if status >= 500 else "info",
        {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 2),
        },
    )


class BodyLimitMiddleware:
    """Answer 413 for request bodies larger than `max_bytes`.

    A declared Content-Length is checked before anything is read (the server
    enforces that the body matches it). A body without one (chunked) is read
    here, counting bytes, and replayed to the application only if it fits.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._reject(scope, send)
                return
            await self.app(scope, receive, send)
            return
        if not chunked:
            await self.app(scope, receive, send)
            return

        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._reject(scope, send)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"request body larger than {self.max_bytes} bytes",
            scope.get(REQUEST_ID_KEY, ""),
            [(b"connection", b"close")],
        )


class FaultMiddleware:
    """The release's injected faults on /items*: added latency (on a share of requests), then random 500s."""

    def __init__(
        self, app: ASGIApp, *, error_rate: float, latency_ms: int, latency_share: float = 1.0
    ) -> None:
        self.app = app
        self.error_rate = error_rate
        self.latency_s = latency_ms / 1000.0
        self.latency_share = latency_share

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_items_path(scope["path"]):
            if self.latency_s and (self.latency_share >= 1.0 or random.random() < self.latency_share):
                await asyncio.sleep(self.latency_s)
            if self.error_rate and random.random() < self.error_rate:
                await send_error(send, 500, "internal_error", "injected fault", scope.get(REQUEST_ID_KEY, ""))
                return
        await self.app(scope, receive, send)


def _is_items_path(path: str) -> bool:
    return path == "/items" or path.startswith("/items/")
