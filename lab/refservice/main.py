"""Application factory; `refservice.main:app` is what uvicorn runs.

    PYTHONPATH=<release dir> uvicorn refservice.main:app --host 127.0.0.1 --port P --no-access-log

Configuration comes from REFSVC_* environment variables and the release's
release.json (see lab/README.md). Startup never waits for PostgreSQL or Redis:
a process that starts while a dependency is down reports not-ready and
recovers by itself, which is what an outage drill expects to see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import errors, logs, metrics
from .cache import Cache
from .config import Release, Settings
from .cors import CorsMiddleware
from .db import Database
from .middleware import BodyLimitMiddleware, FaultMiddleware, RequestContextMiddleware
from .ratelimit import TokenBucketLimiter
from .repository import Items
from .routes import routers
from .sentinel import SentinelWriter
from .services import Services

log = logs.get("main")


def create_app(settings: Settings | None = None, release: Release | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    release = release or Release.load(settings.release_file)
    logs.setup(settings.instance)
    metrics.set_info(release.version, settings.instance)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            settings.instance,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout_s=settings.db_timeout_s,
        )
        await db.open()
        cache = Cache(settings.redis_url, settings.cache_ttl_s)
        limiter = None if release.broken("ratelimit") else TokenBucketLimiter(settings.auth_rate)
        app.state.services = Services(settings, release, db, cache, Items(db), limiter)
        sentinel = SentinelWriter(
            db, settings.instance, settings.sentinel_interval_s, settings.sentinel_retention_s
        )
        sentinel.start()
        log.info(
            "refservice started",
            extra={
                "fields": {
                    "version": release.version,
                    "misconfigure": sorted(release.misconfigure),
                    "error_rate": release.error_rate,
                    "latency_ms": release.latency_ms,
                    "latency_share": release.latency_share,
                }
            },
        )
        try:
            yield
        finally:
            await sentinel.stop()
            await cache.close()
            await db.close()
            log.info("refservice stopped")

    app = FastAPI(
        title="refservice",
        version=release.version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    for router in routers():
        app.include_router(router)

    # add_middleware wraps: the last one added is the outermost.
    if release.error_rate or release.latency_ms:
        app.add_middleware(
            FaultMiddleware,
            error_rate=release.error_rate,
            latency_ms=release.latency_ms,
            latency_share=release.latency_share,
        )
    if not release.broken("body-limit"):
        app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorsMiddleware, origins=settings.cors_origins, wildcard=release.broken("cors"))
    app.add_middleware(
        RequestContextMiddleware,
        security_headers=not release.broken("headers"),
        access_log=settings.access_log,
    )
    return app


app = create_app()
