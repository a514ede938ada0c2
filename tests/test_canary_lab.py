"""Canary rollouts on the real lab: promote a good release, roll back bad and slow ones, Ctrl-C.

Every test leaves the lab as it found it: release 1.0.0 on every instance, weights as
configured. Windows are short (a few seconds) and steps few, so the judge decides
quickly; the deploys themselves are what takes time.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook import labenv as lab_
from drillbook.canary.drill import CanaryDrill, PromoteDrill, RollbackDrill, load_settings
from drillbook.canary.releases import artifact
from drillbook.canary.settings import CanarySettings
from drillbook.canary.state import Fleet
from drillbook.canary.status import fleet_status
from drillbook.core.drill import DrillContext, execute
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: The canary out of rotation through HAProxy's runtime API: well under a playbook run's seconds.
CANARY_OFF_MS = 500
BASE = "1.0.0"


def build(inv: Inventory, version: str, **knobs: Any) -> str:
    """Build a release; when the source changed since an earlier build of that name, a fresh name."""
    try:
        lab_.build_release(inv, version, **knobs)
        return version
    except ConfigError:
        fresh = f"{version}+{int(time.time())}"
        lab_.build_release(inv, fresh, **knobs)
        return fresh


@pytest.fixture(scope="module")
def env(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Releases built, a private rollout record, the lab at 1.0.0 before and after."""
    state = tmp_path_factory.mktemp("canary-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRILLBOOK_STATE_DIR", str(state))
        releases = {
            "good": build(lab_inventory, "2.0.0"),
            "bad": build(lab_inventory, "2.0.1-bad", error_rate=0.2),
            "slow": build(lab_inventory, "2.0.2-slow60", latency_ms=60),
        }
        reports = tmp_path_factory.mktemp("canary-reports")
        back_to_base(lab_inventory, reports)
        yield {"releases": releases, "reports": reports, "state": state}
        back_to_base(lab_inventory, reports)


def back_to_base(inv: Inventory, reports: Path) -> None:
    fleet = fleet_status(inv)
    if fleet.version != BASE or not fleet.steady:
        run(RollbackDrill(quick(inv), to_version=BASE), inv, reports)
    assert_fleet(fleet_status(inv), BASE)


def run(drill: Any, inv: Inventory, reports: Path) -> Journal:
    return execute(drill, DrillContext(inventory=inv, report_root=reports, quiet=True))


def quick(inv: Inventory, **changes: Any) -> CanarySettings:
    base = load_settings(inv).model_dump()
    # Short windows; no time budget for the rollback (speed is the benchmark's business). A few
    # hundred requests can only show large error-rate increases: the tests ask for 25 % (the
    # statistics' sensitivity is the unit tests' and the benchmark's business).
    # A step holds past its window only while its evidence is short: 30 s of sample wait cost
    # nothing on a quiet machine and let a busy one (load 15: 150 req/s asked, ~45 given) finish.
    base.update(window_s=3, interval_s=0.5, sample_wait_s=30, min_samples=10, rollback_budget_s=3600)
    base.update(error_detectable=0.25, latency_tail_min_samples=20)
    base.update(changes)
    return CanarySettings.model_validate(base)


def assert_fleet(fleet: Fleet, version: str, canary_version: str | None = None) -> None:
    """Every instance on ``version`` (the canary on ``canary_version``), ready, weights as configured."""
    for inst in fleet.instances:
        want = canary_version if inst.canary and canary_version else version
        assert inst.version == want, (inst.instance, inst.version, want)
        assert inst.ready, inst
        assert inst.weight == inst.initial_weight, inst
        assert inst.lb_status and inst.lb_status.startswith("UP"), inst


def test_good_release_pauses_then_promotes_and_rolls_back(
    lab_inventory: Inventory, env: dict[str, Any]
) -> None:
    inv, good, reports = lab_inventory, env["releases"]["good"], env["reports"]
    drill = CanaryDrill(quick(inv, steps=[25, 100]), good, traffic_rps=60, pause_before_promote=True)
    journal = run(drill, inv, reports)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    steps = journal.measurements["steps"]
    assert [s["weight"] for s in steps] == [25, 100] and all(s["decision"] == "pass" for s in steps)
    assert all(s["canary_requests"] >= 10 and s["canary_errors"] == 0 for s in steps)
    m = journal.measurements
    assert m["failed_requests"] == 0 and m["analysis"] == "pass" and m["enough_evidence"] is True
    # Every numeric check carries its numeric limit; latency was judged on per-request answers.
    checks = {c.name: c for c in journal.checks}
    assert checks["error-rate increase, lower confidence bound (%)"].limit == 0
    assert checks["latency shift, lower confidence bound / tolerance"].limit == 1.0
    # ... on HAProxy's server time, against the control (app-2 at the canary's weight).
    assert steps[0]["latency_source"] == "server time" and steps[0]["canary_latency_n"] >= 20
    assert steps[0]["latency_against"] == ["app-2"] and steps[1]["latency_against"] == []
    # Paused: the canary runs the release at its normal share, the rest the old one.
    paused = fleet_status(inv, links=True)
    assert_fleet(paused, BASE, canary_version=good)
    assert paused.rollout is not None and paused.rollout.phase == "paused"
    canary = next(i for i in paused.instances if i.canary)
    assert (canary.linked, canary.previous) == (good, BASE)

    journal = run(PromoteDrill(quick(inv)), inv, reports)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    promoted = fleet_status(inv)
    assert_fleet(promoted, good)
    assert promoted.rollout is not None and promoted.rollout.phase == "promoted"
    with pytest.raises(ConfigError, match="nothing to promote"):
        PromoteDrill(quick(inv)).preflight(_bare_run(inv, reports))

    # The incident fast path takes everyone back.
    journal = run(RollbackDrill(quick(inv)), inv, reports)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    assert journal.measurements["to_version"] == BASE
    # Off through the runtime API at once, not after a playbook (seconds); the figure itself is
    # a benchmark's: 33-102 ms measured here with other tests and helpers busy on both cores.
    assert journal.measurements["canary_off_ms"] < CANARY_OFF_MS
    assert_fleet(fleet_status(inv), BASE)


def _bare_run(inv: Inventory, reports: Path) -> Any:
    from drillbook.core.drill import DrillRun

    journal = Journal(drill="t", inventory=inv.name, environment=inv.environment)
    return DrillRun(PromoteDrill(quick(inv)), DrillContext(inventory=inv, quiet=True), reports, journal)


@pytest.mark.parametrize(
    ("release", "check"),
    [
        ("bad", "error-rate increase, lower confidence bound (%)"),
        ("slow", "latency shift, lower confidence bound / tolerance"),
    ],
    ids=["bad", "slow"],
)
def test_bad_release_is_rolled_back(
    lab_inventory: Inventory, env: dict[str, Any], release: str, check: str
) -> None:
    """20 % errors, and +60 ms on every request (the lab's p95 is 3-10 ms on a quiet machine)."""
    inv, reports = lab_inventory, env["reports"]
    drill = CanaryDrill(quick(inv, steps=[5, 25, 50], window_s=20), env["releases"][release], traffic_rps=150)
    journal = run(drill, inv, reports)
    assert journal.verdict == "fail" and journal.exit_code == 1, journal.error
    failed = {c.name: c for c in journal.failed_checks}
    assert check in failed and "promoted (or paused as asked)" in failed, list(failed)
    m = journal.measurements
    assert m["analysis"] == "breach" and m["steps"][-1]["decision"] == "breach"
    assert m["steps"][-1]["weight"] in (5, 25), m["steps"][-1]  # caught where latency is judged
    # Say why: the test, its statistic, the effect.
    if release == "slow":
        assert "U-test p =" in failed[check].detail and "shift +" in failed[check].detail
        assert failed[check].value > 1 and m["steps"][-1]["latency_shift_ms"] > 10
    else:
        assert "Fisher p =" in failed[check].detail and failed[check].value > 0
        assert 0 < m["failed_requests"] <= 30
    assert "canary requests" in m["reason"] and 0 < m["detection_s"] < 60
    assert m["rollback_s"] > 0 and m["canary_off_ms"] < CANARY_OFF_MS
    assert m["rollout_phase"] == "rolled_back"
    fleet = fleet_status(inv)
    assert_fleet(fleet, BASE)
    assert fleet.rollout is not None and fleet.rollout.phase == "rolled_back"


def lb_median_ms(inv: Inventory, n: int = 200) -> float:
    """The service's median latency through the load balancer right now."""
    import statistics

    import httpx

    times = []
    with httpx.Client(base_url=inv.topology.lb_url, timeout=5) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            client.get("/items?limit=10")
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def test_release_slightly_slower_than_the_baseline_is_promoted(
    lab_inventory: Inventory, env: dict[str, Any]
) -> None:
    """5 % slower (at least 1 ms, the knob's unit) is below the tolerance max(20 %, 10 ms): promoted."""
    inv, reports = lab_inventory, env["reports"]
    extra = max(1, round(0.05 * lb_median_ms(inv)))
    version = build(inv, f"2.0.3-slower{extra}ms", latency_ms=extra)
    try:
        journal = run(CanaryDrill(quick(inv, steps=[5, 25, 100]), version, traffic_rps=150), inv, reports)
        assert journal.verdict == "pass", (journal.error, [(c.name, c.detail) for c in journal.failed_checks])
        m = journal.measurements
        assert m["promoted"] is True and m["latency_effect_ratio"] < 1
        judged = [s for s in m["steps"] if s["latency_judged"]]
        assert [s["weight"] for s in judged] == [5, 25], judged
        assert all(s["latency_tolerance_ms"] >= 10 and s["canary_latency_n"] >= 20 for s in judged), judged
        assert_fleet(fleet_status(inv), version)
    finally:
        back_to_base(inv, reports)


def test_ctrl_c_mid_canary_leaves_the_fleet_as_before(lab_inventory: Inventory, env: dict[str, Any]) -> None:
    inv = lab_inventory
    cmd = [
        sys.executable,
        "-m",
        "invoke",
        "deploy.canary",
        "--version",
        env["releases"]["good"],
        "--window",
        "60",
        "--traffic",
        "30",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "DRILLBOOK_REPORT_DIR": str(env["reports"]), "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "analysing for" in line:
            break
    else:
        pytest.fail("the canary never reached its first step:\n" + "".join(seen[-20:]))
    during = fleet_status(inv)
    canary = next(i for i in during.instances if i.canary)
    assert canary.version == env["releases"]["good"] and canary.weight not in (0, canary.initial_weight)
    assert during.rollout is not None and during.rollout.phase == "canary"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130
    fleet = fleet_status(inv)
    assert_fleet(fleet, BASE)
    assert fleet.rollout is not None and fleet.rollout.phase == "rolled_back"


def patched(inv: Inventory, **changes: Any) -> Inventory:
    """The lab inventory with a changed topology (a missing socket, a dead instance)."""
    other = load_inventory(inv.path)
    other.__dict__["topology"] = dataclasses.replace(inv.topology, **changes)
    return other


def test_bad_input_refused_before_anything_moves(
    lab_inventory: Inventory, env: dict[str, Any], tmp_path: Path
) -> None:
    inv, reports = lab_inventory, env["reports"]
    unknown = run(CanaryDrill(quick(inv), "9.9.9-nope", traffic_rps=0), inv, reports)
    assert unknown.verdict == "error" and "unknown release 9.9.9-nope" in (unknown.error or "")
    assert "inv lab.release --version 9.9.9-nope" in (unknown.error or "")

    no_socket = patched(inv, haproxy_socket=str(tmp_path / "missing.sock"))
    journal = run(CanaryDrill(quick(inv), env["releases"]["good"], traffic_rps=0), no_socket, reports)
    assert journal.verdict == "error" and "admin socket" in (journal.error or "")

    first, *rest = inv.topology.app_instances
    dead = dataclasses.replace(first, url="http://127.0.0.1:9")
    unreachable = patched(inv, app_instances=(dead, *rest))
    journal = run(CanaryDrill(quick(inv), env["releases"]["good"], traffic_rps=0), unreachable, reports)
    assert journal.verdict == "error" and "not answering: app-1" in (journal.error or "")
    assert_fleet(fleet_status(inv), BASE)


def test_step_with_too_few_samples_says_not_enough_evidence(
    lab_inventory: Inventory, env: dict[str, Any]
) -> None:
    inv = lab_inventory
    drill = CanaryDrill(
        quick(inv, window_s=2, settle_s=0.5, sample_wait_s=1), env["releases"]["good"], traffic_rps=0
    )
    journal = run(drill, inv, env["reports"])
    assert journal.verdict == "fail"
    failed = {c.name: c for c in journal.failed_checks}
    evidence = failed["enough evidence to decide"]
    assert evidence.value is False and evidence.detail.startswith("step 5%: not enough evidence")
    # What was missing is named (the lab's probes may reach the canary with a few requests).
    assert "canary served" in evidence.detail or "latency:" in evidence.detail, evidence.detail
    assert journal.measurements["analysis"] == "insufficient"
    assert journal.measurements["steps"][0]["decision"] == "insufficient"
    assert_fleet(fleet_status(inv), BASE)


def test_release_that_never_becomes_ready_is_rolled_back(
    lab_inventory: Inventory, env: dict[str, Any]
) -> None:
    """A release whose service refuses to start (a broken release.json): clear message, fleet as before."""
    inv = lab_inventory
    version = f"2.0.9-broken-{int(time.time())}"
    good = artifact(inv, env["releases"]["good"])
    target = artifact(inv, version)
    assert good is not None and target is not None
    with tarfile.open(good) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "release.json":
                body = b'{"version": "%s", "error_rate": 5}' % version.encode()
                member.size = len(body)
                data = io.BytesIO(body)
            dst.addfile(member, data)
    try:
        drill = CanaryDrill(quick(inv, ready_timeout_s=8), version, traffic_rps=20)
        journal = run(drill, inv, env["reports"])
    finally:
        target.unlink()
    assert journal.verdict == "fail", journal.error
    failed = {c.name: c for c in journal.failed_checks}
    assert "refservice" in failed["canary deployed and ready"].detail
    assert journal.measurements["rollout_phase"] == "rolled_back"
    assert_fleet(fleet_status(inv), BASE)
