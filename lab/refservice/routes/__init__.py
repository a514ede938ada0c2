"""HTTP routes, one module per area."""

from __future__ import annotations

from fastapi import APIRouter

from . import auth, health, items, meta


def routers() -> list[APIRouter]:
    return [health.router, meta.router, items.router, auth.router]
