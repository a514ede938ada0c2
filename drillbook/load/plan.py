"""What a load run is asked to do: the inventory's ``load_*`` settings plus the command line, validated.

Every figure a run is judged against comes from the inventory
(``inventory/<env>/group_vars/all/load.yml``); the command line may override the
rate, headroom, durations, process count and locustfile for one run. Everything
is checked before anything starts, and a wrong value is one :class:`ConfigError`
line that names it: a load test that starts with a typo wastes minutes and, on a
shared staging system, someone else's evening.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from drillbook.core import settings as core_settings
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.paths import REPO_ROOT

#: Below this the steady phase has too few whole seconds to hold a rate to 3 %.
MIN_STEADY_S = 2.0

_NUM = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"^(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m(?!s))?(?:(?P<s>{_NUM})s)?$")


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """``90``, ``"90"``, ``"90s"``, ``"1m30s"``, ``"2m"``, ``"1h"`` -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like 60s or 1m30s, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not text or not match or not any(match.groupdict().values()):
                raise ConfigError(f"{what}: expected a duration like 60s or 1m30s, got {value!r}") from None
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            seconds = parts.get("h", 0.0) * 3600 + parts.get("m", 0.0) * 60 + parts.get("s", 0.0)
    if seconds < 0:
        raise ConfigError(f"{what} must not be negative, got {value!r}")
    return seconds


class LoadSettings(BaseModel):
    """``load_*`` variables of the inventory (see inventory/lab/group_vars/all/load.yml)."""

    rps: float = Field(gt=0, description="expected peak rate R, requests/s")
    headroom: float = Field(0.2, ge=0)
    duration: str | float = "60s"
    ramp: str | float = "10s"
    sla_p95_ms: float = Field(gt=0)
    sla_p99_ms: float = Field(gt=0)
    max_error_pct: float = Field(1.0, ge=0, le=100)
    rate_tolerance_pct: float = Field(3.0, gt=0, le=50)
    max_rps: float = Field(50_000.0, gt=0)
    processes: int = Field(1, ge=1, le=64)
    #: The locustfile; unset: the profile's ``service_traffic.locustfile`` (drillbook names none of its own).
    locustfile: str | None = None
    arrivals: Literal["jittered", "poisson"] = "jittered"
    max_users: int = Field(5000, ge=1)
    drain: str | float = "10s"
    generator_cpu_pct: float = Field(90.0, gt=0, le=100)
    request_timeout_s: float = Field(5.0, gt=0)
    master_bind: str = "127.0.0.1"
    master_host: str = "127.0.0.1"
    master_port: int = Field(5557, ge=1, le=65535)
    worker_processes: int = Field(1, ge=1, le=64)
    worker_dir: str = "/tmp/drillbook-loadgen"
    worker_python: str = "python3"
    metrics_path: str = "/metrics"
    latency_histogram: str = "http_request_duration_seconds"
    exclude_routes: list[str] = Field(default_factory=lambda: ["/metrics"])
    haproxy_frontend: str = ""


@dataclass(frozen=True)
class LoadPlan:
    """One run, fully decided: the rate, the phases, where and how Locust runs."""

    rps: float
    headroom: float
    target_rps: float
    duration_s: float
    ramp_s: float
    processes: int
    locustfile: Path
    arrivals: str
    url: str
    loadgen_hosts: tuple[str, ...] = ()
    drain_s: float = 10.0

    @property
    def steady_s(self) -> float:
        """Seconds at full rate: ``duration_s`` includes the ramp."""
        return self.duration_s - self.ramp_s

    @property
    def distributed(self) -> bool:
        """True when Locust workers run on loadgen hosts (a local master waits for them)."""
        return bool(self.loadgen_hosts)

    def describe(self) -> str:
        """The plan in one line for the journal's notes and the console."""
        where = (
            f"{len(self.loadgen_hosts)} loadgen host(s)"
            if self.distributed
            else (f"{self.processes} processes" if self.processes > 1 else "1 process")
        )
        return (
            f"{self.target_rps:g} req/s (= {self.rps:g} x (1 + {self.headroom:g})) against {self.url} "
            f"for {self.duration_s:g}s ({self.ramp_s:g}s ramp), {self.arrivals} arrivals, {where}"
        )


def load_settings(inv: Inventory, **overrides: Any) -> LoadSettings:
    """The inventory's ``load_*`` settings, ``overrides`` on top, through core's one loader."""
    return core_settings.load_settings(inv, LoadSettings, "load_", overrides)


def locustfile_path(inv: Inventory, settings: LoadSettings, given: str | None = None) -> Path:
    """The locustfile: ``--locustfile``, else ``load_locustfile``, else ``service_traffic.locustfile``.

    A relative path is looked up from the working directory (the user's ops repo),
    then from the checkout drillbook runs from.
    """
    from drillbook.core.profile import load_profile

    name = given or settings.locustfile or load_profile(inv).traffic.locustfile
    if not name:
        raise ConfigError(
            f"inventory {inv.name}: no locustfile: give --locustfile, load_locustfile or "
            "service_traffic.locustfile (docs/service-profile.md)"
        )
    return resolve_locustfile(name)


def resolve_locustfile(name: str) -> Path:
    """A locustfile by name: absolute, else from the working directory (the ops repo), else the checkout."""
    path = Path(name)
    if not path.is_absolute():
        path = (Path.cwd() / path) if (Path.cwd() / path).exists() else REPO_ROOT / path
    if not path.is_file():
        raise ConfigError(f"locustfile {name} does not exist")
    return path


def make_plan(
    inv: Inventory,
    settings: LoadSettings,
    *,
    rps: float | None = None,
    headroom: float | None = None,
    duration: str | float | None = None,
    ramp: str | float | None = None,
    processes: int | None = None,
    locustfile: str | None = None,
    local: bool = False,
) -> LoadPlan:
    """Settings overridden by the command line, checked; raises ConfigError naming the bad value."""
    r = settings.rps if rps is None else float(rps)
    h = settings.headroom if headroom is None else float(headroom)
    if not r > 0:
        raise ConfigError(f"--rps must be a positive rate in requests/s, got {r:g}")
    if h < 0:
        raise ConfigError(f"--headroom must be 0 or more (0.2 = 20 % above the peak), got {h:g}")
    if h > 10:
        raise ConfigError(f"--headroom {h:g} means {h * 100:g} % above the peak; give a fraction like 0.2")
    target = r * (1 + h)
    if target > settings.max_rps:
        raise ConfigError(
            f"target rate {target:g} req/s is above load_max_rps ({settings.max_rps:g}): "
            "a typo, or raise load_max_rps in the inventory"
        )
    duration_s = parse_duration(settings.duration if duration is None else duration, "--duration")
    ramp_s = parse_duration(settings.ramp if ramp is None else ramp, "--ramp")
    if duration_s <= ramp_s:
        raise ConfigError(
            f"--duration {duration_s:g}s is not longer than --ramp {ramp_s:g}s: "
            "there would be no steady phase"
        )
    if duration_s - ramp_s < MIN_STEADY_S:
        raise ConfigError(
            f"the steady phase (duration - ramp = {duration_s - ramp_s:g}s) must last at least "
            f"{MIN_STEADY_S:g}s to hold a rate to {settings.rate_tolerance_pct:g} %"
        )
    procs = settings.processes if processes is None else int(processes)
    if procs < 1:
        raise ConfigError(f"--processes must be 1 or more, got {procs}")
    path = locustfile_path(inv, settings, locustfile)
    url = str(inv.require("lb_url")).rstrip("/")
    hosts = () if local or not inv.has_group("loadgen") else tuple(inv.hosts("loadgen"))
    return LoadPlan(
        rps=r,
        headroom=h,
        target_rps=round(target, 6),
        duration_s=duration_s,
        ramp_s=ramp_s,
        processes=procs,
        locustfile=path.resolve(),
        arrivals=settings.arrivals,
        url=url,
        loadgen_hosts=hosts,
        drain_s=parse_duration(settings.drain, "load_drain"),
    )
