"""HAProxy's per-server counters sampled on a clock: the load balancer's witness of a canary.

The judge reads the instances' own metrics; this watch reads what the load
balancer saw, independently: when the canary served its first request (the
start of ``detection_s``), how many 5xx the canary servers sent to users
(``failed_requests``), and whether HAProxy's health checks hold the canary and
the baseline UP (readiness, judged canary against baseline). It is core's
:class:`~drillbook.core.haproxy.HAProxyWatch` (one HAProxy watch for every drill)
with the canary's questions on top; one ``show stat`` costs well under a
millisecond, so a 100 ms clock is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from drillbook.core.haproxy import HAProxyWatch, ServerTable, check_failed_hard


@dataclass(frozen=True)
class Readiness:
    """HAProxy's view at one look: which canary and baseline servers it does not hold UP, and why."""

    canary_down: list[str] = field(default_factory=list)  # "app-1 DOWN (L7TOUT)"
    baseline_down: list[str] = field(default_factory=list)
    #: No canary server that is down was refused or answered "not ready": its checks timed out,
    #: or it is rising back after them (slow, not "no").
    timeouts_only: bool = False


class ServerWatch(HAProxyWatch):
    """The canary's witness: first canary response, canary and baseline readiness."""

    def __init__(
        self,
        address: str,
        backend: str,
        canary: Sequence[str],
        baseline: Sequence[str] = (),
        interval_s: float = 0.1,
    ) -> None:
        super().__init__(address, backend, interval_s, name="canary-haproxy-watch")
        self.canary = list(canary)
        self.baseline = list(baseline)

    def canary_total(self, table: ServerTable) -> int:
        return sum(table.servers[s].http_total for s in self.canary if s in table.servers)

    def first_canary_request(self, after: float) -> float | None:
        """Earliest moment the canary can have served its first request after ``after`` (monotonic).

        That is the look *before* the first look whose canary response count grew, so
        ``detection_s`` measured from it errs long, never short.
        """
        tables = [t for t in self.snapshot() if t.error is None]
        before = [t for t in tables if t.t <= after]
        if not before:
            return None
        prev = before[-1]
        base = self.canary_total(prev)
        for table in tables[len(before) :]:
            if self.canary_total(table) > base:
                return max(after, prev.t)
            prev = table
        return None

    def readiness(self) -> Readiness:
        """Canary and baseline servers HAProxy does not hold UP at the latest look (DRAIN counts as up)."""
        table = self.latest()
        if table is None or table.error is not None:
            why = "no look yet" if table is None else table.error
            return Readiness([f"{n} unknown ({why})" for n in self.canary], [], False)
        canary, timeouts = _down(table, self.canary)
        baseline, _ = _down(table, self.baseline)
        return Readiness(canary, baseline, bool(canary) and timeouts)

    def canary_down(self) -> list[str]:
        """Canary servers HAProxy does not hold UP right now (DOWN, MAINT...); DRAIN counts as up."""
        return self.readiness().canary_down


def _down(table: ServerTable, names: Sequence[str]) -> tuple[list[str], bool]:
    """(servers not UP with their status and last check, whether none of them failed hard)."""
    out, timeouts = [], True
    for name in names:
        stat = table.servers.get(name)
        if stat is None:
            out.append(f"{name} missing")
            timeouts = False
        elif not (stat.up or stat.status.startswith("DRAIN")):
            check = stat.check_status.removeprefix("* ").strip()
            out.append(f"{name} {stat.status}" + (f" ({check})" if check else ""))
            timeouts = timeouts and not check_failed_hard(stat.check_status)
    return out, timeouts
