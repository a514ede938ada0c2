"""What the service holds and serves during a chaos drill, and how the drill checks it afterwards.

* A marker row, written through the API before the fault and looked up in the
  database itself afterwards: the database is the witness that nothing was lost,
  not the API that wrote it.
* Background traffic whose writes are remembered when acknowledged (HTTP 201):
  every acknowledged write must be in the database after the restart too.
* The cache: after Redis comes back, reading an item through the load balancer
  must put it in Redis again, seen by asking Redis directly.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from drillbook.core.errors import TargetUnreachable
from drillbook.core.traffic import Request, RequestSource

MARKER_NAME = "drillbook-chaos-marker"
TRAFFIC_NAME = "drillbook-chaos-traffic"


@dataclass(frozen=True)
class Marker:
    item_id: int
    value: str


def write_marker(lb_url: str, timeout_s: float = 5.0) -> Marker:
    """Create the marker item through the load balancer (a real write on the real path)."""
    value = f"chaos-{uuid.uuid4().hex}"
    try:
        with httpx.Client(base_url=lb_url, timeout=timeout_s, transport=httpx.HTTPTransport(retries=0)) as c:
            resp = c.post("/items", json={"name": MARKER_NAME, "value": value})
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"could not write the marker item through {lb_url}: {exc}") from exc
    if resp.status_code != 201:
        raise TargetUnreachable(
            f"could not write the marker item through {lb_url}: HTTP {resp.status_code} {resp.text[:120]}"
        )
    return Marker(int(resp.json()["id"]), value)


def marker_in_db(dsn: str, marker: Marker, timeout_s: int = 3) -> tuple[bool, str]:
    """(intact, detail): the marker row read back from PostgreSQL with a fresh connection."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            row = conn.execute("SELECT value FROM items WHERE id = %s", (marker.item_id,)).fetchone()
    except psycopg.Error as exc:
        return False, f"database not readable: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
    if row is None:
        return False, f"marker row id {marker.item_id} is missing"
    if row[0] != marker.value:
        return False, f"marker row id {marker.item_id} has value {row[0]!r}, expected {marker.value!r}"
    return True, f"marker row id {marker.item_id} present with its value"


def writes_in_db(dsn: str, values: list[str], timeout_s: int = 3) -> tuple[int | None, str]:
    """How many of the acknowledged writes are missing from the database (None: could not tell)."""
    import psycopg

    if not values:
        return 0, "no acknowledged writes"
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT value) FROM items WHERE name = %s AND value = ANY(%s)",
                (TRAFFIC_NAME, values),
            ).fetchone()
    except psycopg.Error as exc:
        return None, f"database not readable: {exc}"
    found = int(row[0]) if row else 0
    return len(set(values)) - found, f"{found} of {len(set(values))} acknowledged writes found"


def seed(lb_url: str, count: int = 20, timeout_s: float = 5.0) -> dict[int, str]:
    """Items the traffic reads back and checks."""
    items: dict[int, str] = {}
    with httpx.Client(base_url=lb_url, timeout=timeout_s, transport=httpx.HTTPTransport(retries=0)) as c:
        for _ in range(count):
            value = f"seed-{uuid.uuid4().hex}"
            resp = c.post("/items", json={"name": TRAFFIC_NAME, "value": value})
            if resp.status_code != 201:
                raise TargetUnreachable(f"could not seed items through {lb_url}: HTTP {resp.status_code}")
            items[int(resp.json()["id"])] = value
    return items


@dataclass
class WriteLedger:
    """Values of writes the service acknowledged (thread-safe: traffic workers append)."""

    values: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self, value: str) -> Callable[[httpx.Response], bool]:
        def expect(resp: httpx.Response) -> bool:
            if resp.status_code != 201:
                return False
            with self._lock:
                self.values.append(value)
            return True

        return expect

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.values)


def chaos_mix(items: dict[int, str], ledger: WriteLedger, write_share: float = 0.2) -> RequestSource:
    """Checked reads of known items, writes remembered when acknowledged, and listing pages."""
    ids = list(items)
    run = uuid.uuid4().hex[:8]
    rng = random.Random()

    def read_expect(item_id: int) -> Callable[[httpx.Response], bool]:
        return lambda resp: resp.status_code == 200 and resp.json().get("value") == items[item_id]

    def source(k: int) -> Request:
        roll = rng.random()
        if roll < write_share:
            value = f"w-{run}-{k}"
            return Request(
                "POST /items",
                "POST",
                "/items",
                json={"name": TRAFFIC_NAME, "value": value},
                expect=ledger.acknowledged(value),
            )
        if roll < write_share + 0.05:
            return Request("GET /items", "GET", "/items?limit=10")
        item_id = ids[k % len(ids)]
        return Request("GET /items/{id}", "GET", f"/items/{item_id}", expect=read_expect(item_id))

    return source


def cache_holds(redis_url: str, key: str, timeout_s: float = 0.5) -> tuple[bool, str]:
    """Ask Redis itself whether ``key`` is cached (no retries: an answer or an error, at once)."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis_lib.Redis.from_url(
        redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
    try:
        return bool(client.exists(key)), f"EXISTS {key}"
    except redis_lib.RedisError as exc:
        return False, f"Redis: {exc}"
    finally:
        client.close()


def read_through_lb(lb_url: str, item_id: int, times: int = 2, timeout_s: float = 2.0) -> list[int | None]:
    """Read an item a few times through the load balancer (fills the cache on a miss)."""
    codes: list[int | None] = []
    with httpx.Client(base_url=lb_url, timeout=timeout_s, transport=httpx.HTTPTransport(retries=0)) as c:
        for _ in range(times):
            try:
                codes.append(c.get(f"/items/{item_id}").status_code)
            except httpx.HTTPError:
                codes.append(None)
    return codes
