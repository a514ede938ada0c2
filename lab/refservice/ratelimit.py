"""Per-client token buckets.

Each client key (the client IP; uvicorn already resolved X-Forwarded-For from
the local load balancer) owns a bucket that refills at `rate` tokens per second
up to `burst`. A request takes one token; with none left the caller is told how
long until the next one, which becomes the Retry-After header.

State is per process: behind a load balancer with N instances a client gets up
to N times the rate, which is fine for a login throttle on a lab service.
"""

from __future__ import annotations

import math
import time

from .config import RateLimit


class TokenBucketLimiter:
    MAX_KEYS = 10_000

    def __init__(self, limit: RateLimit) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`: 0.0 when allowed, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens, now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they carry no information."""
        refill_s = self.burst / self.rate
        for key in [k for k, (_, updated) in self._buckets.items() if now - updated >= refill_s]:
            del self._buckets[key]


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds; round up so a polite client succeeds."""
    return str(max(1, math.ceil(wait_s)))
