"""The connection pool. It opens without waiting, so the service starts (and
answers readiness with 500) while the database is down, and recovers by itself.
A request waits at most half a second for a connection: without its database
the ledger fails fast (500) instead of holding its clients."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from ledger.settings import settings

_pool: ConnectionPool | None = None


def pool() -> ConnectionPool:
    global _pool
    if _pool is None:
        _pool = ConnectionPool(
            settings().database_url,
            min_size=1,
            max_size=10,
            timeout=0.5,
            open=False,
            kwargs={"connect_timeout": 1, "application_name": "ledger"},
        )
        _pool.open(wait=False)
    return _pool


def close() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None
