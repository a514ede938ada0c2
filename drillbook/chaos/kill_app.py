"""``chaos.kill-app``: SIGKILL one app instance; HAProxy must route around it and take it back."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from drillbook.chaos import analysis as an
from drillbook.chaos.measures import DATA, FAULT_WITNESSED, RECOVERED, ChaosMeasurements, Seen, detail
from drillbook.chaos.observers import Observers
from drillbook.chaos.plan import ChaosPlan, ChaosSettings
from drillbook.chaos.shape import ChaosDrill, Injected
from drillbook.core.checks import at_most, is_true, witnessed
from drillbook.core.errors import ConfigError
from drillbook.core.haproxy import server_down, server_up
from drillbook.core.inventory import AppInstance


class KillAppMeasurements(ChaosMeasurements):
    """What losing one instance shows: HAProxy's reaction, the survivors, the users' errors."""

    recovery_s: float | None = witnessed(
        "HAProxy stats (server UP again) and readiness probes, from the start command"
    )
    lb_detect_s: float | None = witnessed("HAProxy stats: the killed server DOWN, from the witnessed kill")
    lb_detect_detail: str = detail()
    lb_back_s: float | None = witnessed("HAProxy stats: the killed server UP again, from the start command")
    others_during_outage: dict[str, dict[str, int]] = witnessed(
        "readiness probes of the other instances", default={}
    )
    others_dropped_by_lb: list[str] | None = witnessed("HAProxy stats: other servers marked DOWN")
    others_stayed_in_rotation: bool = Field(default=False, exclude=True)  # the check's value only
    others_detail: str = detail()
    errors_detail: str = detail()
    killed_instance: str = ""


def killed_instance(plan: ChaosPlan) -> AppInstance:
    """The instance a kill-app plan targets (build_plan always names one for this fault)."""
    if plan.killed_instance is None:
        raise ConfigError(f"{plan.drill}: the plan names no instance to kill")
    return plan.killed_instance


class KillApp(ChaosDrill[KillAppMeasurements]):
    """SIGKILL one app instance: HAProxy must route around it and take it back after the restart."""

    name = "chaos.kill-app"
    runbook = "runbooks/app-outage.md"
    fault = "kill-app"
    measured = KillAppMeasurements
    checks = (
        FAULT_WITNESSED,
        at_most("lb_detect_s", limit_from="lb_detect_limit_s", detail_from="lb_detect_detail"),
        at_most("error_pct_during_outage", limit_from="app_error_pct_limit", detail_from="errors_detail"),
        # The survivors must stay in rotation: judged by HAProxy itself (one slow
        # readiness answer does not take a server out; `fall` of them do).
        is_true("others_stayed_in_rotation", detail_from="others_detail"),
        RECOVERED,
        *DATA,
    )
    key_figures = (
        "killed_instance",
        "lb_detect_s",
        "error_pct_during_outage",
        "recovery_s",
        "data_intact",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def __init__(self, plan: ChaosPlan, **options: Any) -> None:
        self.killed = killed_instance(plan).name
        self.others = [i.name for i in plan.instances if i.name != self.killed]
        super().__init__(plan, **options)

    def judged_settings(self, plan: ChaosPlan) -> ChaosSettings:
        """Without an HAProxy admin socket nothing can see the server DOWN: lb_detect_s is not judged."""
        if plan.haproxy_socket:
            return plan.settings
        return plan.settings.model_copy(update={"lb_detect_limit_s": None})

    def observe_for(self) -> float:
        return (self.s.lb_detect_limit_s or 0.0) + 0.2

    def observed_enough(self, obs: Observers, kill: float) -> bool:
        return obs.lb is None or obs.lb.first_where(self.killed, kill, server_down) is not None

    def recovered_at(self, obs: Observers, back: float, restore_cmd: float) -> float | None:
        ready = super().recovered_at(obs, back, restore_cmd)
        if ready is None or obs.lb is None:
            return ready
        up = obs.lb.first_where(self.killed, max(restore_cmd, back), server_up)
        return max(ready, up.t) if up else None

    def recovered_what(self) -> str:
        return f"{self.killed} (back in rotation)"

    def measure(self, seen: Seen, common: dict[str, Any], acted: Injected) -> KillAppMeasurements:
        kill, end = seen.kill.origin, seen.outage_end
        others = {n: an.statuses_between(seen.samples[n], kill, end) for n in self.others}
        m = KillAppMeasurements(**common, others_during_outage=others, killed_instance=self.killed)
        m.errors_detail = f"{m.failed_during_outage} of {m.requests_during_outage} failed"
        if seen.lb is None:
            bad = {n: c for n, c in others.items() if set(c) - {"200"}}
            m.others_stayed_in_rotation = not bad
            m.others_detail = f"readiness answers: {bad}" if bad else ""
            return m
        down = next((o for o in seen.lb if o.t >= kill and server_down(o.status.get(self.killed, ""))), None)
        m.lb_detect_s = round(down.t - kill, 3) if down else None
        m.lb_detect_detail = "" if down else f"HAProxy never marked {self.killed} DOWN"
        up = next(
            (o for o in seen.lb if o.t >= seen.restore_cmd and server_up(o.status.get(self.killed, ""))), None
        )
        m.lb_back_s = round(up.t - seen.restore_cmd, 3) if up else None
        dropped = sorted(
            {
                n
                for o in seen.lb
                if kill <= o.t <= end
                for n in self.others
                if server_down(o.status.get(n, ""))
            }
        )
        m.others_dropped_by_lb = dropped
        m.others_stayed_in_rotation = not dropped
        if dropped:
            m.others_detail = f"HAProxy marked {', '.join(dropped)} DOWN too (readiness answers: {others})"
        return m
