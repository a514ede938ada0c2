"""HAProxy's runtime API, spoken directly over its admin socket.

A canary moves weights many times a second at each step; a ``socat`` process per
call costs 6-15 ms, a direct socket round trip well under 1 ms. The socket is a
unix path (the lab) or ``host:port`` for a TCP ``stats socket`` on a remote load
balancer. Each call opens a connection, sends one command and reads to EOF
(HAProxy's non-interactive mode).

What "up" means is stated once here (:func:`server_up`, :func:`server_down`), and
:class:`HAProxyWatch` samples a backend's server table on a clock (core/sampling.py):
the load balancer's own witness of when it took a server out of rotation and back.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.sampling import Sampler


def server_up(status: str) -> bool:
    """HAProxy holds the server in rotation: ``UP``, ``UP 1/3`` (going down, still in), or ``no check``."""
    return status.startswith("UP") or status == "no check"


#: Health-check results (``check_status``) that mean "answered no" or "refused": the server is
#: not ready. Anything else (a timeout, or a passing check while it rises back) is not that.
CHECK_HARD_FAILURES = ("L4CON", "L6RSP", "L7RSP", "L7STS")


def check_failed_hard(check_status: str) -> bool:
    """The server's last health check was refused or answered "not ready" (``* `` marks one in progress)."""
    return check_status.removeprefix("* ").strip().startswith(CHECK_HARD_FAILURES)


def server_down(status: str) -> bool:
    """HAProxy has taken the server out: ``DOWN`` (also ``DOWN 1/2`` while rising), ``MAINT``, ``NOLB``.

    ``DRAIN`` is neither up nor down: no new sessions, existing ones finish. A drill
    that counts a draining server as serving asks ``not server_down(status)``.
    """
    return status.startswith(("DOWN", "MAINT", "NOLB"))


@dataclass(frozen=True)
class ServerStat:
    """One row of ``show stat`` that matters to drills (a server of a backend)."""

    backend: str
    server: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "no check"...
    weight: int
    sessions_total: int
    http_total: int  # hrsp_1xx..5xx summed: responses the server sent
    http_5xx: int
    check_status: str
    last_change_s: int  # seconds since the last UP/DOWN transition

    @property
    def up(self) -> bool:
        return server_up(self.status)

    @property
    def down(self) -> bool:
        return server_down(self.status)


class HAProxy:
    """A client for one HAProxy's runtime API."""

    def __init__(self, address: str, timeout_s: float = 2.0) -> None:
        if not address:
            raise ConfigError("no HAProxy admin socket configured (haproxy_admin_socket)")
        self.address = address
        self.timeout_s = timeout_s

    def _connect(self) -> socket.socket:
        try:
            if "/" in self.address:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout_s)
                sock.connect(self.address)
            else:
                host, _, port = self.address.rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=self.timeout_s)
            return sock
        except (OSError, ValueError) as exc:
            raise TargetUnreachable(f"HAProxy admin socket {self.address}: {exc}") from exc

    def command(self, cmd: str) -> str:
        """Send one command and return HAProxy's answer (raises on 'Unknown command' and friends)."""
        with self._connect() as sock:
            sock.sendall(cmd.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        answer = b"".join(chunks).decode(errors="replace")
        low = answer.lower()
        if low.startswith(("unknown command", "no such")) or "require 'backend/server'" in low:
            raise ConfigError(f"HAProxy refused '{cmd}': {answer.strip().splitlines()[0]}")
        return answer

    # -- weights and states -----------------------------------------------------
    def set_weight(self, backend: str, server: str, weight: int) -> None:
        answer = self.command(f"set weight {backend}/{server} {int(weight)}").strip()
        if answer:
            raise ConfigError(f"HAProxy: set weight {backend}/{server}: {answer}")

    def get_weight(self, backend: str, server: str) -> int:
        """The current weight (``get weight`` answers "current (initial)")."""
        return int(self.command(f"get weight {backend}/{server}").split()[0])

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``ready``, ``drain`` or ``maint``."""
        answer = self.command(f"set server {backend}/{server} state {state}").strip()
        if answer:
            raise ConfigError(f"HAProxy: set server {backend}/{server} state {state}: {answer}")

    # -- statistics -------------------------------------------------------------
    def stats(self, backend: str | None = None) -> list[ServerStat]:
        """``show stat`` parsed: servers only (no FRONTEND/BACKEND rows)."""
        text = self.command("show stat").lstrip("# ")
        rows = []
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("svname") in ("FRONTEND", "BACKEND") or not row.get("pxname"):
                continue
            if backend and row["pxname"] != backend:
                continue
            codes = [_int(row.get(f"hrsp_{k}xx")) for k in range(1, 6)]
            rows.append(
                ServerStat(
                    backend=row["pxname"],
                    server=row["svname"],
                    status=row.get("status", ""),
                    weight=_int(row.get("weight")),
                    sessions_total=_int(row.get("stot")),
                    http_total=sum(codes),
                    http_5xx=codes[4],
                    check_status=row.get("check_status", ""),
                    last_change_s=_int(row.get("lastchg")),
                )
            )
        return rows

    def server(self, backend: str, server: str) -> ServerStat:
        for stat in self.stats(backend):
            if stat.server == server:
                return stat
        raise ConfigError(f"HAProxy has no server {backend}/{server}")

    def backend_totals(self, backend: str) -> tuple[int, int]:
        """(requests, 5xx) of the backend row: every request the load balancer passed to the service."""
        text = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == backend and row.get("svname") == "BACKEND":
                return _int(row.get("req_tot")), _int(row.get("hrsp_5xx"))
        return 0, 0

    def frontend_totals(self) -> dict[str, int]:
        """Requests and 5xx responses per frontend: the load balancer's witness of a load run."""
        text = self.command("show stat").lstrip("# ")
        out: dict[str, int] = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("svname") == "FRONTEND":
                out[f"{row['pxname']}.requests"] = _int(row.get("req_tot"))
                out[f"{row['pxname']}.5xx"] = _int(row.get("hrsp_5xx"))
        return out


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class ServerTable:
    """One look at a backend: every server's stats row, or why the look failed."""

    t: float  # monotonic
    wall: float
    servers: dict[str, ServerStat] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> dict[str, str]:
        """Server -> HAProxy status (UP, DOWN, "UP 1/3", MAINT...)."""
        return {name: stat.status for name, stat in self.servers.items()}


class HAProxyWatch(Sampler[ServerTable]):
    """``show stat`` of one backend every ``interval_s``: when HAProxy marks servers DOWN and UP.

    A failed look (socket gone, HAProxy restarting) is kept as a table with ``error``:
    the load balancer being unreachable is itself an observation, not a crash.
    """

    def __init__(
        self, address: str, backend: str, interval_s: float = 0.1, name: str = "witness-haproxy"
    ) -> None:
        super().__init__(name, self._look, clock=interval_s, join_timeout_s=3.0)
        self.client = HAProxy(address, timeout_s=min(1.0, max(0.2, interval_s * 5)))
        self.backend = backend

    def _look(self) -> ServerTable:
        wall, t0 = time.time(), time.monotonic()
        try:
            rows = self.client.stats(self.backend)
        except Exception as exc:  # an observation, never a crash of the watch
            return ServerTable(t0, wall, {}, f"{type(exc).__name__}: {exc}")
        return ServerTable(t0, wall, {r.server: r for r in rows})

    def sample(self) -> ServerTable:
        """Take one look now, outside the clock, and keep it (for a look that must be current)."""
        table = self._look()
        self.record(table)
        return table

    def first_where(self, server: str, after: float, pred: Callable[[str], bool]) -> ServerTable | None:
        """The first look at or after ``after`` in which ``server``'s status satisfies ``pred``."""
        return self.first(after=after, where=lambda o: server in o.servers and pred(o.servers[server].status))
