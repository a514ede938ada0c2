"""Readiness, liveness and "degraded", as the service profile defines them (``service_health``).

Every probe a drill sends to ask "is this instance ready?" is built here, from the
profile, never from a path written in drill code. The profile says where readiness
answers (or that it is a TCP connect, for a service with no readiness path), which
statuses mean ready (``ready_status``: ``[200]``, ``["2xx"]``...), how long an answer
may take, and how the service says it is serving without a dependency (the
"degraded" signal the Redis drill waits for).

Not ready is everything else: another status, a timeout, a refused connection. A
drill that waits for "not ready" after killing the database therefore accepts a
503, a 500 or an instance that stopped answering alike: what the service promised
is "not 2xx", not one particular code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from drillbook.core.probes import Probe, Sample, check_url
from drillbook.core.profile import Health, status_matches

if TYPE_CHECKING:
    from drillbook.core.inventory import Inventory


@dataclass(frozen=True)
class Readiness:
    """The profile's health section, as probes and judges of their samples."""

    health: Health

    @classmethod
    def of(cls, inv: Inventory) -> Readiness:
        """The inventory's readiness (validated profile; a mistake is one ConfigError line)."""
        from drillbook.core.profile import load_profile

        return cls(load_profile(inv).health)

    # -- where --------------------------------------------------------------------------
    @property
    def tcp(self) -> bool:
        """True when the profile has no readiness path, so a TCP connect is all readiness means."""
        return self.health.tcp

    def url(self, base_url: str) -> str:
        """Where one instance's readiness answers: ``base + ready``, or ``tcp://host:port``."""
        if self.health.ready is None:
            parts = urlsplit(base_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return f"tcp://{parts.hostname or '127.0.0.1'}:{port}"
        return base_url.rstrip("/") + self.health.ready

    def live_url(self, base_url: str) -> str:
        """Liveness (``live``), else readiness: what says "the process answers"."""
        if self.health.live is None:
            return self.url(base_url)
        return base_url.rstrip("/") + self.health.live

    def describe(self) -> str:
        """How readiness is asked and judged, for plans and reports."""
        h = self.health
        if h.ready is None:
            return f"TCP connect (no readiness path), timeout {h.timeout_s:g} s"
        statuses = ", ".join(str(s) for s in h.ready_status)
        return f"GET {h.ready}: ready = {statuses} within {h.timeout_s:g} s"

    # -- asking -------------------------------------------------------------------------
    def probe(self, name: str, base_url: str, *, interval_s: float, timeout_s: float | None = None) -> Probe:
        """A probe of one instance's readiness, judged by :meth:`ready`, body and headers kept."""
        return Probe(
            name,
            self.url(base_url),
            interval_s=interval_s,
            timeout_s=timeout_s if timeout_s is not None else self.health.timeout_s,
            judge=self.ready,
            keep_body=True,
        )

    def check(self, base_url: str, timeout_s: float | None = None) -> Sample:
        """One readiness answer of the instance at ``base_url``."""
        return check_url(self.url(base_url), timeout_s if timeout_s is not None else self.health.timeout_s)

    # -- judging ------------------------------------------------------------------------
    def ready(self, s: Sample) -> bool:
        """Ready: connected (TCP), or a status in ``ready_status`` (HTTP)."""
        if self.health.ready is None:
            return s.connected is True
        return status_matches(self.health.ready_status, s.status)

    def not_ready(self, s: Sample) -> bool:
        """Anything but ready: another status, a timeout, a refused connection."""
        return not self.ready(s)

    @property
    def has_degraded(self) -> bool:
        """The profile declares a "degraded" signal."""
        return self.health.degraded is not None

    def degraded(self, s: Sample) -> bool | None:
        """What the degraded signal says of ``s``; None when there is none or it cannot be read."""
        d = self.health.degraded
        if d is None or (s.status is None and s.connected is None):
            return None
        if d.status is not None:
            return s.status == d.status
        if d.header is not None:
            value = (s.headers or {}).get(d.header.lower())
            return value is not None if d.equals is True else value == str(d.equals)
        return _pointer(s.body, d.json_pointer or "") == d.equals if s.body else None

    def degraded_serving(self, s: Sample) -> bool:
        """Serving without a dependency: ready (or the degraded status) and the signal set."""
        d = self.health.degraded
        if d is None:
            return False
        if d.status is not None:
            return s.status == d.status
        return self.ready(s) and self.degraded(s) is True

    def serving(self, s: Sample) -> bool:
        """Ready, degraded or not (what kill-redis wants all through the outage)."""
        return self.ready(s) or self.degraded_serving(s)

    def fully_ready(self, s: Sample) -> bool:
        """Ready and not degraded (steady state before, recovery after the Redis drill)."""
        return self.ready(s) and not self.degraded_serving(s)

    def state(self, s: Sample) -> str:
        """One sample in a few words, for timelines and details: ``503``, ``200 degraded``."""
        return s.answer + (" degraded" if self.degraded_serving(s) else "")


_MISSING = object()


def _pointer(body: str, pointer: str) -> Any:
    """The value at ``pointer`` in a JSON ``body``; a marker object when absent or not JSON."""
    import json

    import jsonpointer  # type: ignore[import-untyped]

    try:
        return jsonpointer.resolve_pointer(json.loads(body), pointer)
    except (ValueError, jsonpointer.JsonPointerException, TypeError):
        return _MISSING
