"""Booting one instance of the service against a restored database (``--boot-app``).

A restore is over for users when the service answers again, not when
pg_restore exits, so the drill can start one extra instance of the deployed
release against the scratch database and time it to its first 200 on the
readiness probe. The instance is started from the app role's layout on the
first app host (``<app_home>/current`` code, ``<app_home>/venv`` virtualenv),
on a free loopback port, with the sentinel writer off (its rows would spoil
the RPO witness) and stopped when the drill ends. That host must be the
control machine itself (the lab, or a CI box running the service).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from drillbook.backup.tools import stop_group
from drillbook.core import pgdata
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.probes import check_url


@dataclass
class BootedApp:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_group(self.proc, grace_s=10)


@dataclass(frozen=True)
class AppLayout:
    release_dir: Path
    venv_dir: Path


def app_layout(inv: Inventory) -> AppLayout:
    """Where the first app host keeps the running release and its virtualenv."""
    hosts = inv.hosts("app")
    if not hosts:
        raise ConfigError("--boot-app needs an app group in the inventory")
    host = hosts[0]
    if inv.var("ansible_connection", host=host) != "local":
        raise ConfigError(f"--boot-app starts the service on this machine, but {host} is not local")
    home = inv.var("app_home", host=host)
    if not home:
        base = inv.var("app_base_dir", "/opt/refservice", host=host)
        home = f"{base}/{inv.var('app_instance', host, host=host)}"
    layout = AppLayout(Path(str(home)) / "current", Path(str(home)) / "venv")
    if not (layout.venv_dir / "bin" / "uvicorn").exists():
        raise ConfigError(f"--boot-app: no deployed release at {layout.release_dir} (is the lab up?)")
    return layout


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_app(inv: Inventory, database_dsn: str, log: Path) -> BootedApp:
    """Start the instance against ``database_dsn``; returns at once (see :func:`wait_ready`)."""
    layout = app_layout(inv)
    release = layout.release_dir.resolve()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(release),
        "PYTHONDONTWRITEBYTECODE": "1",
        "REFSVC_RELEASE_FILE": str(release / "release.json"),
        "REFSVC_DATABASE_URL": database_dsn,
        "REFSVC_REDIS_URL": inv.topology.redis_url or "redis://127.0.0.1:1/0",
        "REFSVC_INSTANCE": "restore-drill",
        "REFSVC_SENTINEL_INTERVAL_S": "0",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(layout.venv_dir / "bin" / "uvicorn"),
                "refservice.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=release,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return BootedApp(url=f"http://127.0.0.1:{port}", proc=proc, log=log)


def wait_ready(app: BootedApp, timeout_s: float) -> float | None:
    """Seconds until ``/health/ready`` answers 200, None on timeout or if the process died."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if app.proc.poll() is not None:
            return None
        if check_url(f"{app.url}/health/ready", timeout_s=1.0).status == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def app_dsn_for(inv: Inventory, database: str) -> str:
    """The application's own DSN (its user and password), aimed at ``database``."""
    return pgdata.dsn_for(inv.topology.postgres_dsn, database)
