"""One drill at a time per fleet.

Two drills at once against the same service spoil each other's measurements (a
load run during a chaos kill, two canaries fighting over weights). The lock is an
``flock`` on a file under the state directory, keyed by the inventory's lock
scope: its fleet id (:attr:`Inventory.fleet_id`), so ``inventory/x``,
``inventory/x/hosts.yml`` and a copy of it contend for one lock, as they point at
one fleet. The kernel releases it when the holder dies, even by SIGKILL; the file
names the holder (drill, pid, inventory path) so a refused run can say who.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drillbook.core.errors import LockHeld
from drillbook.core.journal import utc_now
from drillbook.core.paths import state_dir


def lock_path(scope: str) -> Path:
    """The lock file for ``scope`` (a fleet id), hashed so any scope makes a safe file name; dirs created."""
    digest = hashlib.sha1(scope.encode()).hexdigest()[:16]
    path = state_dir() / "locks" / f"{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def inventory_lock(scope: str, holder: str, inventory_name: str) -> Iterator[None]:
    """Hold the lock for ``scope`` or raise :class:`LockHeld` naming the current holder."""
    path = lock_path(scope)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"another drill is running against the fleet of {inventory_name}: {_describe(path)}; "
                "wait for it to finish (one drill at a time per fleet)"
            ) from None
        os.ftruncate(fd, 0)
        record = {"drill": holder, "pid": os.getpid(), "since": utc_now(), "inventory": inventory_name}
        os.write(fd, json.dumps(record).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        via = f", via {info['inventory']}" if info.get("inventory") else ""
        return f"{info.get('drill')} (pid {info.get('pid')}, since {info.get('since')}{via})"
    except (OSError, ValueError):
        return "holder unknown"
