"""The per-process objects routes need, built at startup and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from .cache import Cache
from .config import Release, Settings
from .db import Database
from .ratelimit import TokenBucketLimiter
from .repository import Items


@dataclass
class Services:
    settings: Settings
    release: Release
    db: Database
    cache: Cache
    items: Items
    auth_limiter: TokenBucketLimiter | None


async def services(request: Request) -> Services:
    """FastAPI dependency: the running process's services.

    Async on purpose: FastAPI runs plain `def` dependencies in a thread pool,
    a thread hop per request for a dictionary lookup.
    """
    found: Services = request.app.state.services
    return found
