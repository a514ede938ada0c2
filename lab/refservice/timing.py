"""Small time helpers shared by the health checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float) -> T:
    """Await `awaitable` for at most `timeout` seconds, whatever it does on cancel.

    asyncio.wait_for waits until the cancelled work has finished, and psycopg
    answers a cancellation by first cancelling the query on the server (seconds,
    if the server hangs). Here the work runs as its own task: on timeout it is
    cancelled and left to wind down in the background, and TimeoutError is
    raised at once.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError(f"no answer within {timeout:.2f}s")
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    task.add_done_callback(_consume)


def _consume(task: asyncio.Future[Any]) -> None:
    # Retrieve the outcome so asyncio does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


def elapsed_ms(start: float) -> float:
    """Milliseconds since `start` (a time.perf_counter() value), rounded for humans."""
    return round((time.perf_counter() - start) * 1000, 2)
