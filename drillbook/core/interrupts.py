"""SIGINT/SIGTERM turned into a clean unwind.

A drill must always put things back. Python's default Ctrl-C raises
``KeyboardInterrupt`` anywhere, even inside the code that restores a killed
service, and SIGTERM kills the process outright. Inside :func:`handled` both
signals raise :class:`DrillInterrupted` at the next bytecode instead, unless the
code is :func:`deferred` (a playbook that must be cancelled cleanly) or
:func:`shielded` (the restore phase, which must finish whatever happens); there
the signal is only recorded and acted on later.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from drillbook.core.errors import DrillInterrupted


class _Flags:
    def __init__(self) -> None:
        self.requested: str | None = None  # name of the signal received, if any
        self.defer_depth = 0
        self.shield_depth = 0


_flags = _Flags()


def requested() -> str | None:
    """The name of the signal received since :func:`handled` began, or None."""
    return _flags.requested


def cancel_requested() -> bool:
    """True when a running playbook should be cancelled: interrupted and not shielded."""
    return _flags.requested is not None and _flags.shield_depth == 0


def _handler(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    first = _flags.requested is None
    _flags.requested = _flags.requested or name
    if _flags.shield_depth or _flags.defer_depth:
        return
    if first or signum == signal.SIGTERM:
        raise DrillInterrupted(f"interrupted by {name}")


@contextmanager
def handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM to :class:`DrillInterrupted` for the duration of a drill."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    _flags.requested = None
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def deferred() -> Iterator[None]:
    """Record signals instead of raising; the caller checks :func:`cancel_requested` and raises itself."""
    _flags.defer_depth += 1
    try:
        yield
    finally:
        _flags.defer_depth -= 1


@contextmanager
def shielded() -> Iterator[None]:
    """Let the block finish whatever signals arrive (the restore phase)."""
    _flags.shield_depth += 1
    try:
        yield
    finally:
        _flags.shield_depth -= 1


def raise_if_requested() -> None:
    """Raise :class:`DrillInterrupted` now if a signal arrived while deferred."""
    if cancel_requested():
        raise DrillInterrupted(f"interrupted by {_flags.requested}")
