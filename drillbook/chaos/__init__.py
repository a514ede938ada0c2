"""Chaos drills: SIGKILL a service through Ansible, witness the fault, measure the reaction, restore.

``KillDb``, ``KillRedis`` and ``KillApp`` (kill_db.py, kill_redis.py, kill_app.py) share one
shape (:mod:`drillbook.chaos.shape`); :mod:`drillbook.chaos.drill` maps each fault to its drill.
``Recover`` puts everything back after a drill that could not (:mod:`drillbook.chaos.recover`).
Build them from an inventory with ``KillDb.for_inventory(inv, duration_s=3)``.
"""

from drillbook.chaos.drill import DRILLS, ChaosDrill, KillApp, KillDb, KillRedis
from drillbook.chaos.plan import ChaosPlan, ChaosSettings, build_plan, format_plan, guard_production
from drillbook.chaos.recover import Recover

__all__ = [
    "DRILLS",
    "ChaosDrill",
    "ChaosPlan",
    "ChaosSettings",
    "KillApp",
    "KillDb",
    "KillRedis",
    "Recover",
    "build_plan",
    "format_plan",
    "guard_production",
]
