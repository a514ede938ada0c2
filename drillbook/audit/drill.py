"""The audits as drills: journaled, one named check per finding, judged like any drill."""

from __future__ import annotations

from typing import ClassVar

from drillbook.audit import AUDIT_CHECKS
from drillbook.audit import hosts as hosts_audit
from drillbook.audit import http as http_audit
from drillbook.audit.http import Finding
from drillbook.core.drill import DrillRun, LegacyDrill


def _record(run: DrillRun, drill: str, findings: list[Finding]) -> None:
    assert [f.name for f in findings] == list(AUDIT_CHECKS[drill]), "audit registry out of step"
    for f in findings:
        run.check(f.name, "ok" if f.ok else "FAILED", "ok", f.ok, f.evidence)
    run.measure("checks", len(findings))
    run.measure("checks_failed", sum(1 for f in findings if not f.ok))


class HttpAudit(LegacyDrill):
    """Outside-in checks of the service behind the load balancer."""

    name: ClassVar[str] = "audit.http"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"

    def verify(self, run: DrillRun) -> None:
        settings = run.inventory.settings(http_audit.HttpAuditSettings, prefix="audit_http_")
        run.note(f"auditing {run.inventory.topology.lb_url} from outside")
        _record(run, self.name, http_audit.run_checks(run.inventory.topology, settings))


class HostsAudit(LegacyDrill):
    """Checks on the hosts: service user, Redis persistence, PostgreSQL settings, backup schedule, secrets."""

    name: ClassVar[str] = "audit.hosts"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"

    def verify(self, run: DrillRun) -> None:
        settings = run.inventory.settings(hosts_audit.HostAuditSettings, prefix="audit_")
        _record(run, self.name, hosts_audit.run_checks(run.inventory, settings, progress=run.note))
