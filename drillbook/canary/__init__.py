"""Canary rollouts with automatic rollback: deploy.canary, deploy.promote, deploy.rollback, deploy.status.

A release goes to the canary hosts, takes a growing share of traffic through
HAProxy's runtime API, and is judged against the baseline in the same seconds
(error-rate increase bounded with confidence, latency shift by Mann-Whitney U and
Hodges-Lehmann against a tolerance, readiness; Pocock boundaries over the looks); a
breach rolls it back within seconds, a pass promotes it in rolling batches, too
little evidence is never a pass. Modules, one job each:

    settings  the canary_* knobs           judge     the decision at each look
    stats     the statistics (SciPy)       sources   /metrics scrapes or PromQL
    weights   traffic shifting             watch     HAProxy's per-server witness
    releases  the deploy playbook          state     what runs where, rollout record
    fleet     shared moves (rollback)      analysis  the step loop (observe)
    base      what the drills share        drill     deploy.canary
    promotion promotion, deploy.promote, deploy.rollback
    status    deploy.status                demo      the two canaries of inv demo
"""

from __future__ import annotations

from drillbook.canary.drill import CanaryDrill, PromoteDrill, RollbackDrill, load_settings
from drillbook.canary.judge import Assessment, Judge, Window
from drillbook.canary.settings import CanarySettings
from drillbook.canary.status import fleet_status

__all__ = [
    "Assessment",
    "CanaryDrill",
    "CanarySettings",
    "Judge",
    "PromoteDrill",
    "RollbackDrill",
    "Window",
    "fleet_status",
    "load_settings",
]
