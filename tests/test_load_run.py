"""load.run for real against a trivial local target (no lab needed): Locust, the plugin, the CLI.

The target is a tiny threaded HTTP server in the test process; the inventory is
written to a temp directory. Covered here: a short run holding its rate with
``--processes 2`` (Locust's master and workers, the plan split between them), a
target that is down (exit 2 with the URL, nothing ramped), bad options (exit 2,
one line), Ctrl-C (Locust stops, the partial report is written and marked
interrupted), and distributed mode through playbooks/loadgen.yml (slow).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context
from invoke.exceptions import Exit

from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import REPO_ROOT
from drillbook.load import LoadRun, load_settings, make_plan
from drillbook.tasks import load as load_tasks

LOCUSTFILE = """
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Client(FastHttpUser):
    @task(3)
    def home(self):
        self.client.get("/")

    @task(1)
    def thing(self):
        with self.client.get("/thing/7", name="/thing/[id]", catch_response=True) as resp:
            if resp.text != "ok":
                resp.failure("wrong body")
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_inventory(root: Path, url: str, *, loadgen: bool = False, **load: Any) -> Path:
    """An inventory with one host, the target's URL and load settings for a short run."""
    root.mkdir(parents=True, exist_ok=True)
    locustfile = root.parent / "locustfile.py"  # not inside: Ansible would read it as inventory
    locustfile.write_text(LOCUSTFILE)
    hosts: dict[str, Any] = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {"lb": {"hosts": {"t-lb": None}}},
        }
    }
    if loadgen:
        hosts["all"]["children"]["loadgen"] = {"hosts": {"t-loadgen-1": None}}
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts))
    settings = {
        "drillbook_environment": "test",
        "drillbook_lock_scope": str(root),
        "lb_url": url,
        "load_rps": 40,
        "load_headroom": 0.2,
        "load_duration": "8s",
        "load_ramp": "2s",
        # Wide on purpose: these runs prove the rate and the plumbing on a shared CI box
        # whose latency nobody controls; the SLA checks have their own tests.
        "load_sla_p95_ms": 5000,
        "load_sla_p99_ms": 10000,
        "load_max_error_pct": 1,
        "load_locustfile": str(locustfile),
        "load_master_port": _free_port(),
        "load_worker_dir": str(root.parent / "loadgen"),
        "load_worker_python": sys.executable,
        **{f"load_{k}": v for k, v in load.items()},
    }
    (root / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (root / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings))
    return root


@pytest.fixture()
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRILLBOOK_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _context(inv: Any, tmp_path: Path) -> DrillContext:
    return DrillContext(inventory=inv, report_root=tmp_path / "r", quiet=True)


def _assert_real_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 400 and pixels.std() > 0.05


def test_short_run_with_two_processes_holds_the_rate(
    tmp_path: Path, target: str, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = load_inventory(write_inventory(tmp_path / "inv", target))
    settings = load_settings(inv)
    plan = make_plan(inv, settings, processes=2)
    journal = execute(
        LoadRun(settings, plan), DrillContext(inventory=inv, report_root=tmp_path / "r", quiet=True)
    )
    report = Path(journal.report_dir or "")
    assert journal.verdict == "pass", (
        journal.error,
        journal.checks,
        (report / "locust.log").read_text()[-2000:],
    )
    m = journal.measurements
    assert m["target_rps"] == 48 and abs(m["achieved_rps"] - 48) <= 0.03 * 48
    assert m["requests"] == pytest.approx(48 * 6, abs=3)
    assert {row["name"] for row in m["endpoints"]} == {"GET /", "GET /thing/[id]"}
    records = json.loads((report / "drillbook_load.json").read_text())
    assert records["role"] == "master" and records["workers_seen"] == 2 and records["completed"]
    for name in ("locust.html", "locust_stats.csv", "locust_stats_history.csv", "summary.md", "journal.json"):
        assert (report / name).stat().st_size > 0, name
    _assert_real_png(report / "load.png")
    assert "![achieved rate and p95 over time](load.png)" in (report / "summary.md").read_text()
    capsys.readouterr()
    load_tasks.report(Context(), report_dir=str(tmp_path / "r"))  # load.report: the latest run again
    again = capsys.readouterr().out
    assert "load.run: PASS" in again and "achieved_rps" in again and "GET /thing/[id]" in again


def test_target_down_exits_2_with_the_url_before_ramping(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    root = write_inventory(tmp_path / "inv", url)
    with pytest.raises(Exit) as exc:
        load_tasks.run(Context(), inventory=str(root), report_dir=str(tmp_path / "r"))
    assert exc.value.code == 2
    assert url in capsys.readouterr().out
    (report,) = (tmp_path / "r").glob("*-load.run")
    assert not (report / "locust.log").exists(), "Locust must not start against a dead target"
    journal = json.loads((report / "journal.json").read_text())
    assert journal["verdict"] == "error" and url in journal["error"]
    phases = [p["name"] for p in journal["phases"]]
    assert phases[0] == "preflight" and "act" not in phases


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"headroom": -0.5}, "--headroom must be 0 or more"),
        ({"rps": 0}, "--rps must be a positive"),
        ({"rps": 10_000_000}, "above load_max_rps"),
        ({"duration": "1s"}, "not longer than --ramp"),
    ],
)
def test_bad_option_exits_2_with_one_line(
    tmp_path: Path, options: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_inventory(tmp_path / "inv", "http://127.0.0.1:9")
    with pytest.raises(Exit) as exc:
        load_tasks.run(Context(), inventory=str(root), report_dir=str(tmp_path / "r"), **options)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "a refused run leaves no report"


def test_ctrl_c_stops_locust_and_writes_a_partial_report(
    tmp_path: Path, target: str, state_dir: Path
) -> None:
    root = write_inventory(tmp_path / "inv", target, duration="60s")
    env = {**os.environ, "DRILLBOOK_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "load.run", "-i", str(root), "--report-dir", str(tmp_path / "r")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        history: list[Path] = []
        while time.monotonic() < deadline:
            history = list((tmp_path / "r").glob("*-load.run/locust_stats_history.csv"))
            if history and len(history[0].read_text().splitlines()) > 12:  # a few seconds of load
                break
            time.sleep(0.5)
        assert history, "Locust never started"
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    report = history[0].parent
    journal = json.loads((report / "journal.json").read_text())
    assert journal["interrupted"] is True and journal["verdict"] == "error"
    assert journal["measurements"]["completed"] is False
    assert journal["measurements"]["requests"] > 0
    assert "interrupted" in (report / "summary.md").read_text()
    assert (report / "locust.html").stat().st_size > 0
    records = json.loads((report / "drillbook_load.json").read_text())
    assert records["completed"] is False and records["stopped_at_s"] < 30


@pytest.mark.slow
def test_distributed_workers_started_through_ansible(tmp_path: Path, target: str, state_dir: Path) -> None:
    root = write_inventory(tmp_path / "inv", target, loadgen=True, duration="6s")
    inv = load_inventory(root)
    settings = load_settings(inv)
    plan = make_plan(inv, settings)
    assert plan.distributed and plan.loadgen_hosts == ("t-loadgen-1",)
    journal = execute(
        LoadRun(settings, plan), DrillContext(inventory=inv, report_root=tmp_path / "r", quiet=True)
    )
    report = Path(journal.report_dir or "")
    assert journal.verdict == "pass", (journal.error, journal.checks)
    records = json.loads((report / "drillbook_load.json").read_text())
    assert records["role"] == "master" and records["workers_seen"] == 1
    assert (tmp_path / "loadgen" / "drillbook" / "load" / "plugin.py").exists()
    pidfile = tmp_path / "loadgen" / "run" / "worker-0.pid"
    if pidfile.exists():  # stopped in the restore phase: the pid (if the file stayed) is gone
        pid = int(pidfile.read_text().split()[0])
        assert not Path(f"/proc/{pid}").exists() or "locust" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert any(p.name == "restore/stop Locust workers" and p.ok for p in journal.phases)
