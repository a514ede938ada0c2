"""What checklist evidence may name: drill tasks of the namespace and the checks each audit performs."""

from __future__ import annotations

import importlib


def known_drills() -> set[str]:
    """Every drill task (tasks taking --junit) with its aliases (``smoke`` for ``smoke.smoke``)."""
    from drillbook.runbooks.tasks import TaskCatalog
    from drillbook.tasks import namespace

    names: set[str] = set()
    for info in TaskCatalog(namespace).drill_tasks:
        names.add(info.name)
        names.update(info.aliases)
    return names


def known_audits() -> dict[str, set[str]]:
    """``{"audit.http": {"security_headers", ...}, ...}`` from the audit capability's registry."""
    try:
        audit = importlib.import_module("drillbook.audit")
    except ImportError:
        return {}
    registry: dict[str, set[str]] = {k: set(v) for k, v in getattr(audit, "AUDIT_CHECKS", {}).items()}
    return registry
