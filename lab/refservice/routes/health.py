"""Liveness and readiness, as load balancers and drills see them.

Liveness says only "the process answers" (restart me if not). Readiness says
"send me traffic": PostgreSQL is required, Redis is optional (without it the
service is slower, not broken, so it stays in rotation and says degraded).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..services import Services, services

router = APIRouter(tags=["health"])

CHECK_BUDGET_S = 0.5


@router.api_route("/health/live", methods=["GET", "HEAD"])
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route("/health/ready", methods=["GET", "HEAD"])
async def ready(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    postgres, redis = await asyncio.gather(svc.db.check(CHECK_BUDGET_S), svc.cache.check(CHECK_BUDGET_S))
    checks = {"postgres": postgres, "redis": redis}
    if not postgres["ok"] and not svc.release.broken("ready-ignores-db"):
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    degraded = not (postgres["ok"] and redis["ok"])
    return JSONResponse({"status": "ok", "degraded": degraded, "checks": checks})
