"""A throwaway PostgreSQL cluster on the control machine (``--scratch cluster``).

Restoring into a scratch *database* puts the drill's load (and its disk use) on
the restore server, often the primary itself. A scratch *cluster* keeps the
drill entirely off the fleet: ``initdb`` in the work directory, a server on a
free loopback port with trust authentication for this machine only, the
restore and the checks there, then ``pg_ctl stop -m immediate`` and the
directory removed. It needs PostgreSQL's server binaries (of the backup's
major version or newer) on the control machine. When drillbook runs as root,
the cluster runs as ``backup_scratch_cluster_user`` (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drillbook.backup.boot import free_port
from drillbook.backup.errors import BackupFailed
from drillbook.backup.tools import find_tool
from drillbook.core.errors import ConfigError

SUPERUSER = "drillbook"


@dataclass
class ScratchCluster:
    """A running throwaway cluster: its data directory, loopback port, OS user and ``pg_ctl``."""

    data_dir: Path
    port: int
    run_as: str | None
    pg_ctl: Path

    @property
    def admin_dsn(self) -> str:
        """Superuser DSN over loopback with no password (trust auth, this machine only)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop at once (nothing in it is worth a checkpoint) and remove it; idempotent."""
        if (self.data_dir / "postmaster.pid").exists():
            _run(
                [str(self.pg_ctl), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"],
                self.run_as,
                check=False,
            )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _run(argv: list[str], run_as: str | None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a server tool, as ``run_as`` when given (runuser: PostgreSQL will not run as root)."""
    name = Path(argv[0]).name
    if run_as:
        argv = ["runuser", "-u", run_as, "--", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        lines = [line for line in (res.stderr or res.stdout).splitlines() if line.strip()]
        raise BackupFailed(
            f"scratch cluster: {name} failed: {lines[-1] if lines else f'exit {res.returncode}'}"
        )
    return res


def start_cluster(work_dir: Path, min_major: int, bin_dir: str | None, run_as: str) -> ScratchCluster:
    """initdb + start a cluster under ``work_dir``; the caller must call :meth:`ScratchCluster.stop`."""
    initdb = find_tool("initdb", min_major, bin_dir)
    pg_ctl = find_tool("pg_ctl", min_major, bin_dir)
    user = run_as if os.geteuid() == 0 else None
    if user:
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(
                f"--scratch cluster: user {user!r} (backup_scratch_cluster_user) does not exist"
            ) from None
    work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="scratch-cluster-", dir=work_dir))
    data = base / "data"
    cluster = ScratchCluster(data_dir=data, port=free_port(), run_as=user, pg_ctl=pg_ctl.path)
    try:
        if user:
            os.chown(base, owner.pw_uid, owner.pw_gid)
            if _run(["test", "-w", str(base)], user, check=False).returncode != 0:
                raise ConfigError(
                    f"--scratch cluster: user {user} cannot reach {base}; set backup_work_dir to a "
                    "directory every parent of which it may traverse"
                )
        _run(
            [
                str(initdb.path),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            user,
        )
        options = f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1"
        _run(
            [
                str(pg_ctl.path),
                "start",
                "-D",
                str(data),
                "-w",
                "-t",
                "60",
                "-l",
                str(base / "log"),
                "-o",
                options,
            ],
            user,
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster
