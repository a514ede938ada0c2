"""audit.http: outside-in checks of the service behind the inventory's URL.

Each check sends a handful of ordinary requests, only to the inventory's own
load-balancer URL (and, for /metrics, its own instances), and returns a
:class:`Finding` with the evidence a reviewer would want: the header seen, the
status returned, the request that proved it. The rate-limit probe is bounded in
count and rate and stops at the first 429.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field

from drillbook.core.inventory import Topology
from drillbook.core.items_api import cursor_after

EVIL_ORIGIN = "https://audit-origin.drillbook.invalid"


class RateLimitTarget(BaseModel):
    """One endpoint the rate-limit check hammers (default: the token endpoint, where guessing is cheap)."""

    method: str = "POST"
    path: str = "/auth/token"
    json_body: dict[str, str] | None = Field(
        default_factory=lambda: {"username": "audit", "password": "audit"}
    )


class HttpAuditSettings(BaseModel):
    """``audit_http_*`` variables: what the service promises, so the audit knows what to expect."""

    rate_limit_endpoints: list[RateLimitTarget] = Field(default_factory=lambda: [RateLimitTarget()])
    rate_limit_max_requests: int = Field(default=60, ge=1, le=1000)
    rate_limit_rps: float = Field(default=50.0, gt=0, le=500)
    body_limit_bytes: int = Field(default=65536, gt=0)
    pagination_items: int = Field(default=30, ge=5, le=500)
    timeout_s: float = Field(default=5.0, gt=0)


@dataclass(frozen=True)
class Finding:
    """One audit check's result: ok or not, and the evidence a reader can repeat (requests, headers seen)."""

    name: str
    ok: bool
    evidence: str


Check = Callable[[httpx.Client, Topology, HttpAuditSettings], Finding]


def security_headers(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """CSP, nosniff, framing and Referrer-Policy headers: what a browser needs to stay safe."""
    resp = client.get("/health/live")
    h = resp.headers
    problems = []
    if not h.get("content-security-policy"):
        problems.append("no Content-Security-Policy")
    if h.get("x-content-type-options", "").lower() != "nosniff":
        problems.append(f"X-Content-Type-Options={h.get('x-content-type-options')!r}")
    frame_ok = h.get("x-frame-options", "").upper() in ("DENY", "SAMEORIGIN") or "frame-ancestors" in h.get(
        "content-security-policy", ""
    )
    if not frame_ok:
        problems.append("no X-Frame-Options / frame-ancestors")
    if not h.get("referrer-policy"):
        problems.append("no Referrer-Policy")
    seen = ", ".join(
        f"{k}: {h[k]}" for k in ("x-content-type-options", "x-frame-options", "referrer-policy") if k in h
    )
    return Finding("security_headers", not problems, "; ".join(problems) or f"GET /health/live: {seen}")


def hsts(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """Strict-Transport-Security with a positive max-age, asked over TLS or as if TLS ended in front."""
    if topo.lb_url.startswith("https://"):
        resp = client.get("/health/live")
        how = "over TLS"
    else:  # TLS terminates in front of the service: it must still send HSTS for https requests
        resp = client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
        how = "with X-Forwarded-Proto: https"
    value = resp.headers.get("strict-transport-security", "")
    ok = "max-age=" in value and not value.startswith("max-age=0")
    return Finding("hsts", ok, f"{how}: Strict-Transport-Security={value or 'absent'}")


def cors_credentials(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """A foreign origin is neither reflected nor allowed ``*`` with credentials (preflight and GET)."""
    preflight = client.options(
        "/items",
        headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    simple = client.get("/items?limit=1", headers={"Origin": EVIL_ORIGIN})
    problems = []
    for label, resp in (("preflight", preflight), ("GET", simple)):
        allow = resp.headers.get("access-control-allow-origin")
        creds = resp.headers.get("access-control-allow-credentials", "").lower() == "true"
        if allow == "*" and creds:
            problems.append(f"{label}: Allow-Origin * with credentials")
        elif allow == EVIL_ORIGIN:
            problems.append(f"{label}: reflects a foreign origin{' with credentials' if creds else ''}")
    return Finding(
        "cors_credentials",
        not problems,
        "; ".join(problems) or f"origin {EVIL_ORIGIN} not allowed (preflight {preflight.status_code})",
    )


def rate_limit(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """Bursts of concurrent requests (a burst is what a limiter must stop), bounded in count and rate."""
    notes, ok = [], True
    wave = 10
    for target in s.rate_limit_endpoints:
        seen_429, retry_after, sent = False, None, 0
        with ThreadPoolExecutor(max_workers=wave) as pool:
            while sent < s.rate_limit_max_requests and not seen_429:
                t0 = time.monotonic()
                size = min(wave, s.rate_limit_max_requests - sent)
                answers = list(
                    pool.map(
                        lambda _i, t=target: client.request(t.method, t.path, json=t.json_body),
                        range(size),
                    )
                )
                sent += size
                limited = [r for r in answers if r.status_code == 429]
                if limited:
                    seen_429, retry_after = True, limited[0].headers.get("retry-after")
                time.sleep(max(0.0, size / s.rate_limit_rps - (time.monotonic() - t0)))
        if not seen_429:
            ok = False
            notes.append(
                f"{target.method} {target.path}: no 429 after {sent} requests at {s.rate_limit_rps:g}/s"
            )
        elif not retry_after:
            ok = False
            notes.append(f"{target.method} {target.path}: 429 after {sent} requests but no Retry-After")
        else:
            notes.append(
                f"{target.method} {target.path}: 429 after {sent} requests, Retry-After {retry_after}"
            )
    return Finding("rate_limit", ok, "; ".join(notes))


def body_limit(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """A body twice ``body_limit_bytes`` is refused with 413 before the service reads it all."""
    size = s.body_limit_bytes * 2
    resp = client.post("/items", content=b"x" * size, headers={"Content-Type": "application/json"})
    return Finding(
        "body_limit", resp.status_code == 413, f"POST /items with {size} bytes -> {resp.status_code}"
    )


def request_id(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """A client's X-Request-ID is echoed, and one is generated when absent (logs can be joined)."""
    sent = f"drillbook-audit-{uuid.uuid4().hex[:12]}"
    echoed = client.get("/health/live", headers={"X-Request-ID": sent}).headers.get("x-request-id")
    generated = client.get("/health/live").headers.get("x-request-id")
    ok = echoed == sent and bool(generated)
    return Finding("request_id", ok, f"sent {sent}, echoed {echoed!r}; without one, got {generated!r}")


def error_format(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """Errors (unknown route, missing item, bad body) carry the documented ``{error: {code, message}}``."""
    probes = [
        ("GET /drillbook-audit-no-such-route", client.get("/drillbook-audit-no-such-route"), 404),
        ("GET /items/999999999999", client.get("/items/999999999999"), 404),
        ("POST /items {}", client.post("/items", json={}), 422),
    ]
    problems, seen = [], []
    for label, resp, expected in probes:
        seen.append(f"{label} -> {resp.status_code}")
        try:
            body = resp.json()
            err = body.get("error") if isinstance(body, dict) else None
            shaped = (
                isinstance(err, dict)
                and isinstance(err.get("code"), str)
                and isinstance(err.get("message"), str)
            )
        except ValueError:
            shaped = False
        if resp.status_code != expected or not shaped:
            problems.append(f"{label}: {resp.status_code} {resp.text[:80]!r}")
    return Finding("error_format", not problems, "; ".join(problems) or "; ".join(seen))


def pagination_stable(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """Page through /items while another client inserts; nothing repeats, nothing that existed is skipped."""
    created: list[int] = []
    for i in range(s.pagination_items):
        created.append(
            int(client.post("/items", json={"name": "drillbook-audit", "value": f"p{i}"}).json()["id"])
        )
    stop = threading.Event()
    inserted: list[int] = []

    def writer() -> None:
        with httpx.Client(base_url=topo.lb_url, timeout=s.timeout_s) as w:
            while not stop.is_set() and len(inserted) < 200:
                resp = w.post("/items", json={"name": "drillbook-audit", "value": "concurrent"})
                if resp.status_code == 201:
                    inserted.append(int(resp.json()["id"]))

    thread = threading.Thread(target=writer, daemon=True)
    seen: list[int] = []
    try:
        thread.start()
        deadline = time.monotonic() + s.timeout_s
        while len(inserted) < 3 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # page while inserts are really happening
        cursor: str | None = cursor_after(min(created) - 1) if created else None
        pages = 0
        while pages < 10_000:
            params: dict[str, str | int] = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            body = client.get("/items", params=params).json()
            seen += [int(i["id"]) for i in body["items"]]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
    finally:
        stop.set()
        thread.join(timeout=10)
        for item_id in created + inserted:
            client.delete(f"/items/{item_id}")
    dupes = len(seen) - len(set(seen))
    missing = [i for i in created if i not in set(seen)]
    ok = dupes == 0 and not missing
    return Finding(
        "pagination_stable",
        ok,
        f"{pages} pages, {len(seen)} items, {len(inserted)} inserted meanwhile, {dupes} repeated, "
        f"{len(missing)} of {len(created)} pre-existing missing",
    )


def openapi(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """The service publishes its OpenAPI document, with paths."""
    resp = client.get("/openapi.json")
    try:
        doc = resp.json()
        ok = resp.status_code == 200 and "openapi" in doc and bool(doc.get("paths"))
        detail = f"OpenAPI {doc.get('openapi')} with {len(doc.get('paths', {}))} paths"
    except ValueError:
        ok, detail = False, f"GET /openapi.json -> {resp.status_code}, not JSON"
    return Finding("openapi", ok, detail)


def metrics_endpoint(client: httpx.Client, topo: Topology, s: HttpAuditSettings) -> Finding:
    """Every instance exposes the request histogram and counter the canary and load drills read."""
    urls = [f"{i.url}/metrics" for i in topo.app_instances] or [f"{topo.lb_url}/metrics"]
    problems = []
    for url in urls:
        text = httpx.get(url, timeout=s.timeout_s).text
        for needed in ("http_request_duration_seconds_bucket", "http_requests_total"):
            if needed not in text:
                problems.append(f"{url}: no {needed}")
    return Finding(
        "metrics_endpoint", not problems, "; ".join(problems) or f"{len(urls)} instances expose histograms"
    )


CHECKS: tuple[Check, ...] = (
    security_headers,
    hsts,
    cors_credentials,
    rate_limit,
    body_limit,
    request_id,
    error_format,
    pagination_stable,
    openapi,
    metrics_endpoint,
)


def run_checks(topo: Topology, settings: HttpAuditSettings) -> list[Finding]:
    """Every check in order; a target that does not answer gives 'unreachable' findings, not a traceback."""
    findings = []
    with httpx.Client(base_url=topo.lb_url, timeout=settings.timeout_s) as client:
        for check in CHECKS:
            try:
                findings.append(check(client, topo, settings))
            except httpx.HTTPError as exc:
                findings.append(Finding(check.__name__, False, f"unreachable: {type(exc).__name__} {exc}"))
            except (ValueError, KeyError, TypeError) as exc:
                findings.append(
                    Finding(check.__name__, False, f"unexpected answer: {type(exc).__name__} {exc}")
                )
    return findings
