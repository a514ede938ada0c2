"""PostgreSQL access: one connection pool per process, and the ways it recovers.

Two behaviours here exist because drills measure them:

* Readiness must answer within a second when PostgreSQL dies or hangs, so
  probes run under timing.bounded (a hard timeout that does not wait for
  psycopg to finish cancelling).
* While PostgreSQL is down, requests must fail fast (503 in milliseconds), not
  queue: once the pool has failed, a request waits at most SUSPECT_WAIT_S for a
  connection instead of the pool's timeout. Otherwise, with every pooled
  connection lost, requests wait the full 2 s for one that cannot come, and a
  chaos drill sees the outage's p95 at 2 s in about one run in ten.
* After an outage the service must recover as soon as PostgreSQL does. The
  pool re-creates lost connections with exponential backoff (up to a minute
  apart), so after a long outage it can lag behind a database that is already
  back. A watchdog notices "the pool is failing but a fresh connection works"
  and replaces the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from . import logs
from .timing import bounded, elapsed_ms

log = logs.get("db")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached (or answered too slowly); answered as 503."""


def is_connectivity_error(exc: BaseException) -> bool:
    """True for failures that say "the connection is gone", not "the query is wrong".

    Client-side failures carry no SQLSTATE; class 08 is connection exception and
    class 57 is operator intervention (shutdown, terminated backend).
    """
    if isinstance(exc, (PoolTimeout, TimeoutError)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith(("08", "57"))
    return False


class Database:
    """The process-wide pool plus readiness checks and pool recovery."""

    WATCHDOG_INTERVAL_S = 0.5
    MIN_RESET_INTERVAL_S = 1.0
    #: Longest wait for a pooled connection while the pool is failing (see the module docstring).
    SUSPECT_WAIT_S = 0.2

    def __init__(self, dsn: str, instance: str, min_size: int, max_size: int, timeout_s: float) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._instance = instance
        self._min_size = min(min_size, max_size)
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._suspect = False
        self._last_ok = 0.0
        self._suspect_since = 0.0
        self._last_reset = 0.0
        self._wake = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            timeout=min(2.0, self.timeout_s),
            name=f"refservice-{self._instance}",
            kwargs=self._connect_kwargs(),
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": 2,
            "application_name": f"refservice-{self._instance}",
            "options": "-c TimeZone=UTC",
        }

    async def open(self) -> None:
        """Start connecting in the background: the service starts even with PostgreSQL down."""
        self._pool = self._new_pool()
        await self._pool.open(wait=False)
        self._watchdog = asyncio.create_task(self._watch(), name="db-watchdog")

    async def close(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self._pool:
            await self._pool.close(timeout=2.0)
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- use -----------------------------------------------------------------

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, ...] | None:
            return await (await conn.execute(sql, params)).fetchone()

        return await self.run(work)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            return await (await conn.execute(sql, params)).fetchall()

        return await self.run(work)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it touched."""

        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            return (await conn.execute(sql, params)).rowcount

        return await self.run(work)

    async def run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection, within REFSVC_DB_TIMEOUT_S whatever happens.

        The bound is hard (timing.bounded): against a frozen server a plain
        asyncio timeout would wait for psycopg's own cancellation, up to ~10 s.
        Connectivity failures become DatabaseUnavailable (answered 503).
        """

        async def borrow_and_work() -> T:
            async with self._checkout() as conn:
                return await work(conn)

        try:
            result = await bounded(borrow_and_work(), self.timeout_s)
        except (psycopg.Error, TimeoutError) as exc:
            if is_connectivity_error(exc):
                self.mark_suspect(exc)
                raise DatabaseUnavailable(_describe(exc)) from exc
            raise
        self._last_ok = time.monotonic()
        return result

    @asynccontextmanager
    async def _checkout(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a connection; a request caught waiting on a replaced pool moves to the new one."""
        pool = self._pool
        assert pool is not None, "Database.open() was not called"
        wait_s = self.SUSPECT_WAIT_S if self._suspect else None  # None: the pool's own timeout
        try:
            conn = await pool.getconn(timeout=wait_s)
        except PoolClosed:
            if self._pool is pool or self._pool is None:
                raise
            pool = self._pool
            conn = await pool.getconn(timeout=wait_s)
        try:
            async with conn:  # commit or roll back, as pool.connection() would
                yield conn
        finally:
            await pool.putconn(conn)

    def mark_suspect(self, exc: BaseException | None = None) -> None:
        """Note that the pool failed; the watchdog decides whether to replace it."""
        if not self._suspect:
            log.warning("database pool failing", extra={"fields": {"error": repr(exc) if exc else None}})
            self._suspect_since = time.monotonic()
        self._suspect = True
        self._wake.set()

    # -- health ----------------------------------------------------------------

    async def _ping_pool(self) -> None:
        assert self._pool is not None
        async with self._pool.connection(timeout=0.15) as conn:
            await conn.execute("SELECT 1")

    async def _ping_fresh(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs())
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    async def check(self, budget_s: float = 0.5) -> dict[str, Any]:
        """Readiness of PostgreSQL within `budget_s`: {"ok": bool, "latency_ms": float, ...}.

        The pooled connection answers cheaply when all is well; when the pool is
        busy, broken or suspect, a fresh connection gives the true answer, so a
        database that just came back is reported up at once.
        """
        start = time.perf_counter()
        deadline = start + budget_s
        if not self._suspect:
            try:
                await bounded(self._ping_pool(), min(0.25, budget_s / 2))
                return {"ok": True, "latency_ms": elapsed_ms(start)}
            except PoolTimeout:
                pass  # busy (or empty) pool: ask a fresh connection
            except Exception as exc:  # any failure means "ask again, fresh"
                if is_connectivity_error(exc):
                    self.mark_suspect(exc)
        try:
            await bounded(self._ping_fresh(), max(0.05, deadline - time.perf_counter()))
        except Exception as exc:  # reported, not raised
            return {"ok": False, "latency_ms": elapsed_ms(start), "error": _describe(exc)}
        if self._suspect:
            self._wake.set()
        return {"ok": True, "latency_ms": elapsed_ms(start)}

    # -- recovery ----------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.WATCHDOG_INTERVAL_S)
            self._wake.clear()
            if not self._suspect:
                continue
            wait = self._last_reset + self.MIN_RESET_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._recover()
            except Exception:  # the watchdog must survive anything
                log.exception("database recovery attempt failed")

    async def _recover(self) -> None:
        """Replace the pool when PostgreSQL answers but the pool does not.

        A pool that served a request since it was marked suspect is busy, not
        broken (timeouts under load also mark it suspect), and is left alone.
        """
        try:
            await bounded(self._ping_fresh(), 1.0)
        except Exception:  # still down; try again on the next tick
            return
        if self._last_ok <= self._suspect_since:
            try:
                await bounded(self._ping_pool(), 0.5)
            except Exception:  # the pool is the problem: replace it
                await self._reset_pool()
        self._suspect = False
        log.info(
            "database reachable again",
            extra={"fields": {"outage_s": round(time.monotonic() - self._suspect_since, 2)}},
        )

    async def _reset_pool(self) -> None:
        old, new = self._pool, self._new_pool()
        await new.open(wait=False)
        self._pool = new
        self._last_reset = time.monotonic()
        log.info("database pool replaced: the old one was still failing")
        if old is not None:
            task = asyncio.create_task(old.close(timeout=5.0))
            self._background.add(task)
            task.add_done_callback(self._background.discard)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
