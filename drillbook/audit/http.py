"""audit.http: outside-in checks of the service behind the inventory's URL.

Each check sends a handful of ordinary requests, only to the inventory's own
load-balancer URL (and, for metrics, its own instances), and returns a
:class:`Finding` with the evidence a reviewer would want: the header seen, the
status returned, the request that proved it. What a check probes comes from the
service profile (``service_audit``, ``service_metrics``, ``service_marker``; see
docs/service-profile.md): a check whose target the profile does not give is
"not applicable", reported and never failing. The rate-limit probe is bounded in
count and rate and stops at the first limited answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, Field

from drillbook.audit import pagination
from drillbook.core.flow import Flow, prepare, send
from drillbook.core.inventory import Inventory, Topology
from drillbook.core.profile import ServiceProfile, Step, load_profile, status_matches

EVIL_ORIGIN = "https://audit-origin.drillbook.invalid"


class HttpAuditSettings(BaseModel):
    """``audit_http_*`` variables: how hard the audit probes (what it probes is the service profile)."""

    rate_limit_max_requests: int = Field(default=60, ge=1, le=1000)
    rate_limit_rps: float = Field(default=50.0, gt=0, le=500)
    pagination_items: int = Field(default=30, ge=0, le=500)
    pagination_max_pages: int = Field(default=100, ge=1, le=10_000)
    timeout_s: float = Field(default=5.0, gt=0)


@dataclass(frozen=True)
class Finding:
    """One audit check's result: ok or not, and the evidence a reader can repeat (requests, headers seen).

    ``applicable=False``: the profile gives the check nothing to probe; it is reported, never failing.
    """

    name: str
    ok: bool
    evidence: str
    applicable: bool = True


def not_applicable(name: str, why: str) -> Finding:
    return Finding(name, True, f"not applicable: {why}", applicable=False)


@dataclass
class Target:
    """What every check reads: the load balancer's client (with auth), the topology, settings, profile."""

    client: httpx.Client
    topo: Topology
    settings: HttpAuditSettings
    profile: ServiceProfile
    flow: Flow

    @property
    def probe(self) -> str | None:
        """The path header checks ask (``service_audit.probe_path``, else the liveness path)."""
        return self.profile.audit.probe_path or self.profile.health.live


Check = Callable[[Target], Finding]


def _no_probe(name: str) -> Finding:
    return not_applicable(name, "the profile gives no service_audit.probe_path nor service_health.live")


def security_headers(t: Target) -> Finding:
    """CSP, nosniff, framing and Referrer-Policy headers: what a browser needs to stay safe."""
    if t.probe is None:
        return _no_probe("security_headers")
    h = t.client.get(t.probe).headers
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
    return Finding("security_headers", not problems, "; ".join(problems) or f"GET {t.probe}: {seen}")


def hsts(t: Target) -> Finding:
    """Strict-Transport-Security with a positive max-age, asked over TLS or as if TLS ended in front."""
    if t.probe is None:
        return _no_probe("hsts")
    if t.topo.lb_url.startswith("https://"):
        resp = t.client.get(t.probe)
        how = "over TLS"
    else:  # TLS terminates in front of the service: it must still send HSTS for https requests
        resp = t.client.get(t.probe, headers={"X-Forwarded-Proto": "https"})
        how = "with X-Forwarded-Proto: https"
    value = resp.headers.get("strict-transport-security", "")
    ok = "max-age=" in value and not value.startswith("max-age=0")
    return Finding("hsts", ok, f"{how}: Strict-Transport-Security={value or 'absent'}")


def cors_credentials(t: Target) -> Finding:
    """A foreign origin is neither reflected nor allowed ``*`` with credentials (preflight and GET)."""
    if t.probe is None:
        return _no_probe("cors_credentials")
    preflight = t.client.options(
        t.probe, headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    simple = t.client.get(t.probe, headers={"Origin": EVIL_ORIGIN})
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


def _burst(t: Target, step: Step) -> tuple[str, bool]:
    """Waves of concurrent requests of ``step`` until one answers a status it expects (the limit)."""
    s = t.settings
    wave, sent, limited = 10, 0, None
    req = prepare(step, t.flow.values, t.flow.auth_headers())
    with ThreadPoolExecutor(max_workers=wave) as pool:
        while sent < s.rate_limit_max_requests and limited is None:
            t0 = time.monotonic()
            size = min(wave, s.rate_limit_max_requests - sent)
            answers = list(pool.map(lambda _i: send(t.client, req, step.timeout_s), range(size)))
            sent += size
            limited = next((r for r in answers if status_matches(step.expect_status, r.status_code)), None)
            time.sleep(max(0.0, size / s.rate_limit_rps - (time.monotonic() - t0)))
    where = f"{step.method} {req.path}"
    if limited is None:
        return (
            f"{where}: no {'/'.join(map(str, step.expect_status))} after {sent} requests "
            f"at {s.rate_limit_rps:g}/s",
            False,
        )
    retry_after = limited.headers.get("retry-after")
    if limited.status_code == 429 and not retry_after:
        return f"{where}: 429 after {sent} requests but no Retry-After", False
    extra = f", Retry-After {retry_after}" if retry_after else ""
    return f"{where}: {limited.status_code} after {sent} requests{extra}", True


def rate_limit(t: Target) -> Finding:
    """Bursts of concurrent requests (a burst is what a limiter must stop), bounded in count and rate."""
    steps = t.profile.audit.rate_limit
    if not steps:
        return not_applicable("rate_limit", "service_audit.rate_limit names no endpoint")
    notes = [_burst(t, step) for step in steps]
    return Finding("rate_limit", all(ok for _, ok in notes), "; ".join(text for text, _ in notes))


def body_limit(t: Target) -> Finding:
    """A body twice ``body_limit_bytes`` is refused with 413 before the service reads it all."""
    a = t.profile.audit
    if a.body_limit_path is None or a.body_limit_bytes is None:
        return not_applicable("body_limit", "service_audit.body_limit_path/body_limit_bytes not set")
    size = a.body_limit_bytes * 2
    resp = t.client.post(
        a.body_limit_path,
        content=b"x" * size,
        headers={**t.flow.auth_headers(), "Content-Type": "application/json"},
    )
    return Finding(
        "body_limit",
        resp.status_code == 413,
        f"POST {a.body_limit_path} with {size} bytes -> {resp.status_code}",
    )


def request_id(t: Target) -> Finding:
    """A client's X-Request-ID is echoed, and one is generated when absent (logs can be joined)."""
    if t.probe is None:
        return _no_probe("request_id")
    sent = f"drillbook-audit-{uuid.uuid4().hex[:12]}"
    echoed = t.client.get(t.probe, headers={"X-Request-ID": sent}).headers.get("x-request-id")
    generated = t.client.get(t.probe).headers.get("x-request-id")
    ok = echoed == sent and bool(generated)
    return Finding("request_id", ok, f"sent {sent}, echoed {echoed!r}; without one, got {generated!r}")


def shaped(fmt: str, resp: httpx.Response) -> bool:
    """Whether an error answer has the shape the profile promises."""
    try:
        body: Any = resp.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if fmt == "fastapi":
        return "detail" in body
    if fmt == "problem+json":
        ctype = resp.headers.get("content-type", "")
        return ctype.startswith("application/problem+json") and isinstance(body.get("title"), str)
    err = body.get("error")
    return isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)


def error_format(t: Target) -> Finding:
    """Errors (an unknown route; a malformed body where the service takes writes) have the promised shape."""
    fmt = t.profile.audit.error_format
    if fmt == "none":
        return not_applicable("error_format", "service_audit.error_format is none")
    auth = t.flow.auth_headers()
    probes = [
        ("GET /drillbook-audit-no-such-route", t.client.get("/drillbook-audit-no-such-route", headers=auth))
    ]
    write_path = t.profile.audit.body_limit_path or (
        t.profile.marker.write.path if t.profile.marker else None
    )
    if write_path and "${" not in write_path:
        bad = t.client.post(
            write_path, content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        )
        probes.append((f"POST {write_path} malformed JSON", bad))
    problems, seen = [], []
    for label, resp in probes:
        seen.append(f"{label} -> {resp.status_code}")
        if not 400 <= resp.status_code < 500 or not shaped(fmt, resp):
            problems.append(f"{label}: {resp.status_code} {resp.text[:80]!r}")
    return Finding("error_format", not problems, "; ".join(problems) or f"{fmt}: " + "; ".join(seen))


def pagination_stable(t: Target) -> Finding:
    """Page through the list while another client writes; nothing repeats, nothing that existed is skipped."""
    step, marker = t.profile.audit.pagination, t.profile.marker
    if step is None:
        return not_applicable("pagination_stable", "service_audit.pagination not set")
    s = t.settings
    writer = pagination.Writer(t.flow.fork(), marker.write) if marker else None
    try:
        for _ in range(s.pagination_items if writer else 0):
            writer.write_one()  # type: ignore[union-attr]
        before = pagination.walk(t.flow, step, s.pagination_max_pages)
        if before.problem:
            return Finding("pagination_stable", False, before.problem)
        if writer:
            writer.start()
        during = pagination.walk(t.flow, step, 2 * s.pagination_max_pages, until=set(before.keys))
    finally:
        if writer:
            writer.stop()
            pagination.cleanup(t.flow, list(marker.cleanup) if marker else [], writer.written)
    if during.problem:
        return Finding("pagination_stable", False, during.problem)
    inserted = max(0, len(writer.written) - s.pagination_items) if writer else 0
    dupes = len(during.keys) - len(set(during.keys))
    missing = set(before.keys) - set(during.keys)
    meanwhile = f"{inserted} inserted meanwhile" if writer else "no service_marker to write with"
    return Finding(
        "pagination_stable",
        dupes == 0 and not missing,
        f"{during.pages} pages, {len(during.keys)} entries, {meanwhile}, {dupes} repeated, "
        f"{len(missing)} of {len(set(before.keys))} pre-existing missing",
    )


def openapi(t: Target) -> Finding:
    """The service publishes its OpenAPI document, with paths."""
    resp = t.client.get("/openapi.json")
    try:
        doc = resp.json()
        ok = resp.status_code == 200 and isinstance(doc, dict) and "openapi" in doc and bool(doc.get("paths"))
        detail = (
            f"OpenAPI {doc.get('openapi')} with {len(doc.get('paths') or {})} paths"
            if isinstance(doc, dict)
            else "not an object"
        )
    except ValueError:
        ok, detail = False, f"GET /openapi.json -> {resp.status_code}, not JSON"
    return Finding("openapi", ok, detail)


def metrics_endpoint(t: Target) -> Finding:
    """Every instance exposes the request histogram and counter the profile names (``service_metrics``)."""
    m = t.profile.metrics
    if m is None:
        return not_applicable("metrics_endpoint", "service_metrics not set (the service exposes no metrics)")
    urls = [f"{i.url}{m.path}" for i in t.topo.app_instances] or [f"{t.topo.lb_url}{m.path}"]
    problems = []
    for url in urls:
        text = httpx.get(url, timeout=t.settings.timeout_s).text
        for needed in (f"{m.duration_seconds}_bucket", m.requests_total):
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


def run_checks(
    inv: Inventory, settings: HttpAuditSettings, profile: ServiceProfile | None = None
) -> list[Finding]:
    """Every check in order; a target that does not answer gives 'unreachable' findings, not a traceback."""
    profile = profile or load_profile(inv)
    topo = inv.topology
    findings = []
    with (
        Flow.for_inventory(inv, profile) as flow,
        httpx.Client(base_url=topo.lb_url, timeout=settings.timeout_s) as client,
    ):
        target = Target(client, topo, settings, profile, flow)
        for check in CHECKS:
            try:
                findings.append(check(target))
            except httpx.HTTPError as exc:
                findings.append(Finding(check.__name__, False, f"unreachable: {type(exc).__name__} {exc}"))
            except (ValueError, LookupError, TypeError) as exc:
                findings.append(
                    Finding(check.__name__, False, f"unexpected answer: {type(exc).__name__} {exc}")
                )
    return findings
