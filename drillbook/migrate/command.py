"""Run the service's migration command where the inventory says it runs.

The command is the service's own tool (``migrate_cmd``, Alembic by default) with a
verb appended (``upgrade REV``, ``downgrade REV``, ``history --verbose``,
``current``). It runs either here, on the control machine, or on an app host
through Ansible (``migrate_run_on: host``), where the release and its migration
scripts are installed.

Which database it acts on is the one thing drillbook cannot leave to the tool's
own settings: a third-party env.py that builds its URL from its own variables
would silently ignore a single ``DATABASE_URL`` and migrate the live database
during a rehearsal. So the connection drillbook names is offered in every shape
a tool may read, as placeholders rendered per run: ``{dsn}``, ``{host}``,
``{port}``, ``{database}``, ``{user}`` in argv items of ``migrate_cmd`` and in the
templates of ``migrate_env``; ``{password}`` only in ``migrate_env`` (argv is
readable by every user of the host, and it is written to the step logs). ``{dsn}``
in argv is the URL without its password, which then travels in ``PGPASSWORD``.
``migrate_dsn_env`` stays as the shorthand ``{<dsn_env>: "{dsn}"}``. Whether
the command really obeyed is proved separately (:mod:`drillbook.migrate.proof`).

Locally the command runs in its own session: a Ctrl-C at the terminal reaches
drillbook, which decides what happens to the step in progress, and never the
migration tool halfway through a statement. When drillbook itself gives up on a
step (timeout, interrupt outside a shielded block) it stops the whole process
group.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from drillbook.core.errors import AnsibleFailed, ConfigError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.migrate.settings import MigrateSettings

PLAYBOOK = "migrate-command.yml"  # under playbooks/
_ERROR_LINE = re.compile(r"(Error|Exception|FAILED|ERROR)\b")
_TASK = "Run the migration command"
#: Connection placeholders, rendered per run for the database drillbook names.
PLACEHOLDERS = ("dsn", "host", "port", "database", "user", "password")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True)
class CommandResult:
    """One run of the migration command: what ran, where, how it ended, how long it took."""

    argv: tuple[str, ...]
    where: str
    rc: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def why(self) -> str:
        """The tool's own last words, for one-line failure messages."""
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f}s"
        lines = [line.strip() for line in (self.stderr + "\n" + self.stdout).splitlines() if line.strip()]
        # The exception line says what went wrong; SQLAlchemy's last line is only a link.
        errors = [ln for ln in lines if _ERROR_LINE.search(ln)]
        tail = (errors or lines or ["no output"])[-1]
        return f"exit {self.rc}: {tail[:300]}"

    def redacted(self, secret: str) -> CommandResult:
        """The same result with ``secret`` (the password) cut out of what the tool printed."""
        if len(secret) < 3:  # cutting one or two characters everywhere would mangle the whole text
            return self
        return replace(
            self, stdout=self.stdout.replace(secret, "***"), stderr=self.stderr.replace(secret, "***")
        )

    def log(self) -> str:
        """The full record, for an artefact file."""
        return (
            f"$ {shlex.join(self.argv)}   # on {self.where}, rc={self.rc}, {self.duration_s:.3f}s"
            + (" TIMED OUT" if self.timed_out else "")
            + f"\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}\n"
        )


@dataclass(frozen=True)
class Connection:
    """The parts of one database URL, as the placeholders hand them to the command."""

    dsn: str
    host: str
    port: str
    database: str
    user: str
    password: str

    @classmethod
    def of(cls, url: str) -> Connection:
        """Split a URL (``postgresql://...``) or a libpq conninfo string into its parts."""
        if "://" in url:
            parts = urlsplit(url)
            return cls(
                dsn=url,
                host=parts.hostname or "localhost",
                port=str(parts.port or 5432),
                database=unquote(parts.path.lstrip("/")),
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
            )
        from drillbook.core import pgdata

        p = pgdata.dsn_params(url)
        return cls(
            dsn=url,
            host=str(p.get("host") or "localhost"),
            port=str(p.get("port") or 5432),
            database=str(p.get("dbname") or p.get("user") or ""),
            user=str(p.get("user") or ""),
            password=str(p.get("password") or ""),
        )

    @property
    def public_dsn(self) -> str:
        """The URL without its password: what ``{dsn}`` becomes in argv."""
        if not self.password:
            return self.dsn
        if "://" in self.dsn:
            parts = urlsplit(self.dsn)
            netloc = parts.netloc.rsplit("@", 1)[-1]
            user = quote(self.user, safe="")
            return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))
        from psycopg.conninfo import make_conninfo

        from drillbook.core import pgdata

        params = pgdata.dsn_params(self.dsn)
        params.pop("password", None)
        return make_conninfo("", **params)

    def render(self, template: str, *, secret: bool) -> str:
        """``template`` with every placeholder filled; ``secret``: the full DSN and the password."""
        values = {
            "dsn": self.dsn if secret else self.public_dsn,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password if secret else "",
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def url_for_database(dsn: str, database: str) -> str:
    """The same database URL pointed at ``database`` (a scratch copy); conninfo strings too."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + quote(database, safe="")))
    from drillbook.core import pgdata

    return pgdata.dsn_for(dsn, database)


class MigrateCommand:
    """The migration tool of one inventory, ready to run verbs against a given database URL."""

    def __init__(self, inv: Inventory, settings: MigrateSettings, *, ini: str | None = None) -> None:
        self.inv = inv
        self.settings = settings
        self.ini = ini or settings.alembic_ini
        if settings.run_on == "control" and Path(self.ini).is_file():
            self.ini = str(Path(self.ini).resolve())  # the command runs in another directory
        try:
            self.base_argv = shlex.split(settings.cmd.replace("{ini}", shlex.quote(self.ini)))
        except ValueError as exc:
            raise ConfigError(f"migrate_cmd {settings.cmd!r} does not parse: {exc}") from exc
        if not self.base_argv:
            raise ConfigError("migrate_cmd is empty")
        if any("{password}" in item for item in self.base_argv):
            raise ConfigError(
                "migrate_cmd must not use {password}: argv is readable by every user of the host and "
                'goes into the step logs; map it in migrate_env (e.g. APP_DB_PASSWORD: "{password}")'
            )
        templated = [*self.base_argv, *settings.env.values()]
        if not settings.dsn_env and not any(_PLACEHOLDER.search(t) for t in templated):
            raise ConfigError(
                "the migration command gets no connection from drillbook: set migrate_dsn_env, or use "
                "{dsn}/{host}/{port}/{database}/{user} in migrate_cmd or migrate_env"
            )
        self.workdir = settings.workdir or str(Path(self.ini).parent)
        self.host: str | None = None
        if settings.run_on == "host":
            hosts = inv.hosts(settings.host)
            if not hosts:
                raise ConfigError(f"migrate_host {settings.host!r} matches no host in {inv.name}")
            self.host = hosts[0]
        elif not Path(self.ini).is_file() and "{ini}" in settings.cmd:
            raise ConfigError(f"the release's alembic.ini {self.ini} does not exist on this machine")
        self.dsn = settings.dsn or inv.topology.postgres_dsn

    @property
    def where(self) -> str:
        return self.host or "control machine"

    def run(
        self, args: Sequence[str], *, dsn: str | None = None, timeout_s: float | None = None
    ) -> CommandResult:
        """Run ``<migrate_cmd> <args>`` with the placeholders filled for ``dsn`` (default: the source)."""
        conn = Connection.of(dsn or self.dsn)
        argv = [conn.render(item, secret=False) for item in self.base_argv] + list(args)
        env = {name: conn.render(value, secret=True) for name, value in self.settings.env.items()}
        if self.settings.dsn_env:
            env[self.settings.dsn_env] = conn.dsn
        if conn.password and any("{dsn}" in item for item in self.base_argv):
            env.setdefault("PGPASSWORD", conn.password)  # {dsn} in argv carries no password
        timeout = timeout_s or self.settings.timeout_s
        if self.host:
            result = self._run_on_host(argv, env, timeout)
        else:
            result = run_local(argv, env, self.workdir, timeout)
        return result.redacted(conn.password)

    def _run_on_host(self, argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> CommandResult:
        from drillbook.core.ansible import run_playbook

        assert self.host is not None
        t0 = time.monotonic()
        try:
            result = run_playbook(
                self.inv,
                PLAYBOOK,
                limit=self.host,
                extravars={
                    "migrate_target_host": self.host,
                    "migrate_argv": list(argv),
                    "migrate_chdir": self.workdir,
                    "migrate_environment": dict(env),
                    "migrate_task_timeout": int(timeout_s),
                },
                cancellable=False,
            )
        except (AnsibleFailed, TargetUnreachable) as exc:
            # A failed step, not a crash: the caller decides (roll back, restore).
            return CommandResult(
                argv=tuple(argv),
                where=self.host,
                rc=-1,
                stdout="",
                stderr=str(exc),
                duration_s=time.monotonic() - t0,
                timed_out="expected time frame" in str(exc),
            )
        rows = result.for_task(_TASK)
        res = rows[0].res if rows else {}
        return CommandResult(
            argv=tuple(argv),
            where=self.host,
            rc=int(res.get("rc", 1) if rows else 1),
            stdout=str(res.get("stdout", "")),
            stderr=str(res.get("stderr", "") or res.get("msg", "")),
            duration_s=time.monotonic() - t0,
            timed_out="timed out" in str(res.get("msg", "")).lower(),
        )


def run_local(
    argv: Sequence[str], env: Mapping[str, str], workdir: str | None, timeout_s: float
) -> CommandResult:
    """Run on the control machine in a new session; stop the whole group on timeout or interrupt."""
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=workdir if workdir and Path(workdir).is_dir() else None,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"cannot run migration command {argv[0]!r}: {exc.strerror or exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        stdout, stderr = proc.communicate()
        timed_out = True
    except BaseException:
        _stop_group(proc)
        raise
    return CommandResult(
        argv=tuple(argv),
        where="control machine",
        rc=proc.returncode if proc.returncode is not None else -1,
        stdout=stdout or "",
        stderr=stderr or "",
        duration_s=time.monotonic() - t0,
        timed_out=timed_out,
    )


def _stop_group(proc: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """SIGTERM the command's process group, SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
