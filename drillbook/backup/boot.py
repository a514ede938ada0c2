"""Booting one instance of the service against a restored database (``--boot-app``).

A restore is over for users when the service answers again, not when
pg_restore exits, so the drill can start one extra instance of the deployed
release against the scratch database and time it to its first "ready" on the
readiness probe of the service profile. The instance is started the way the
app role starts every instance: the inventory's ``app_command``, ``app_workdir``
and ``app_env`` (their ``${...}`` placeholders filled with the running release
of the first app host, a free loopback port and the scratch database's URL as
``${database_url}``), plus ``app_boot_env`` (what an instance must not do on a
restored copy, e.g. write heartbeats that would spoil the RPO witness). It is
stopped when the drill ends. That host must be the control machine itself (the
lab, or a CI box running the service).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drillbook.backup.tools import stop_group
from drillbook.core import pgdata
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.probes import check_url
from drillbook.core.profile import Status, load_profile, status_matches, substitute


@dataclass
class BootedApp:
    """One app instance started on a restored database, on a free local port; stop it with :meth:`stop`."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    #: The readiness probe (the profile's path) and the statuses that mean ready.
    ready_url: str = ""
    ready_status: tuple[Status, ...] = (200,)

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 10 s; never raises."""
        stop_group(self.proc, grace_s=10)


@dataclass(frozen=True)
class AppLayout:
    """How the first app host runs the service: its running release and the inventory's start settings."""

    release_dir: Path
    venv_dir: Path
    command: list[str]
    workdir: str
    env: dict[str, str]
    instance: str


def app_layout(inv: Inventory) -> AppLayout:
    """Where the first app host keeps the running release, and how the inventory starts it."""
    hosts = inv.hosts("app")
    if not hosts:
        raise ConfigError("--boot-app needs an app group in the inventory")
    host = hosts[0]
    if inv.var("ansible_connection", host=host) != "local":
        raise ConfigError(f"--boot-app starts the service on this machine, but {host} is not local")
    command = inv.var("app_command", host=host)
    if not command or not isinstance(command, list):
        raise ConfigError(f"--boot-app: the inventory sets no app_command (the start command) for {host}")
    instance = str(inv.var("app_instance", host, host=host))
    home = inv.var("app_home", host=host)
    if not home:
        base = inv.var("app_base_dir") or f"/opt/{inv.var('app_name', 'service', host=host)}"
        home = f"{base}/{instance}"
    current = Path(str(home)) / "current"
    if not current.is_dir():
        raise ConfigError(f"--boot-app: no deployed release at {current} (is the lab up?)")
    release = current.resolve()
    env = inv.var("app_env", {}, host=host) or {}
    boot_env = inv.var("app_boot_env", {}, host=host) or {}
    return AppLayout(
        release_dir=release,
        venv_dir=Path(str(home)) / "venvs" / release.name,
        command=[str(part) for part in command],
        workdir=str(inv.var("app_workdir", "${release}", host=host)),
        env={str(k): str(v) for k, v in {**env, **boot_env}.items()},
        instance=instance,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the OS picks it; another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def placeholders(layout: AppLayout, port: int, database_dsn: str) -> dict[str, Any]:
    """The values of the app role's ``${...}`` placeholders for an instance drillbook starts itself."""
    return {
        "release": str(layout.release_dir),
        "venv": str(layout.venv_dir),
        "version": layout.release_dir.name,
        "host": "127.0.0.1",
        "port": str(port),
        "instance": "restore-drill",
        "database_url": database_dsn,
    }


def start_app(inv: Inventory, database_dsn: str, log: Path) -> BootedApp:
    """Start the instance against ``database_dsn``; returns at once (see :func:`wait_ready`)."""
    layout = app_layout(inv)
    health = load_profile(inv).health
    port = free_port()
    values = placeholders(layout, port, database_dsn)
    try:
        command = [str(part) for part in substitute(layout.command, values)]
        workdir = str(substitute(layout.workdir, values))
        env = {k: str(v) for k, v in substitute(layout.env, values).items()}
    except KeyError as exc:
        raise ConfigError(
            f"--boot-app: unknown placeholder ${{{exc.args[0]}}} in app_command, app_workdir or app_env"
        ) from exc
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    path = health.ready or health.live or "/"
    return BootedApp(
        url=url, proc=proc, log=log, ready_url=url + path, ready_status=tuple(health.ready_status)
    )


def wait_ready(app: BootedApp, timeout_s: float) -> float | None:
    """Seconds until the readiness probe answers ready, None on timeout or if the process died."""
    ready_url = app.ready_url or f"{app.url}/"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if app.proc.poll() is not None:
            return None
        if status_matches(list(app.ready_status), check_url(ready_url, timeout_s=1.0).status):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def app_dsn_for(inv: Inventory, database: str) -> str:
    """The application's own DSN (its user and password), aimed at ``database``."""
    return pgdata.dsn_for(inv.topology.postgres_dsn, database)
