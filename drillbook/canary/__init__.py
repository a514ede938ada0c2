"""Canary rollouts with automatic rollback: deploy.canary, deploy.promote, deploy.rollback, deploy.status.

A release goes to the canary hosts, takes a growing share of traffic through
HAProxy's runtime API, and is judged against the baseline on the same window
(exact one-sided tests on 5xx counts, p95 from differenced ``/metrics``
histograms, readiness); a breach rolls it back within seconds, a pass promotes
it in rolling batches. Modules, one job each:

    settings  the canary_* knobs           judge    the statistical comparison
    stats     Fisher's exact test          sources  /metrics scrapes or PromQL
    weights   traffic shifting             watch    HAProxy's per-server witness
    releases  the deploy playbook          state    what runs where, rollout record
    fleet     shared moves (rollback)      drill    the drills
    status    deploy.status                demo     the two canaries of inv demo
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
