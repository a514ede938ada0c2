"""One error format for every failure the service reports.

    {"error": {"code": "not_found", "message": "...", "request_id": "..."}}

Clients and drills parse a single shape whether the failure came from routing
(404, 405), validation (422), a middleware (413, 429, CORS), the database (503),
an injected fault or an unhandled exception (500). The request id lets an
operator find the matching access-log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

from .db import DatabaseUnavailable

REQUEST_ID_KEY = "refsvc.request_id"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raise from a route or dependency to answer with the standard error body."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def code_for(status: int) -> str:
    """The error code used for an HTTP status when nothing more specific is known."""
    return _CODES.get(status, "http_error" if status < 500 else "internal_error")


def error_body(code: str, message: str, request_id: str, details: Sequence[Any] | None = None) -> bytes:
    """Serialise the standard error object."""
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}, separators=(",", ":"), default=str).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer from inside an ASGI middleware, before the application saw the request."""
    body = error_body(code, message, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def request_id_of(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY, ""))


def _response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Sequence[Any] | None = None,
) -> Response:
    return Response(
        error_body(code, message, request_id_of(request), details),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _response(request, exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    return _response(request, exc.status_code, code_for(exc.status_code), message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return _response(request, 422, "validation_error", message, details=details)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    return _response(request, 503, "service_unavailable", "database unavailable", {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    """Register the handlers; unhandled exceptions are caught by the request middleware."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
