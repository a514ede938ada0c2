"""A chaos drill whose background traffic is the team's own locustfile (``service_traffic.locustfile``).

The profile declares no requests, only a locustfile: the drill runs it through
Locust, paced at the drill's rate, and counts what users saw during the outage
from every request Locust logged. HAProxy's own frontend counter is the outside
observer that the traffic was real.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from drillbook.chaos import KillApp
from drillbook.chaos.plan import build_plan, load_settings
from drillbook.core.drill import DrillContext, execute
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import REPO_ROOT

pytestmark = pytest.mark.lab


def _locust_only(tmp_path: Path) -> Path:
    """The lab inventory with service_traffic replaced by the lab's locustfile."""
    inv_dir = tmp_path / "inventory"
    shutil.copytree(REPO_ROOT / "inventory" / "lab", inv_dir)
    service = inv_dir / "group_vars" / "all" / "service.yml"
    text = service.read_text()
    block = re.search(r"^service_traffic:\n(?:[ #].*\n|\n)*", text, re.M)
    assert block, "the lab profile declares service_traffic"
    service.write_text(
        text.replace(block.group(0), "service_traffic:\n  locustfile: loadtests/locustfile.py\n\n")
    )
    return inv_dir


def test_kill_app_with_the_locustfile_as_traffic(lab: dict[str, Any], tmp_path: Path) -> None:
    inv = load_inventory(_locust_only(tmp_path))
    settings = load_settings(inv).model_copy(update={"outage_p95_limit_ms": 5000.0, "traffic_timeout_s": 5.0})
    drill = KillApp(build_plan(inv, KillApp.fault, settings, instance=2), duration_s=2, traffic_rps=40)
    before = _frontend_requests(inv)
    journal = execute(drill, DrillContext(inventory=inv, report_root=tmp_path / "reports", quiet=True))
    after = _frontend_requests(inv)
    assert journal.verdict == "pass", json.dumps(
        {"error": journal.error, "failed": [c.__dict__ for c in journal.failed_checks]}, default=str
    )[:2000]
    m = journal.measurements
    log = next((tmp_path / "reports").rglob("background_requests.jsonl"))
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert m["requests_total"] == len(logged) > 40, (m["requests_total"], len(logged))
    assert m["requests_during_outage"] > 0 and m["error_pct_during_outage"] <= 1.0
    lost = next(c for c in journal.checks if c.name == "acknowledged_writes_lost")
    assert "not tracked" in lost.detail and "locustfile" in lost.detail, lost
    # The outside observer: HAProxy counted at least every request Locust logged.
    assert after - before >= len(logged), (before, after, len(logged))


def _frontend_requests(inv: Inventory) -> int:
    """Requests HAProxy's frontends have received so far (its own counter, asked on the runtime API)."""
    socket = inv.topology.haproxy_socket
    assert socket, "the lab names HAProxy's runtime API"
    return sum(v for k, v in HAProxy(socket).frontend_totals().items() if k.endswith(".requests"))
