"""The fault itself: SIGKILL through Ansible, witness it, hold it, bring the service back.

The kill is measured from the *witnessed* fault (the first direct look that saw the
target refuse), not from the playbook that caused it; the role's own kill time and
the playbook's start are kept next to it (:class:`KillEvidence`), so the difference
is visible. :class:`Restorer` is the one way back: the observe phase's restart and
the restore phase's always-run undo both go through it, and every attempt is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from drillbook.chaos.plan import ChaosPlan
from drillbook.chaos.witness import Observation, Witness
from drillbook.core import interrupts
from drillbook.core.ansible import PlaybookResult, run_playbook
from drillbook.core.checks import Measurements, witnessed
from drillbook.core.drill import DrillRun
from drillbook.core.errors import DrillbookError, TargetUnreachable
from drillbook.core.probes import wait_until

PLAYBOOK = "chaos.yml"


def iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mono_from_wall(wall: float) -> float:
    """A wall-clock instant on the monotonic clock (for times reported by a host)."""
    return time.monotonic() - (time.time() - wall)


def playbook(run: DrillRun, plan: ChaosPlan, action: str, *, cancellable: bool) -> PlaybookResult:
    """``playbooks/chaos.yml`` with the target's role and ``action`` (kill, start) on its hosts."""
    t = plan.target
    return run_playbook(
        run.inventory,
        PLAYBOOK,
        limit=t.pattern,
        extravars={"chaos_target": t.pattern, "chaos_role": t.role, "chaos_action": action},
        progress=run.note,
        cancellable=cancellable,
    )


class KillEvidence(Measurements):
    """Both clocks of the kill, journaled as soon as the fault is witnessed (or given up on)."""

    kill_playbook_started_at: str | None = witnessed("ansible-runner")
    kill_playbook_s: float | None = None
    killed_pids: dict[str, Any] = Field(default_factory=dict)
    kill_at_playbook: str | None = witnessed("role kill task")
    kill_witnessed_at: str | None = witnessed(
        "direct protocol probe of the target, from the kill playbook on"
    )
    kill_witness_detail: str | None = None
    kill_witness_resolution_s: float | None = None
    kill_witness_lag_s: float | None = None
    kill_witnessed_after_playbook_start_s: float | None = None


@dataclass(frozen=True)
class Kill:
    """What the inject step hands on: when it began, what Ansible did, what the witness saw."""

    command_at: float  # monotonic, the kill playbook launched
    playbook: PlaybookResult
    witnessed: Observation | None  # first look that saw the target refuse; None: never seen
    origin: float  # monotonic instant every reaction is measured from

    @property
    def detail(self) -> str:
        if self.witnessed is None:
            return "the witness never saw the service refuse connections: the kill did not take"
        return f"refused at {iso(self.witnessed.wall)}"


def inject(run: DrillRun, plan: ChaosPlan, witness: Witness) -> Kill:
    """SIGKILL through the role's kill task, then wait for the witness to see the target refuse."""
    t, s = plan.target, plan.settings
    run.note(f"SIGKILL {t.service} on {', '.join(t.hosts)}")
    command_at = time.monotonic()
    pb = playbook(run, plan, "kill", cancellable=True)
    interrupts.raise_if_requested()
    killed: dict[str, dict[str, Any]] = {}
    for r in pb.for_task("Report what was killed"):
        facts = r.res.get("ansible_facts", {}) or {}
        found = facts.get("chaos_killed") or {}
        if isinstance(found, dict):
            killed[r.host] = found
    if killed and not any(k.get("pid") for k in killed.values()):
        run.note(f"[yellow]the kill task found no running {t.service} process[/yellow]")
    kill_walls = [float(k["killed_at"]) for k in killed.values() if k.get("killed_at")]
    seen: Observation | None = None
    deadline = command_at + s.witness_kill_timeout_s + pb.duration_s
    while time.monotonic() < deadline:
        seen = witness.first_down_after(command_at)
        if seen:
            break
        time.sleep(s.witness_interval_s)
    evidence = KillEvidence(
        kill_playbook_started_at=iso(pb.started_at),
        kill_playbook_s=round(pb.duration_s, 3),
        killed_pids={h: k.get("pid") for h, k in killed.items()},
        kill_at_playbook=iso(min(kill_walls)) if kill_walls else None,
    )
    if seen is None:
        run.record(evidence)
        run.note(f"[red]the witness never saw {t.service} refuse connections[/red]")
        origin = mono_from_wall(min(kill_walls)) if kill_walls else mono_from_wall(pb.finished_at)
        return Kill(command_at, pb, None, origin)
    before = witness.last_up_before(seen.t)
    evidence.kill_witnessed_at = iso(seen.wall)
    evidence.kill_witness_detail = seen.detail
    evidence.kill_witness_resolution_s = round(seen.t - before.t, 3) if before else None
    evidence.kill_witness_lag_s = round(seen.wall - min(kill_walls), 3) if kill_walls else None
    evidence.kill_witnessed_after_playbook_start_s = round(seen.wall - pb.started_at, 3)
    run.record(evidence)
    run.note(f"fault witnessed: {t.service} {seen.detail}")
    return Kill(command_at, pb, seen, seen.t)


def hold(
    run: DrillRun, plan: ChaosPlan, duration_s: float, kill: Kill, must_see_s: float, seen: Callable[[], bool]
) -> float:
    """Keep the fault ``duration_s`` from the witnessed kill; returns when the restore starts (monotonic).

    Never cut short what the drill is there to see: the hold lasts at least
    ``must_see_s`` unless ``seen()`` says the reaction has happened already.
    """
    start = kill.origin
    until = start + duration_s
    must_observe = start + must_see_s
    run.note(f"holding the fault for {duration_s:g} s")
    while True:
        now = time.monotonic()
        if now >= until and (now >= must_observe or seen()):
            break
        time.sleep(min(plan.settings.probe_interval_s, max(0.01, until - now)))
    return time.monotonic()


@dataclass
class Attempt:
    """One thing tried to bring the service back, for the journal."""

    action: str
    ok: bool
    duration_s: float
    detail: str = ""


@dataclass
class Restorer:
    """Starts the target through Ansible (``start`` + ``wait_ready``); shared by observe and restore.

    ``attempts`` is the drill's own list, so the report shows every attempt even when
    the drill ended in error. ``recovery_measured`` turns a failed second start into a
    note instead of an error: the ``recovery_s`` check already tells that story.
    """

    plan: ChaosPlan
    witness: Witness
    attempts: list[Attempt] = field(default_factory=list)
    restored: bool = False
    recovery_measured: bool = False

    def attempt(self, run: DrillRun) -> Attempt:
        t = self.plan.target
        action = f"playbooks/{PLAYBOOK}: {t.role} start + wait_ready on {t.pattern}"
        t0 = time.monotonic()
        try:
            pb = playbook(run, self.plan, "start", cancellable=False)
        except DrillbookError as exc:
            attempt = Attempt(action, False, round(time.monotonic() - t0, 3), str(exc))
        else:
            attempt = Attempt(action, True, round(pb.duration_s, 3), f"{pb.changed} changed")
        self.attempts.append(attempt)
        run.measure("restore_attempts", [asdict(a) for a in self.attempts], witness="ansible-runner")
        return attempt

    def restart(self, run: DrillRun) -> Attempt:
        """The observe phase's restart: not cancellable (a half-started database helps nobody)."""
        run.note(f"restarting {self.plan.target.service}")
        with interrupts.shielded():
            attempt = self.attempt(run)
            self.restored = attempt.ok
        interrupts.raise_if_requested()
        if not attempt.ok:
            run.note(f"[red]restore failed:[/red] {attempt.detail}")
        return attempt

    def ensure(self, run: DrillRun) -> None:
        """The always-run undo: start the service unless it is back already; idempotent."""
        s, t = self.plan.settings, self.plan.target
        look = self.witness.look()
        if self.restored and look.up:
            run.note(f"{t.service} already restored")
            return
        run.note(f"restoring {t.service} ({look.detail})")
        attempt = self.attempt(run)
        if not attempt.ok:
            if self.recovery_measured:  # a failed check tells the story; do not turn fail into error
                run.note(f"[red]second restore attempt failed too:[/red] {attempt.detail}")
                return
            raise TargetUnreachable(f"could not restart {t.service}: {attempt.detail}")
        self.restored = True
        if wait_until(lambda: self.witness.look().up, s.recovery_limit_s) is None:
            raise TargetUnreachable(
                f"{t.service} at {t.address} still refuses connections "
                f"{s.recovery_limit_s:g} s after the start"
            )
        # Give the instances a moment to see it (readiness), without failing the restore on it.
        ready = self.plan.readiness
        wait_until(lambda: all(ready.ready(ready.check(i.url, 1.0)) for i in self.plan.instances), 10.0)
