"""Moving releases: ``playbooks/deploy.yml`` on a set of hosts, and what the hosts' links say.

Python decides *which* release goes *where* and *when* (the canary host now,
the rest in batches after the judge agreed, the previous release after a
breach); the playbook does the moving: unpack, switch ``current``, drain in
HAProxy, restart, wait until ready, re-enable. Promotion batches are Ansible's
own ``serial`` with ``max_fail_percentage``, so a batch that fails stops the
play before the next batch is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drillbook.canary.settings import CanarySettings
from drillbook.core.ansible import PlaybookResult, ProgressFn, run_playbook
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory

PLAYBOOK = "deploy.yml"
#: Release kinds whose source is one file on the control machine (roles/app/defaults/main.yml).
FILE_KINDS = ("tarball", "wheel", "sdist")


@dataclass(frozen=True)
class Links:
    """A host's release links: what runs (``current``) and what ran before (``previous``)."""

    current: str | None
    previous: str | None


def artifact(inv: Inventory, version: str) -> Path | None:
    """The release file of ``version`` on the control machine (the inventory's ``app_release_source``
    for that version), or None when releases are not files (a directory, a git ref) or none is named."""
    if str(inv.var("app_release_kind", "tarball")) not in FILE_KINDS:
        return None
    source = inv.var("app_release_source", extra={"app_version": version})
    return Path(str(source)) if source else None


def check_artifact(inv: Inventory, version: str) -> None:
    """Refuse an unknown version before any host is touched."""
    path = artifact(inv, version)
    if path is not None and not path.is_file():
        hint = (
            f"build it with `inv lab.release --version {version}`"
            if inv.environment == "lab"
            else "build and publish the release first"
        )
        raise ConfigError(f"unknown release {version}: no artifact {path}; {hint}")


def deploy(
    inv: Inventory,
    hosts: Sequence[str],
    version: str,
    settings: CanarySettings,
    *,
    serial: str = "100%",
    drain: bool = True,
    migrate: bool = True,
    progress: ProgressFn | None = None,
    cancellable: bool = True,
) -> PlaybookResult | None:
    """Put ``version`` on ``hosts`` (batches of ``serial``); None when there is nothing to do."""
    if not hosts:
        return None
    return run_playbook(
        inv,
        PLAYBOOK,
        limit=",".join(hosts),
        extravars={
            "deploy_version": version,
            "deploy_serial": serial,
            "deploy_max_fail_percentage": settings.promote_max_fail_percentage,
            "deploy_drain": drain,
            "deploy_migrate": migrate,
            "deploy_drain_wait_s": settings.drain_wait_s,
            "deploy_ready_timeout_s": int(settings.ready_timeout_s),
        },
        tags=["deploy"],
        progress=progress,
        cancellable=cancellable,
    )


def read_links(inv: Inventory, hosts: Sequence[str], progress: ProgressFn | None = None) -> dict[str, Links]:
    """Each host's ``current`` and ``previous`` release (through the playbook's ``status`` tag)."""
    if not hosts:
        return {}
    result = run_playbook(inv, PLAYBOOK, limit=",".join(hosts), tags=["status"], progress=progress)
    links: dict[str, Links] = {}
    for row in result.for_task("Note the linked releases"):
        facts = row.res.get("ansible_facts", {})
        links[row.host] = Links(
            current=str(facts.get("app_linked_version") or "") or None,
            previous=str(facts.get("app_previous_version") or "") or None,
        )
    return links
