"""The reference service (lab/refservice) against the real lab.

These tests talk HTTP to the load balancer and to each instance, and read
PostgreSQL and Redis directly as outside witnesses. Everything they disturb
heals by itself within seconds (a rate-limit bucket refills, a Redis client
pause expires, terminated database sessions are replaced), and each test that
disturbs something waits for the service to be healthy again before it ends.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import redis

from drillbook.core.haproxy import HAProxy

pytestmark = pytest.mark.lab

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
REQUIRED_BUCKETS = [
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.075",
    "0.1",
    "0.15",
    "0.2",
    "0.3",
    "0.5",
    "0.75",
    "1.0",
    "2.0",
    "5.0",
]
CACHE_COUNTERS = (
    "refservice_cache_hits_total",
    "refservice_cache_misses_total",
    "refservice_cache_errors_total",
)
ALLOWED_ORIGIN = "https://app.example.com"  # the service's default REFSVC_CORS_ORIGINS


# -- helpers -------------------------------------------------------------------


@pytest.fixture()
def lb(lab: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lab["lb_url"], timeout=10) as client:
        yield client


@pytest.fixture()
def app1(lab: dict[str, Any]) -> Iterator[httpx.Client]:
    """One instance directly (per-process state: rate limits, metrics)."""
    with httpx.Client(base_url=lab["app_instances"][0], timeout=10) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The standard error body: {"error": {"code", "message", "request_id"}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return dict(error)


def create_item(client: httpx.Client, name: str, value: str = "v") -> dict[str, Any]:
    response = client.post("/items", json={"name": name, "value": value})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


def cursor_after(item_id: int) -> str:
    """A cursor that starts paging after `item_id`.

    Cursors are opaque to clients; lab/README.md documents their form so tests
    can start next to their own rows instead of walking a table that load tests
    may have filled.
    """
    return base64.urlsafe_b64encode(str(item_id).encode()).rstrip(b"=").decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0.0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


def wait_until_healthy(lab: dict[str, Any], timeout_s: float = 15.0) -> None:
    """Every instance ready and not degraded, and back in HAProxy (the state tests must leave behind).

    HAProxy puts a server back only after its own checks passed ``rise`` times, a
    second or more after the instance itself answers ready again: a test that starts
    in between gets "503 no server is available" from the load balancer.
    """
    deadline = time.monotonic() + timeout_s
    pending = list(lab["app_instances"])
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                body = httpx.get(f"{url}/health/ready", timeout=2).json()
            except httpx.HTTPError:
                continue
            if body.get("status") == "ok" and body.get("degraded") is False:
                pending.remove(url)
        time.sleep(0.1)
    assert not pending, f"instances not healthy after {timeout_s}s: {pending}"
    haproxy = HAProxy(lab["haproxy_socket"])
    down: list[str] = []
    while time.monotonic() < deadline:
        down = [s.server for s in haproxy.stats() if not s.up]
        if not down:
            return
        time.sleep(0.1)
    raise AssertionError(f"servers not UP in HAProxy after {timeout_s}s: {down}")


# -- health and identity ---------------------------------------------------------


def test_liveness_on_every_instance_and_the_load_balancer(lab: dict[str, Any]) -> None:
    for url in [lab["lb_url"], *lab["app_instances"]]:
        response = httpx.get(f"{url}/health/live", timeout=5)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_readiness_reports_both_dependencies(lab: dict[str, Any]) -> None:
    for url in lab["app_instances"]:
        response = httpx.get(f"{url}/health/ready", timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert body["degraded"] is False
        assert body["checks"]["postgres"]["ok"] is True
        assert body["checks"]["redis"]["ok"] is True


def test_version_names_each_instance(lab: dict[str, Any]) -> None:
    seen = []
    for url in lab["app_instances"]:
        body = httpx.get(f"{url}/version", timeout=5).json()
        assert set(body) >= {"version", "instance", "error_rate", "latency_ms"}
        assert isinstance(body["version"], str) and body["version"]
        seen.append(body["instance"])
    assert len(set(seen)) == len(seen), seen
    via_lb = httpx.get(f"{lab['lb_url']}/version", timeout=5).json()
    assert via_lb["instance"] in seen


# -- items -------------------------------------------------------------------------


def test_items_crud_round_trip(lb: httpx.Client, lab: dict[str, Any]) -> None:
    name = f"crud-{uuid.uuid4().hex[:8]}"
    created = create_item(lb, name, "first")
    assert set(created) == {"id", "name", "value", "created_at", "updated_at"}
    item_id = created["id"]
    assert (created["name"], created["value"]) == (name, "first")

    # Read twice: the second read may come from Redis (possibly on another instance).
    for _ in range(2):
        assert lb.get(f"/items/{item_id}").json() == created

    updated = lb.put(f"/items/{item_id}", json={"name": name, "value": "second"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["value"] == "second"
    assert updated.json()["updated_at"] >= created["updated_at"]
    # The cached copy was dropped: every instance now serves the new value.
    for url in lab["app_instances"]:
        assert httpx.get(f"{url}/items/{item_id}", timeout=5).json()["value"] == "second"

    # Outside witness: the row in PostgreSQL itself.
    with psycopg.connect(lab["postgres_dsn"]) as conn:
        row = conn.execute("SELECT name, value FROM items WHERE id = %s", (item_id,)).fetchone()
    assert row == (name, "second")

    deleted = lb.delete(f"/items/{item_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(lb.get(f"/items/{item_id}"), 404, "not_found")
    assert_error(lb.delete(f"/items/{item_id}"), 404, "not_found")
    assert_error(lb.put(f"/items/{item_id}", json={"name": "x", "value": "y"}), 404, "not_found")


def test_item_validation_errors(lb: httpx.Client) -> None:
    bad_bodies = [
        {"name": "", "value": "v"},
        {"name": "x" * 201, "value": "v"},
        {"name": "ok", "value": "v" * 10_001},
        {"name": "ok"},
        {"value": "v"},
        {"name": 5, "value": "v"},
    ]
    for body in bad_bodies:
        error = assert_error(lb.post("/items", json=body), 422, "validation_error")
        assert error["details"], body
    assert_error(lb.get("/items/not-a-number"), 422, "validation_error")
    assert_error(lb.get("/items", params={"limit": 0}), 422, "validation_error")
    assert_error(lb.get("/items", params={"limit": 101}), 422, "validation_error")
    assert_error(lb.get("/items", params={"cursor": "!!not-a-cursor!!"}), 422, "validation_error")


def test_pagination_is_keyset_and_complete(lb: httpx.Client) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}"
    ids = [create_item(lb, f"{prefix}-{n}")["id"] for n in range(12)]
    pages = 0
    seen: list[int] = []
    cursor: str | None = cursor_after(ids[0] - 1)
    while cursor and (not seen or seen[-1] < ids[-1]):
        body = lb.get("/items", params={"limit": 5, "cursor": cursor}).json()
        assert len(body["items"]) <= 5
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        pages += 1
    assert pages >= 3
    assert seen == sorted(set(seen)), "ids must ascend without duplicates"
    assert set(ids) <= set(seen)

    first = lb.get("/items", params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"] is not None
    default = lb.get("/items").json()
    assert len(default["items"]) <= 20

    for item_id in ids:
        lb.delete(f"/items/{item_id}")


def test_pagination_stable_under_concurrent_inserts(lb: httpx.Client, lab: dict[str, Any]) -> None:
    """Rows that existed when paging started appear exactly once, whatever is inserted meanwhile."""
    prefix = f"stable-{uuid.uuid4().hex[:8]}"
    existing = [create_item(lb, f"{prefix}-old-{n}")["id"] for n in range(30)]
    inserted: list[int] = []
    stop = threading.Event()

    def insert_while_paging() -> None:
        with httpx.Client(base_url=lab["lb_url"], timeout=10) as client:
            n = 0
            while not stop.is_set():
                inserted.append(create_item(client, f"{prefix}-new-{n}")["id"])
                n += 1

    def wait_for_an_insert() -> None:
        count, deadline = len(inserted), time.monotonic() + 5
        while len(inserted) == count and time.monotonic() < deadline:
            time.sleep(0.002)

    writer = threading.Thread(target=insert_while_paging)
    writer.start()
    try:
        seen: list[int] = []
        cursor: str | None = cursor_after(existing[0] - 1)
        for _ in range(1000):
            wait_for_an_insert()  # every page is fetched after at least one more insert
            body = lb.get("/items", params={"limit": 4, "cursor": cursor}).json()
            seen.extend(item["id"] for item in body["items"])
            cursor = body["next_cursor"]
            if cursor is None or seen[-1] > existing[-1]:
                break
    finally:
        stop.set()
        writer.join(timeout=10)

    assert len(inserted) >= 8, "the writer did not interleave with the pages"
    assert len(seen) == len(set(seen)), "an item was returned twice"
    assert seen == sorted(seen)
    missing = set(existing) - set(seen)
    assert not missing, f"existing rows skipped: {sorted(missing)}"

    for item_id in existing + inserted:
        lb.delete(f"/items/{item_id}")


# -- cross-cutting behaviour ----------------------------------------------------------


def test_unknown_route_and_wrong_method_use_the_error_format(lb: httpx.Client) -> None:
    assert_error(lb.get(f"/no-such-route-{uuid.uuid4().hex[:6]}"), 404, "not_found")
    assert_error(lb.patch("/items/1", json={}), 405, "method_not_allowed")


def test_oversized_bodies_get_413(app1: httpx.Client) -> None:
    big = b'{"name": "big", "value": "' + b"x" * 70_000 + b'"}'
    headers = {"content-type": "application/json"}
    assert_error(app1.post("/items", content=big, headers=headers), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it streams
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    assert_error(app1.post("/items", content=chunks(), headers=headers), 413, "payload_too_large")

    small = b'{"name": "chunked-small", "value": "fits"}'
    response = app1.post("/items", content=iter([small[:10], small[10:]]), headers=headers)
    assert response.status_code == 201, response.text
    app1.delete(f"/items/{response.json()['id']}")


def test_request_id_is_echoed_or_generated(lb: httpx.Client) -> None:
    given = f"test-{uuid.uuid4()}"
    assert lb.get("/health/live", headers={"X-Request-ID": given}).headers["x-request-id"] == given

    generated = lb.get("/health/live").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)

    insane = "bad id\twith spaces <script>"
    replaced = lb.get("/health/live", headers={"X-Request-ID": insane}).headers["x-request-id"]
    assert replaced != insane and re.fullmatch(r"[0-9a-f]{32}", replaced)

    error = assert_error(lb.get(f"/items/{2**63 - 1}", headers={"X-Request-ID": given}), 404, "not_found")
    assert error["request_id"] == given


def test_security_headers_on_success_and_errors(app1: httpx.Client) -> None:
    for response in (app1.get("/health/live"), app1.get("/no-such-route"), app1.get("/items/abc")):
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (response.url, header)
        assert "strict-transport-security" not in response.headers  # plain http
    over_https = app1.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert over_https.headers["strict-transport-security"].startswith("max-age=")


def test_cors_allows_only_listed_origins(app1: httpx.Client) -> None:
    allowed = app1.get("/version", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"

    other = app1.get("/version", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = app1.options("/items", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = app1.options("/items", headers={"Origin": "https://evil.example", **preflight})
    assert_error(refused, 403, "forbidden")
    assert "access-control-allow-origin" not in refused.headers


def test_login_burst_is_rate_limited_then_recovers(app1: httpx.Client) -> None:
    credentials = {"username": "drill", "password": "secret"}
    time.sleep(2.5)  # start from a full bucket, whatever ran before
    first = app1.post("/auth/token", json=credentials)
    assert first.status_code == 200 and first.json()["token"]

    codes = [first.status_code]
    limited = None
    for _ in range(29):
        response = app1.post("/auth/token", json=credentials)
        codes.append(response.status_code)
        if response.status_code == 429 and limited is None:
            limited = response
    assert limited is not None, codes
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert codes.count(200) >= 10, codes  # the burst went through

    time.sleep(int(limited.headers["retry-after"]) + 1.5)  # leave the bucket refilled
    assert app1.post("/auth/token", json=credentials).status_code == 200


def test_login_rejects_empty_credentials(lb: httpx.Client) -> None:
    response = lb.post("/auth/token", json={"username": "", "password": ""})
    assert response.status_code in (422, 429)  # 429 if an earlier burst shared this client
    if response.status_code == 422:
        assert_error(response, 422, "validation_error")


# -- metrics ----------------------------------------------------------------------------


def test_metrics_expose_the_contract(app1: httpx.Client) -> None:
    text = app1.get("/metrics").text
    for bucket in REQUIRED_BUCKETS:
        assert f'le="{bucket}"' in text, bucket
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE http_requests_total counter" in text
    for counter in CACHE_COUNTERS:
        assert f"\n{counter} " in text, counter
    version = app1.get("/version").json()
    info = metric_value(text, "refservice_info", version=version["version"], instance=version["instance"])
    assert info == 1.0


def test_metrics_count_requests_by_route_template(app1: httpx.Client) -> None:
    item = create_item(app1, f"metrics-{uuid.uuid4().hex[:8]}")
    before = app1.get("/metrics").text
    for _ in range(3):
        assert app1.get(f"/items/{item['id']}").status_code == 200
    after = app1.get("/metrics").text

    labels = {"method": "GET", "route": "/items/{item_id}"}
    counted = metric_value(after, "http_requests_total", status="200", **labels) - metric_value(
        before, "http_requests_total", status="200", **labels
    )
    assert counted >= 3
    observed = metric_value(after, "http_request_duration_seconds_count", **labels) - metric_value(
        before, "http_request_duration_seconds_count", **labels
    )
    assert observed >= 3
    hits = metric_value(after, "refservice_cache_hits_total") - metric_value(
        before, "refservice_cache_hits_total"
    )
    assert hits >= 2  # the first read may fill the cache, the next ones hit it
    assert f'/items/{item["id"]}"' not in after  # raw paths never become labels
    app1.delete(f"/items/{item['id']}")


# -- the database witness and self-healing ------------------------------------------------


def test_sentinel_writer_is_current_for_every_instance(lab: dict[str, Any]) -> None:
    instances = [httpx.get(f"{url}/version", timeout=5).json()["instance"] for url in lab["app_instances"]]
    with psycopg.connect(lab["postgres_dsn"]) as conn:
        rows = conn.execute(
            "SELECT instance, extract(epoch FROM now() - max(written_at)) FROM sentinel"
            " WHERE instance = ANY(%s) GROUP BY instance",
            (instances,),
        ).fetchall()
    ages = {instance: float(age) for instance, age in rows}
    assert set(ages) == set(instances), ages
    assert all(age < 5 for age in ages.values()), ages


@pytest.mark.slow
def test_items_survive_a_redis_stall(lab: dict[str, Any], app1: httpx.Client) -> None:
    """A paused Redis costs the cache, not the API: reads stay fast, readiness says degraded."""
    item = create_item(app1, f"stall-{uuid.uuid4().hex[:8]}", "before")
    app1.get(f"/items/{item['id']}")  # cached
    cache = redis.Redis.from_url(lab["redis_url"])
    try:
        cache.client_pause(2000, all=True)  # ends by itself after 2 s
        time.sleep(0.1)
        ready = app1.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["degraded"] is True
        assert ready.json()["checks"]["redis"]["ok"] is False

        durations = []
        for _ in range(20):
            start = time.perf_counter()
            response = app1.get(f"/items/{item['id']}")
            durations.append(time.perf_counter() - start)
            assert response.status_code == 200
        assert sorted(durations)[len(durations) // 2] < 0.1, durations  # the breaker skips Redis

        updated = app1.put(f"/items/{item['id']}", json={"name": item["name"], "value": "during"})
        assert updated.status_code == 200
    finally:
        cache.ping()  # blocks until the pause is over (UNPAUSE would wait just the same)
        cache.close()

    wait_until_healthy(lab)
    # The invalidation missed during the stall was delivered: no stale "before".
    for url in lab["app_instances"]:
        assert httpx.get(f"{url}/items/{item['id']}", timeout=5).json()["value"] == "during"
    app1.delete(f"/items/{item['id']}")


@pytest.mark.slow
def test_recovers_when_database_sessions_are_killed(lab: dict[str, Any], lb: httpx.Client) -> None:
    """Terminated PostgreSQL sessions are replaced without restarting the service."""
    wait_until_healthy(lab)  # an earlier test may have just brought a piece back
    create_item(lb, "before-terminate")
    with psycopg.connect(lab["postgres_dsn"], autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'refservice-%' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] > 0

    deadline = time.monotonic() + 5
    recovered = None
    while time.monotonic() < deadline:
        response = lb.post("/items", json={"name": "after-terminate", "value": "v"})
        if response.status_code == 201:
            recovered = response.json()
            break
        assert_error(response, 503, "service_unavailable")  # a dead session found, never a 500
        time.sleep(0.05)
    assert recovered is not None, "items API did not recover within 5 s"
    wait_until_healthy(lab)
    lb.delete(f"/items/{recovered['id']}")
