"""The audits as drills: journaled, one declared check per finding, judged like any drill.

An audit changes nothing, so it has no act: ``preflight`` reads and validates its
settings (a wrong ``audit_*`` variable stops it before a request is sent) and
``observe`` runs the checks. Each finding becomes an :class:`Outcome`, and the
single declared check ``each_ok("findings")`` turns every one into a journal
check of the finding's name, the names ``checklist.yml`` refers to.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from drillbook.audit import AUDIT_CHECKS
from drillbook.audit import hosts as hosts_audit
from drillbook.audit import http as http_audit
from drillbook.audit.http import Finding
from drillbook.core.checks import CheckSpec, Measurements, Outcome, each_ok
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import DrillbookError


class AuditMeasured(Measurements):
    """Every finding of one audit, and how many there were and failed."""

    findings: list[Outcome] = Field(default_factory=list)
    checks: int = 0
    checks_failed: int = 0
    #: Checks the service profile gives nothing to probe: reported, never failing.
    checks_not_applicable: int = 0


def record_findings(drill: str, findings: list[Finding]) -> AuditMeasured:
    """The record of ``findings``; refuses findings that differ from the registry the checklist trusts.

    ``AUDIT_CHECKS`` is what ``inv checklist`` validates its evidence against: an
    audit that recorded other names would leave checklist items silently unproven.
    """
    names = [f.name for f in findings]
    if names != list(AUDIT_CHECKS[drill]):
        raise DrillbookError(
            f"{drill} produced checks {names}, but drillbook.audit.AUDIT_CHECKS lists "
            f"{list(AUDIT_CHECKS[drill])}: the audit registry is out of step"
        )
    return AuditMeasured(
        findings=[
            Outcome(
                name=f.name,
                ok=f.ok,
                value=("ok" if f.ok else "FAILED") if f.applicable else "not applicable",
                expected="ok",
                detail=f.evidence,
            )
            for f in findings
        ],
        checks=len(findings),
        checks_failed=sum(1 for f in findings if not f.ok),
        checks_not_applicable=sum(1 for f in findings if not f.applicable),
    )


class HttpAudit(Drill[http_audit.HttpAuditSettings, None, AuditMeasured]):
    """Outside-in checks of the service behind the load balancer."""

    name: ClassVar[str] = "audit.http"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"
    measured: ClassVar[type[BaseModel] | None] = AuditMeasured
    checks: ClassVar[tuple[CheckSpec, ...]] = (each_ok("findings"),)

    def preflight(self, run: DrillRun) -> http_audit.HttpAuditSettings:
        """The ``audit_http_*`` variables, validated before any request is sent."""
        return run.inventory.settings(http_audit.HttpAuditSettings, prefix="audit_http_")

    def observe(self, run: DrillRun, plan: http_audit.HttpAuditSettings, acted: None) -> AuditMeasured:
        """Every HTTP check through the load balancer; an unreachable target is failed findings."""
        run.note(f"auditing {run.inventory.topology.lb_url} from outside")
        return record_findings(self.name, http_audit.run_checks(run.inventory, plan))


class HostsAudit(Drill[hosts_audit.HostAuditSettings, None, AuditMeasured]):
    """Checks on the hosts: service user, Redis persistence, PostgreSQL settings, backup schedule, secrets."""

    name: ClassVar[str] = "audit.hosts"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"
    measured: ClassVar[type[BaseModel] | None] = AuditMeasured
    checks: ClassVar[tuple[CheckSpec, ...]] = (each_ok("findings"),)

    def preflight(self, run: DrillRun) -> hosts_audit.HostAuditSettings:
        """The ``audit_*`` variables, validated before the read-only playbook runs."""
        return run.inventory.settings(hosts_audit.HostAuditSettings, prefix="audit_")

    def observe(self, run: DrillRun, plan: hosts_audit.HostAuditSettings, acted: None) -> AuditMeasured:
        """Read every host's facts (playbooks/audit-hosts.yml) and judge them here, in Python."""
        return record_findings(self.name, hosts_audit.run_checks(run.inventory, plan, progress=run.note))
