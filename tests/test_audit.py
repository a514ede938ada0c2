"""audit.http and audit.hosts on the lab, and a misconfigured release the HTTP audit must catch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from drillbook import labenv as lab_
from drillbook.audit import AUDIT_CHECKS
from drillbook.audit.drill import HostsAudit, HttpAudit
from drillbook.core.ansible import run_playbook
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal

pytestmark = pytest.mark.lab

DEAD_TARGET = __import__("pathlib").Path(__file__).parent / "data" / "inventory"


def _audit(drill: Any, inv: Inventory, report_root: Any) -> Journal:
    return execute(drill, DrillContext(inventory=inv, report_root=report_root, quiet=True))


def test_http_audit_passes_on_the_lab(
    lab: dict[str, Any], lab_inventory: Inventory, report_root: Any
) -> None:
    journal = _audit(HttpAudit(), lab_inventory, report_root)
    assert journal.verdict == "pass", [(c.name, c.detail) for c in journal.failed_checks]
    checks = {c.name: c for c in journal.checks}
    assert "429 after" in checks["rate_limit"].detail and "Retry-After" in checks["rate_limit"].detail
    assert "-> 413" in checks["body_limit"].detail
    assert " 0 repeated, 0 of " in checks["pagination_stable"].detail


def test_hosts_audit_passes_on_the_lab(
    lab: dict[str, Any], lab_inventory: Inventory, report_root: Any
) -> None:
    journal = _audit(HostsAudit(), lab_inventory, report_root)
    assert journal.verdict == "pass", [(c.name, c.detail) for c in journal.failed_checks]
    checks = {c.name: c for c in journal.checks}
    assert "refservice" in checks["service_user_not_root"].detail
    assert "statement_timeout=30s" in checks["postgres_settings"].detail


@pytest.fixture()
def misconfigured_cors(lab: dict[str, Any], lab_inventory: Inventory) -> Iterator[None]:
    """Every instance runs a release whose CORS allows any origin with credentials; 1.0.0 is put back."""
    version = f"0.9.0-cors.{int(time.time())}"  # releases are immutable: a fresh one each run
    lab_.build_release(lab_inventory, version, misconfigure=("cors",))
    try:
        run_playbook(
            lab_inventory, "deploy.yml", extravars={"deploy_version": version, "deploy_migrate": False}
        )
        yield
    finally:
        run_playbook(
            lab_inventory,
            "deploy.yml",
            extravars={"deploy_version": "1.0.0", "deploy_migrate": False},
            cancellable=False,
        )


def test_http_audit_catches_misconfigured_cors(
    misconfigured_cors: None, lab_inventory: Inventory, report_root: Any
) -> None:
    journal = _audit(HttpAudit(), lab_inventory, report_root)
    assert journal.verdict == "fail"
    failed = {c.name: c for c in journal.failed_checks}
    assert "cors_credentials" in failed and "with credentials" in failed["cors_credentials"].detail
    assert "security_headers" not in failed and "error_format" not in failed


def test_unreachable_target_fails_checks_without_traceback(report_root: Any) -> None:
    journal = _audit(HttpAudit(), load_inventory(DEAD_TARGET), report_root)
    assert journal.verdict == "fail" and journal.error is None
    assert all("unreachable" in c.detail for c in journal.failed_checks)


# -- audit.hosts: the secrets scan ----------------------------------------------------


def _secrets_scan(inv: Inventory, releases_dir: Any) -> Any:
    """The audit's own playbook, pointed at ``releases_dir`` on every app host, judged by its own code."""
    from drillbook.audit.hosts import secrets

    result = run_playbook(inv, "audit-hosts.yml", extravars={"audit_releases_dir": str(releases_dir)})
    return secrets(result)


def test_secrets_scan_fails_when_the_directory_does_not_exist(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path: Any
) -> None:
    finding = _secrets_scan(lab_inventory, tmp_path / "no-such-releases")
    assert finding.ok is False
    assert "no-such-releases not scanned" in finding.evidence


def test_secrets_scan_matches_case_insensitively_and_only_world_readable_files(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path: Any
) -> None:
    releases = tmp_path / "releases" / "1.0.0"
    releases.mkdir(parents=True)
    env = releases / "app.env"
    env.write_text("POSTGRES_PASSWORD=hunter2hunter2\n")
    env.chmod(0o644)
    private = releases / "private.env"
    private.write_text('db_password: "correct-horse-battery"\n')
    private.chmod(0o600)
    harmless = releases / "models.py"
    harmless.write_text("password: Optional[str] = None\ntoken = create_token(user)\n")
    harmless.chmod(0o644)
    finding = _secrets_scan(lab_inventory, tmp_path / "releases")
    assert finding.ok is False
    assert "app.env (0644)" in finding.evidence
    assert "private.env" not in finding.evidence and "models.py" not in finding.evidence

    env.chmod(0o600)
    clean = _secrets_scan(lab_inventory, tmp_path / "releases")
    assert clean.ok is True, clean.evidence
    assert "no world-readable secret among" in clean.evidence


def test_checks_without_a_target_are_not_applicable(lab: dict[str, Any], lab_inventory: Inventory) -> None:
    """A profile that gives the audit nothing to probe: every such check reported, none failing."""
    from drillbook.audit.drill import record_findings
    from drillbook.audit.http import HttpAuditSettings, run_checks
    from drillbook.core.profile import Audit, Health, load_profile

    bare = load_profile(lab_inventory).model_copy(
        update={"audit": Audit(), "metrics": None, "marker": None, "health": Health(ready="/health/ready")}
    )
    findings = run_checks(lab_inventory, HttpAuditSettings(), bare)
    na = {f.name for f in findings if not f.applicable}
    assert na == set(AUDIT_CHECKS["audit.http"]) - {"openapi"}
    assert all(f.ok and f.evidence.startswith("not applicable: ") for f in findings if not f.applicable)
    measured = record_findings("audit.http", findings)
    assert measured.checks_failed == 0 and measured.checks_not_applicable == len(na)
    assert {o.value for o in measured.findings if o.name in na} == {"not applicable"}


def test_pagination_on_a_body_it_does_not_know_is_a_finding_not_a_crash(
    lab: dict[str, Any], lab_inventory: Inventory
) -> None:
    from drillbook.audit.http import HttpAuditSettings, run_checks
    from drillbook.core.profile import Step, load_profile

    profile = load_profile(lab_inventory)
    for path, expected in (("/health/live", "no list of entries in the body"), ("/metrics", "not JSON")):
        odd = profile.model_copy(
            update={"audit": profile.audit.model_copy(update={"pagination": Step(name="odd", path=path)})}
        )
        settings = HttpAuditSettings(pagination_items=0)
        found = {f.name: f for f in run_checks(lab_inventory, settings, odd)}["pagination_stable"]
        assert not found.ok and found.applicable and expected in found.evidence, found.evidence
