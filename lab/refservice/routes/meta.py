"""What is running (/version) and how it is doing (/metrics)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from .. import metrics
from ..services import Services, services

router = APIRouter(tags=["meta"])


@router.get("/version")
async def version(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    release = svc.release
    return {
        "version": release.version,
        "instance": svc.settings.instance,
        "error_rate": release.error_rate,
        "latency_ms": release.latency_ms,
    }


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
