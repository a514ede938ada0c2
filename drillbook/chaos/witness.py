"""Direct witnesses of a fault: is the killed service accepting connections, right now?

A chaos drill must measure from the fault, not from the command that caused it:
``ansible-playbook`` costs over a second to start, so "readiness flipped 1.6 s
after the playbook started" says more about Ansible than about the service. A
witness asks the service itself every 50 ms, at the protocol level, with a
short timeout and no retries (a client library's retries would hide exactly the
outage being witnessed), and keeps every answer with its timestamp. The drill
then reads "first refused after t" (the witnessed kill) and "first accepted
again after t" (the witnessed restart).

Three checks, each a plain socket conversation:

* PostgreSQL: a startup packet; an authentication request (or any error other
  than "the database system is starting up") means the postmaster accepts.
  The connection is dropped before authenticating, which PostgreSQL does not log.
* Redis: ``PING``; ``+PONG`` (or ``-NOAUTH``) means it accepts; ``-LOADING`` means
  it is up but still loading its dataset, which is not yet "back".
* Anything else (an app instance): a TCP connect.

The loop is core/sampling.py's; the load balancer's own view (each server's
status from ``show stat`` on a clock) is core/haproxy.py's ``HAProxyWatch``.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from drillbook.core.sampling import Sampler

#: A check answers (accepting, detail) and never raises.
Check = Callable[[], tuple[bool, str]]

PG_PROTOCOL_3 = 196608
PG_CANNOT_CONNECT_NOW = "57P03"  # "the database system is starting up / shutting down"


@dataclass(frozen=True)
class Observation:
    """One look at a service: when (monotonic and wall clock), accepting or not, and why."""

    t: float
    wall: float
    up: bool
    latency_ms: float
    detail: str


# -- protocol checks ---------------------------------------------------------------


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    return f"{type(exc).__name__}: {exc}"


def pg_startup_packet(user: str, database: str) -> bytes:
    """A protocol 3.0 StartupMessage for ``user`` on ``database``."""
    params = b"".join(f"{k}\0{v}\0".encode() for k, v in (("user", user), ("database", database)))
    body = struct.pack("!i", PG_PROTOCOL_3) + params + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def classify_pg_answer(answer: bytes) -> tuple[bool, str]:
    """What the postmaster's first message says about whether it accepts connections."""
    if not answer:
        return False, "closed without answer"
    kind = answer[:1]
    if kind == b"R":
        return True, "accepting (authentication requested)"
    if kind == b"E":
        fields = {}
        for part in answer[5:].split(b"\0"):
            if part:
                fields[part[:1]] = part[1:].decode(errors="replace")
        code = fields.get(b"C", "")
        message = fields.get(b"M", "")
        if code == PG_CANNOT_CONNECT_NOW:
            return False, f"not yet: {message}"
        return True, f"accepting (answered {code} {message})"
    return False, f"unexpected answer {answer[:8]!r}"


def postgres_check(host: str, port: int, user: str, database: str, timeout_s: float = 0.25) -> Check:
    packet = pg_startup_packet(user, database)

    def check() -> tuple[bool, str]:
        try:
            with _connect(host, port, timeout_s) as sock:
                sock.sendall(packet)
                return classify_pg_answer(sock.recv(1024))
        except OSError as exc:
            return False, _describe_os_error(exc)

    return check


def classify_redis_answer(answer: bytes) -> tuple[bool, str]:
    line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    if line.startswith("+PONG"):
        return True, "accepting (PONG)"
    if line.startswith("-NOAUTH"):
        return True, "accepting (needs AUTH)"
    if not line:
        return False, "closed without answer"
    return False, f"not yet: {line[:80]}"


def redis_check(host: str, port: int, timeout_s: float = 0.25) -> Check:
    def check() -> tuple[bool, str]:
        try:
            with _connect(host, port, timeout_s) as sock:
                sock.sendall(b"PING\r\n")
                return classify_redis_answer(sock.recv(256))
        except OSError as exc:
            return False, _describe_os_error(exc)

    return check


def tcp_check(host: str, port: int, timeout_s: float = 0.25) -> Check:
    def check() -> tuple[bool, str]:
        try:
            with _connect(host, port, timeout_s):
                return True, "accepting (TCP)"
        except OSError as exc:
            return False, _describe_os_error(exc)

    return check


# -- addresses from the inventory's URLs and DSNs ------------------------------------


@dataclass(frozen=True)
class PgAddress:
    host: str
    port: int
    user: str
    database: str


def pg_address(dsn: str) -> PgAddress:
    """Host, port, user and database of a PostgreSQL DSN (URL or key=value form)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "127.0.0.1").split(",")[0]
    port = int(str(params.get("port") or 5432).split(",")[0])
    user = str(params.get("user") or "postgres")
    return PgAddress(host, port, user, str(params.get("dbname") or user))


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of ``redis://h:p/0`` or ``http://h:p``."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


# -- the loop ------------------------------------------------------------------------


class Witness(Sampler[Observation]):
    """``check`` run every ``interval_s`` in the background (core/sampling.py), every answer kept."""

    def __init__(self, name: str, check: Check, interval_s: float = 0.05, target: str = "") -> None:
        super().__init__(f"witness-{name}", self.look, clock=interval_s, join_timeout_s=2.0)
        self.check = check
        self.target = target

    def look(self) -> Observation:
        """One look now, in the caller's thread (steady state, the restore's own check)."""
        wall, t0 = time.time(), time.monotonic()
        up, detail = self.check()
        return Observation(t0, wall, up, (time.monotonic() - t0) * 1000, detail)

    @property
    def observations(self) -> list[Observation]:
        return self.snapshot()

    # -- questions -----------------------------------------------------------------
    def first_down_after(self, t: float) -> Observation | None:
        return self.first(after=t, where=lambda o: not o.up)

    def first_up_after(self, t: float) -> Observation | None:
        return self.first(after=t, where=lambda o: o.up)

    def last_up_before(self, t: float) -> Observation | None:
        return self.last(before=t, where=lambda o: o.up)
