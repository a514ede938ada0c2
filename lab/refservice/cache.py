"""Redis as a cache-aside cache that never takes the service down with it.

Redis is an optimisation here, so a Redis outage must cost hit ratio, not
latency or errors:

* every call is bounded by a short timeout (0.2 s) and never retried (redis-py
  retries with backoff by default, which would stack seconds onto a request);
* after a failure a circuit breaker skips Redis for BREAKER_S; then a single
  trial call is let through, and its success closes the breaker again;
* invalidations that could not be delivered while the breaker was open are
  kept and sent before the first read after recovery, so a Redis that was
  paused (not restarted) does not serve an item as it was before its update.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import logs, metrics
from .timing import bounded, elapsed_ms

log = logs.get("cache")
T = TypeVar("T")

_FAILURES = (RedisError, OSError, TimeoutError)


class Cache:
    """Item cache with a circuit breaker around every Redis call."""

    BREAKER_S = 1.0
    MAX_PENDING_INVALIDATIONS = 10_000

    def __init__(self, url: str, ttl_s: int, timeout_s: float = 0.2) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        # The per-call bound is an asyncio.timeout in _call: redis-py's own
        # socket_timeout wraps every write in asyncio.wait_for, a task per call.
        self._pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._redis = Redis(connection_pool=self._pool)
        self._open = False
        self._retry_at = 0.0
        self._pending: set[str] = set()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()  # a pool passed in is not closed by the client

    @staticmethod
    def item_key(item_id: int) -> str:
        return f"refsvc:item:{item_id}"

    # -- breaker -------------------------------------------------------------

    def _admit(self) -> bool:
        """Closed: yes. Open: no, except one trial call once BREAKER_S has passed."""
        if not self._open:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.BREAKER_S  # the others wait for this trial
        return True

    def _succeeded(self) -> None:
        if self._open:
            self._open = False
            log.info("redis reachable again; cache resumed")

    def _failed(self, exc: BaseException) -> None:
        metrics.CACHE_ERRORS.inc()
        if not self._open:
            log.warning("redis call failed; bypassing the cache", extra={"fields": {"error": repr(exc)}})
        self._open = True
        self._retry_at = time.monotonic() + self.BREAKER_S

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run one Redis operation behind the breaker: (succeeded, result)."""
        if not self._admit():
            metrics.CACHE_BYPASSED.inc()
            return False, None
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._pending:
                    await self._flush_invalidations()
                result = await operation()
        except _FAILURES as exc:
            self._failed(exc)
            # A call cut off mid-write may leave a half-sent command on its
            # connection: drop the idle connections rather than reuse one.
            await self._pool.disconnect(inuse_connections=False)
            return False, None
        self._succeeded()
        return True, result

    async def _flush_invalidations(self) -> None:
        keys = list(self._pending)
        await self._redis.delete(*keys)
        self._pending.difference_update(keys)

    # -- cache-aside operations ------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The cached bytes, or None on a miss or when Redis is unavailable."""
        ok, value = await self._call(lambda: self._redis.get(key))
        if ok:
            (metrics.CACHE_HITS if value is not None else metrics.CACHE_MISSES).inc()
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes) -> None:
        await self._call(lambda: self._redis.set(key, value, ex=self.ttl_s))

    async def invalidate(self, key: str) -> None:
        """Delete `key` now, or remember to delete it once Redis is back."""
        ok, _ = await self._call(lambda: self._redis.delete(key))
        if not ok:
            if len(self._pending) < self.MAX_PENDING_INVALIDATIONS:
                self._pending.add(key)
            else:
                log.warning("too many pending invalidations; stale reads possible for the cache TTL")

    async def check(self, timeout_s: float = 0.5) -> dict[str, Any]:
        """Readiness of Redis: PING regardless of the breaker (whose state it updates)."""
        start = time.perf_counter()
        try:
            await bounded(self._redis.ping(), timeout_s)
        except Exception as exc:  # reported, not raised
            if isinstance(exc, _FAILURES):
                self._failed(exc)
            return {"ok": False, "latency_ms": elapsed_ms(start), "error": f"{type(exc).__name__}: {exc}"}
        self._succeeded()
        return {"ok": True, "latency_ms": elapsed_ms(start)}
