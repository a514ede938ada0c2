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

An HAProxy watch does the same for the load balancer's own view: each server's
status from ``show stat`` on a clock, to witness when HAProxy marked an
instance DOWN and when it took it back.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from drillbook.core.haproxy import HAProxy

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


@dataclass
class Witness:
    """A background thread that runs ``check`` every ``interval_s`` on a fixed clock."""

    name: str
    check: Check
    interval_s: float = 0.05
    target: str = ""
    observations: list[Observation] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def look(self) -> Observation:
        wall, t0 = time.time(), time.monotonic()
        up, detail = self.check()
        return Observation(t0, wall, up, (time.monotonic() - t0) * 1000, detail)

    def start(self) -> Witness:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"witness-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Observation]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        return self.observations

    def _loop(self) -> None:
        start = time.monotonic()
        k = 0
        while not self._stop.is_set():
            self.observations.append(self.look())
            k += 1
            now = time.monotonic()
            due = start + k * self.interval_s
            if due < now:  # a slow look (timeout): skip missed slots instead of bursting
                k = int((now - start) / self.interval_s) + 1
                due = start + k * self.interval_s
            self._stop.wait(max(0.0, due - time.monotonic()))

    # -- questions -----------------------------------------------------------------
    def first_down_after(self, t: float) -> Observation | None:
        return first_obs(self.observations, after=t, up=False)

    def first_up_after(self, t: float) -> Observation | None:
        return first_obs(self.observations, after=t, up=True)

    def last_up_before(self, t: float) -> Observation | None:
        before = [o for o in list(self.observations) if o.t < t and o.up]
        return before[-1] if before else None

    @property
    def up_now(self) -> bool:
        obs = self.observations
        return bool(obs) and obs[-1].up


def first_obs(observations: Sequence[Observation], *, after: float, up: bool) -> Observation | None:
    """The first observation at or after ``after`` (monotonic) that is up (or down)."""
    for obs in list(observations):
        if obs.t >= after and obs.up == up:
            return obs
    return None


# -- HAProxy's own view ----------------------------------------------------------------


@dataclass(frozen=True)
class LbObservation:
    t: float
    wall: float
    status: dict[str, str]  # server -> HAProxy status (UP, DOWN, "UP 1/3", MAINT...)
    error: str | None = None


def lb_down(status: str) -> bool:
    """HAProxy has taken the server out of rotation (DOWN, including 'DOWN 1/2' while rising)."""
    return status.startswith(("DOWN", "MAINT", "NOLB"))


def lb_up(status: str) -> bool:
    return status.startswith("UP") or status == "no check"


@dataclass
class LbWatch:
    """``show stat`` of one backend every ``interval_s``: when HAProxy marks servers DOWN and UP."""

    socket_path: str
    backend: str
    interval_s: float = 0.1
    observations: list[LbObservation] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LbWatch:
        self._thread = threading.Thread(target=self._loop, name="witness-haproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[LbObservation]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=3)
        return self.observations

    def look(self) -> LbObservation:
        wall, t0 = time.time(), time.monotonic()
        try:
            stats = HAProxy(self.socket_path, timeout_s=min(1.0, max(0.2, self.interval_s * 5)))
            rows = stats.stats(self.backend)
            return LbObservation(t0, wall, {r.server: r.status for r in rows})
        except Exception as exc:  # an observation, never a crash of the watch
            return LbObservation(t0, wall, {}, f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        start = time.monotonic()
        k = 0
        while not self._stop.is_set():
            self.observations.append(self.look())
            k += 1
            due = start + k * self.interval_s
            now = time.monotonic()
            if due < now:
                k = int((now - start) / self.interval_s) + 1
                due = start + k * self.interval_s
            self._stop.wait(max(0.0, due - time.monotonic()))

    def first_where(self, server: str, after: float, pred: Callable[[str], bool]) -> LbObservation | None:
        for obs in list(self.observations):
            if obs.t >= after and server in obs.status and pred(obs.status[server]):
                return obs
        return None
