"""The sentinel writer: a heartbeat row in PostgreSQL every interval.

drillbook measures a restore's recovery point (RPO) as the gap between the
newest sentinel row inside the restored backup and the moment the backup was
asked for. The writer therefore keeps a steady clock (it does not drift by the
time each insert takes), keeps going through outages (errors are logged once
per outage, not once per tick) and resumes by itself when the database returns.

Old rows of this instance are pruned now and then so a lab left running for
weeks keeps a small table; only the newest row matters to a drill.
"""

from __future__ import annotations

import asyncio
import time

from . import logs, metrics
from .db import Database

log = logs.get("sentinel")

PRUNE_EVERY_S = 60.0


class SentinelWriter:
    def __init__(self, db: Database, instance: str, interval_s: float, retention_s: float) -> None:
        self.db = db
        self.instance = instance
        self.interval_s = interval_s
        self.retention_s = retention_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin writing (a no-op when the interval is 0: sentinel disabled)."""
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="sentinel-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        failing_since: float | None = None
        last_prune = time.monotonic()
        while True:
            try:
                await self._write()
                if time.monotonic() - last_prune >= PRUNE_EVERY_S and self.retention_s > 0:
                    last_prune = time.monotonic()
                    await self._prune()
            except Exception as exc:  # swallowed: the writer outlives any outage
                metrics.SENTINEL_WRITES.labels(result="error").inc()
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("sentinel write failed", extra={"fields": {"error": repr(exc)}})
            else:
                metrics.SENTINEL_WRITES.labels(result="ok").inc()
                if failing_since is not None:
                    outage = round(time.monotonic() - failing_since, 2)
                    log.info("sentinel writes resumed", extra={"fields": {"outage_s": outage}})
                    failing_since = None
            next_tick += self.interval_s
            delay = next_tick - loop.time()
            if delay < 0:  # fell behind (outage, slow insert): skip the missed ticks
                next_tick = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    async def _write(self) -> None:
        await self.db.execute("INSERT INTO sentinel (instance) VALUES (%s)", (self.instance,))

    async def _prune(self) -> None:
        await self.db.execute(
            "DELETE FROM sentinel WHERE instance = %s AND written_at < now() - make_interval(secs => %s)",
            (self.instance, self.retention_s),
        )
