"""The chaos drills by fault: the registry the ``chaos.*`` tasks and the demo build drills from.

The shared shape is in shape.py; each fault (its record, its checks, what
"reacted" and "recovered" mean) in kill_db.py, kill_redis.py and kill_app.py.
"""

from __future__ import annotations

from typing import Any

from drillbook.chaos.kill_app import KillApp, KillAppMeasurements
from drillbook.chaos.kill_db import KillDb, KillDbMeasurements
from drillbook.chaos.kill_redis import KillRedis, KillRedisMeasurements
from drillbook.chaos.observers import witness_check
from drillbook.chaos.plan import Fault
from drillbook.chaos.shape import ChaosDrill

DRILLS: dict[Fault, type[ChaosDrill[Any]]] = {"kill-db": KillDb, "kill-redis": KillRedis, "kill-app": KillApp}

__all__ = [
    "DRILLS",
    "ChaosDrill",
    "KillApp",
    "KillAppMeasurements",
    "KillDb",
    "KillDbMeasurements",
    "KillRedis",
    "KillRedisMeasurements",
    "witness_check",
]
