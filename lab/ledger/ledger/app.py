"""The ledger API: entries under /api/v1, bearer-token auth, FastAPI's default errors.

Run with ``uvicorn ledger.app:app``. Readiness (``/readyz``) runs ``SELECT 1``
and answers 500 when the database does not; there is no /version: every
response names the release in its ``X-Release`` header.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from ledger import auth, db
from ledger.metrics import DURATION, REGISTRY, REQUESTS
from ledger.settings import settings


class Login(BaseModel):
    username: str
    password: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class NewEntry(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    amount_cents: int
    memo: str = Field(default="", max_length=500)


class Entry(NewEntry):
    id: uuid.UUID
    created_at: datetime


_COLUMNS = "id, account, amount_cents, memo, created_at"


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(id=row[0], account=row[1], amount_cents=row[2], memo=row[3], created_at=row[4])


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    db.pool()
    yield
    db.close()


app = FastAPI(title="ledger", lifespan=lifespan)
api = APIRouter(prefix="/api/v1")


#: Headers every response carries (what audit.http checks of any service).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@app.middleware("http")
async def release_and_metrics(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Every response names the release, its request id and the security headers (HSTS behind
    TLS); every request is counted under its route template."""
    start = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    response.headers["X-Request-ID"] = request_id
    if request.headers.get("X-Forwarded-Proto", "").lower() == "https" or request.url.scheme == "https":
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    # The route template (/api/v1/entries/{entry_id}) the router matched, never the raw path.
    handler = getattr(request.scope.get("route"), "path", "other")
    DURATION.labels(handler, request.method).observe(time.perf_counter() - start)
    REQUESTS.labels(handler, request.method, str(response.status_code)).inc()
    response.headers["X-Release"] = settings().release
    return response


@app.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "alive"}


@app.get("/readyz")
def readyz() -> JSONResponse:
    """200 when the database answers; 500 (not 503) when it does not."""
    try:
        with db.pool().connection(timeout=1.0) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError, TimeoutError) as exc:
        return JSONResponse({"detail": f"database unavailable: {type(exc).__name__}"}, status_code=500)
    return JSONResponse({"status": "ready"})


@app.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@api.post("/auth/login")
def login(body: Login) -> Token:
    return Token(access_token=auth.issue(body.username, body.password))


@api.post("/entries", status_code=status.HTTP_201_CREATED)
def create_entry(body: NewEntry, _: auth.User) -> Entry:
    with db.pool().connection() as conn:
        row = conn.execute(
            "INSERT INTO entries (id, account, amount_cents, memo) VALUES (%s, %s, %s, %s) "
            f"RETURNING {_COLUMNS}",
            (uuid.uuid4(), body.account, body.amount_cents, body.memo),
        ).fetchone()
    assert row is not None
    return _entry(row)


@api.get("/entries")
def list_entries(
    _: auth.User,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Newest first, by keyset: ``after`` is the last id of the previous page."""
    with db.pool().connection() as conn:
        if after is None:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM entries ORDER BY created_at DESC, id DESC LIMIT %s", (limit,)
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM entries"
                " WHERE (created_at, id) < (SELECT created_at, id FROM entries WHERE id = %s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (after, limit),
            ).fetchall()
    entries = [_entry(r) for r in rows]
    return {"entries": entries, "next": str(entries[-1].id) if len(entries) == limit else None}


@api.get("/entries/{entry_id}")
def get_entry(entry_id: uuid.UUID, _: auth.User) -> Entry:
    with db.pool().connection() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = %s", (entry_id,)).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "entry not found")
    return _entry(row)


@api.delete("/entries/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_entry(entry_id: uuid.UUID, _: auth.User) -> None:
    with db.pool().connection() as conn:
        deleted = conn.execute("DELETE FROM entries WHERE id = %s", (entry_id,)).rowcount
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "entry not found")


app.include_router(api)
