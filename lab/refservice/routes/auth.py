"""A fake login that exists to be rate limited.

Any non-empty username/password pair gets a random token: drills care about
the throttle in front of it (429 with Retry-After), not about identity.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ..errors import ApiError
from ..ratelimit import retry_after_header
from ..services import Services, services

router = APIRouter(tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=200)


class Token(BaseModel):
    token: str


def client_key(request: Request) -> str:
    """The client IP (uvicorn has applied X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


async def throttle_login(request: Request, svc: Annotated[Services, Depends(services)]) -> None:
    """Dependency: 429 once the client's token bucket is empty."""
    limiter = svc.auth_limiter
    if limiter is None:
        return
    wait_s = limiter.acquire(client_key(request))
    if wait_s > 0:
        raise ApiError(
            429,
            "rate_limited",
            "too many login attempts; retry later",
            {"Retry-After": retry_after_header(wait_s)},
        )


@router.post("/auth/token", dependencies=[Depends(throttle_login)])
async def issue_token(credentials: Credentials) -> Token:
    return Token(token=secrets.token_urlsafe(32))
