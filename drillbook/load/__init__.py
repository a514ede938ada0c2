"""Load runs: Locust at an arrival rate of peak x (1 + headroom), judged against the SLA.

Modules, one job each::

    plan      inventory settings + command line -> a validated LoadPlan
    schedule  the arrival schedule (open model, jittered/Poisson) and Little's-law pool size
    latency   per-second, per-endpoint latency records by issue time (mergeable)
    shape     the Locust side: pacing wait_time, LoadTestShape, listeners (runs inside Locust)
    plugin    the file passed to ``locust -f`` ahead of the locustfile
    runner    Locust as a child process: command line, supervision, Ctrl-C, its CSV files
    request_log  the Locust plugin writing each request as a JSON line (background traffic)
    background   the user's locustfile as another drill's background traffic, request by request
    witness   HAProxy frontend counters and the instances' histograms, sampled during the run
    judge     figures of the steady phase, the four checks, generator limits
    plot      the PNG of rate and p95 over time
    report    Markdown for summary.md and ``inv load.report``
    drill     LoadRun, the Drill tying it together

Attributes are imported lazily: Locust imports ``drillbook.load.shape`` inside its own
process and must not pull in the control side (Ansible, matplotlib).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "GeneratorLimit",
    "LoadPlan",
    "LoadRun",
    "LoadSettings",
    "background_traffic",
    "demo_run",
    "load_settings",
    "make_plan",
]

_WHERE = {
    "GeneratorLimit": "drillbook.load.judge",
    "LoadPlan": "drillbook.load.plan",
    "LoadRun": "drillbook.load.drill",
    "LoadSettings": "drillbook.load.plan",
    "background_traffic": "drillbook.load.background",
    "demo_run": "drillbook.load.drill",
    "load_settings": "drillbook.load.plan",
    "make_plan": "drillbook.load.plan",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'drillbook.load' has no attribute {name!r}")
