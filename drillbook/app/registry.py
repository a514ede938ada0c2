"""What checklist evidence may name: the drill tasks of a namespace and the checks each audit performs.

The checklist (a capability) only compares names; which names exist is known
above it. The drill tasks are those of the Invoke namespace, which the tasks
layer builds and hands in here (a capability importing ``drillbook.tasks``
would be an arrow back up, and an import loop at run time). The audits' checks
come from the audit capability's registry, which this layer may import.
"""

from __future__ import annotations

from invoke.collection import Collection

from drillbook.audit import AUDIT_CHECKS
from drillbook.runbooks.tasks import TaskCatalog


def known_drills(namespace: Collection) -> set[str]:
    """Every drill task of ``namespace`` (one taking --junit) and its aliases (``smoke``: ``smoke.smoke``)."""
    names: set[str] = set()
    for info in TaskCatalog(namespace).drill_tasks:
        names.add(info.name)
        names.update(info.aliases)
    return names


def known_audits() -> dict[str, set[str]]:
    """``{"audit.http": {"security_headers", ...}, ...}``: the checks each audit drill records."""
    return {drill: set(checks) for drill, checks in AUDIT_CHECKS.items()}
