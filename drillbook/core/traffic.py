"""Background traffic at a fixed arrival rate, for drills that need a service under use.

A canary judge with no traffic cannot judge, and a chaos drill must show what
users saw during the outage. Requests are issued on schedule (an open model:
request k is due at start + k / rps whether or not earlier ones finished) by a
pool of worker threads, each with a short timeout and no retries, and every
request is recorded with its timestamp, endpoint, status, latency and whether
the answer was correct (not only "not 5xx": a read returns what was written).

:class:`StepMix` makes the schedule's requests from a service profile's weighted
steps (``service_traffic``): each answer judged like a flow step (core/flow.py),
and every write the service acknowledged kept with its captured values, so a
drill can look each one up in the database afterwards.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from drillbook.core.flow import SQL_PARAM, Values, judge, needs, new_values, prepare
from drillbook.core.probes import percentile
from drillbook.core.profile import SqlCheck, Step, WeightedStep
from drillbook.core.sampling import SampleError, Sampler, Take


@dataclass(frozen=True)
class Request:
    """One request to send: what, where, and how to judge the answer."""

    endpoint: str  # a stable name for grouping: "GET /orders/${order_id}"
    method: str
    path: str
    json: Any = None
    expect: Callable[[httpx.Response], bool] | None = None
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    form: dict[str, str] | None = None
    content: str | None = None
    #: ``expect`` judges the status too (a step may expect a 404); else any status >= 400 fails.
    judges_status: bool = False


@dataclass(frozen=True)
class Outcome:
    t: float  # monotonic send time
    wall: float
    endpoint: str
    status: int | None
    latency_ms: float
    ok: bool
    error: str | None = None
    #: The server that answered, from ``Traffic.server_header`` (None: not asked or not sent).
    server: str | None = None
    #: The server's response time (ms) as the load balancer measured it, from
    #: ``Traffic.time_header``: the latency without this client's own queueing.
    server_ms: float | None = None


RequestSource = Callable[[int], Request]


class Background(Protocol):
    """What a drill needs of its background traffic: started, read while it runs, stopped.

    :class:`Traffic` (declared requests) is one; the user's locustfile run by
    drillbook.load is the other.
    """

    def start(self) -> Any: ...

    def snapshot(self) -> list[Outcome]: ...

    def stop(self) -> list[Outcome]: ...


@dataclass(frozen=True)
class Arrivals:
    """The traffic's clock: request k due at start + the sum of k gaps (Poisson or even), never skipped.

    An open model: a late request is sent at once (the users did not wait for the
    service), unlike a probe, which skips the slots it missed.
    """

    rps: float
    poisson: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def gap(self) -> float:
        return self.rng.expovariate(self.rps) if self.poisson else 1.0 / self.rps

    def first(self, start: float) -> float:
        return start + self.gap()

    def next(self, due: float, now: float) -> float:
        return due + self.gap()


@dataclass
class Traffic:
    """Send ``source(k)`` at ``rps`` requests per second to ``base_url`` until stopped.

    The schedule is a core/sampling.py sampler on an :class:`Arrivals` clock; each
    take hands one request to a worker pool and the workers record the outcomes.
    """

    base_url: str
    rps: float
    source: RequestSource
    timeout_s: float = 2.0
    workers: int = 32
    poisson: bool = True
    #: Response header naming the server that answered (e.g. HAProxy's X-Served-By), kept per request.
    server_header: str | None = None
    #: Response header with the server's response time in ms (e.g. HAProxy's %Tr), kept per request.
    time_header: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    _sampler: Sampler[Outcome] | None = field(default=None, init=False, repr=False)

    def start(self) -> Traffic:
        if self.rps <= 0:
            return self
        self._sampler = Sampler(
            "traffic",
            session=self._sending,
            clock=Arrivals(self.rps, self.poisson),
            join_timeout_s=self.timeout_s + 5,
            into=self.outcomes,  # one list: ``outcomes`` stays the public record
        )
        self._sampler.start()
        return self

    def stop(self) -> list[Outcome]:
        if self._sampler is not None:
            self._sampler.stop()
        return self.snapshot()

    def snapshot(self) -> list[Outcome]:
        return self._sampler.snapshot() if self._sampler is not None else list(self.outcomes)

    @property
    def errors(self) -> list[SampleError]:
        """Requests that could not even be scheduled (a request source that raised)."""
        return list(self._sampler.errors) if self._sampler is not None else []

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def _sending(self) -> Iterator[Take[Outcome]]:
        """Client and worker pool live as long as the schedule; closing waits for requests in flight.

        Requests still queued for a worker when the schedule stops are dropped, not sent: on a
        saturated machine the queue holds thousands, and sending them after the stop kept the
        process (and the load) alive for minutes after the drill ended.
        """
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        counter = itertools.count()
        with httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout_s,
            limits=limits,
            transport=httpx.HTTPTransport(retries=0, limits=limits),
            headers={"User-Agent": "drillbook-traffic"},
        ) as client:
            pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="traffic")
            try:

                def send_next() -> None:
                    pool.submit(self._send, client, self.source(next(counter)))

                yield send_next
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    def _send(self, client: httpx.Client, req: Request) -> None:
        wall, t0 = time.time(), time.monotonic()
        try:
            resp = client.request(
                req.method,
                req.path,
                json=req.json,
                headers=req.headers,
                params=req.params or None,
                data=req.form,
                content=req.content,
            )
            latency_ms = (time.monotonic() - t0) * 1000
            if req.judges_status and req.expect is not None:
                ok = req.expect(resp)
            else:
                ok = resp.status_code < 400 and (req.expect is None or req.expect(resp))
            server = resp.headers.get(self.server_header) if self.server_header else None
            server_ms = _float(resp.headers.get(self.time_header)) if self.time_header else None
            outcome = Outcome(
                t0, wall, req.endpoint, resp.status_code, latency_ms, ok, server=server, server_ms=server_ms
            )
        except httpx.HTTPError as exc:
            outcome = Outcome(
                t0, wall, req.endpoint, None, (time.monotonic() - t0) * 1000, False, type(exc).__name__
            )
        if self._sampler is not None:
            self._sampler.record(outcome)


@dataclass(frozen=True)
class TrafficStats:
    requests: int
    failed: int
    error_pct: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    by_endpoint: dict[str, dict[str, float]]


def summarize(
    outcomes: Sequence[Outcome], start: float | None = None, end: float | None = None
) -> TrafficStats:
    """Error share and latency percentiles of requests sent within [start, end] (monotonic)."""
    window = [o for o in outcomes if (start is None or o.t >= start) and (end is None or o.t <= end)]
    failed = sum(1 for o in window if not o.ok)
    lat = [o.latency_ms for o in window]
    by: dict[str, dict[str, float]] = {}
    for name in sorted({o.endpoint for o in window}):
        rows = [o for o in window if o.endpoint == name]
        bad = sum(1 for o in rows if not o.ok)
        by[name] = {
            "requests": len(rows),
            "failed": bad,
            "error_pct": round(100 * bad / len(rows), 3),
            "p95_ms": round(percentile([o.latency_ms for o in rows], 95) or 0.0, 2),
        }
    return TrafficStats(
        requests=len(window),
        failed=failed,
        error_pct=round(100 * failed / len(window), 3) if window else 0.0,
        p50_ms=_r(percentile(lat, 50)),
        p95_ms=_r(percentile(lat, 95)),
        p99_ms=_r(percentile(lat, 99)),
        by_endpoint=by,
    )


def _float(text: str | None) -> float | None:
    """A header's number; None when absent or not a number (HAProxy sends -1 when it has none)."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


@dataclass(frozen=True)
class Acknowledged:
    """A write the service acknowledged (its step passed), with the values it was sent and captured."""

    step: str
    values: dict[str, Any]
    #: How to look it up in the database afterwards (``service_traffic.verify_sql``).
    check: SqlCheck | None = None


class StepMix:
    """Weighted profile steps as a request source; acknowledged writes are kept for verification.

    A step that uses a captured value (``/orders/${order_id}``) reads back a write
    this traffic made and the service acknowledged; until one exists, only steps
    that need nothing are drawn.
    """

    def __init__(
        self,
        steps: Sequence[WeightedStep],
        *,
        auth: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        verify: SqlCheck | None = None,
        seed: int | None = None,
    ) -> None:
        if not steps:
            raise ValueError("a step mix needs at least one step")
        self.steps = list(steps)
        self.auth = dict(auth or {})
        self.values = new_values()
        self.values.update(values or {})
        self.verify = verify
        self._needs = [needs(s) for s in self.steps]
        if all(self._needs):
            raise ValueError(
                "every traffic step needs a captured value: at least one must need none "
                f"({', '.join(sorted(set().union(*self._needs)))})"
            )
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._acked: list[Acknowledged] = []

    def acknowledged(self) -> list[Acknowledged]:
        with self._lock:
            return list(self._acked)

    def __call__(self, k: int) -> Request:
        with self._lock:
            pool = list(self._acked)
        rows = [
            (s, n, [a for a in pool if n <= a.values.keys()])
            for s, n in zip(self.steps, self._needs, strict=True)
        ]
        rows = [r for r in rows if not r[1] or r[2]]
        step, need, sources = self._rng.choices(rows, weights=[r[0].weight for r in rows])[0]
        values = Values(self.values)
        if need:
            values.update(self._rng.choice(sources).values)
        prepared = prepare(step, values, self.auth)
        return Request(
            endpoint=f"{step.method} {step.path}",
            method=prepared.method,
            path=prepared.path,
            json=prepared.json,
            headers=prepared.headers,
            params=prepared.params,
            form=prepared.form,
            content=prepared.content,
            expect=self._expect(step, values),
            judges_status=True,
        )

    def _expect(self, step: Step, values: dict[str, Any]) -> Callable[[httpx.Response], bool]:
        def expect(resp: httpx.Response) -> bool:
            ok, _detail, captured = judge(step, resp, values)
            if ok and step.writes:
                sent = {k: v for k, v in values.items() if k != "uuid"}
                with self._lock:
                    self._acked.append(Acknowledged(step.name, {**sent, **captured}, self.verify))
            return ok

        return expect


def sql_verify_all(
    dsn: str, acknowledged: Sequence[Acknowledged], timeout_s: int = 5
) -> tuple[int | None, str]:
    """(missing, detail): every acknowledged write looked up with its check, on one connection.

    ``None`` when it could not tell (the database unreadable, or a write with no check).
    """
    if not acknowledged:
        return 0, "no acknowledged writes"
    if any(a.check is None for a in acknowledged):
        return None, "acknowledged writes have no verify_sql to look them up with"
    import psycopg

    missing: list[str] = []
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            for ack in acknowledged:
                assert ack.check is not None
                names = SQL_PARAM.findall(ack.check.query)
                params = {n: ack.values[n] for n in names if n in ack.values}
                if len(params) < len(set(names)):
                    return (
                        None,
                        f"{ack.step}: verify_sql needs {sorted(set(names) - set(params))}, not captured",
                    )
                row = conn.execute(ack.check.query, params).fetchone()  # type: ignore[arg-type]
                got = row[0] if row else None
                if got != ack.check.expect and str(got) != str(ack.check.expect):
                    missing.append(f"{ack.step} {params}")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"database not readable: {first}"
    found = len(acknowledged) - len(missing)
    detail = f"{found} of {len(acknowledged)} acknowledged writes found"
    if missing:
        detail += f"; missing: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
    return len(missing), detail


def constant(request: Request) -> RequestSource:
    """The same request every time (a health endpoint, say)."""
    return lambda _k: request


def merge(outcomes: Iterable[Iterable[Outcome]]) -> list[Outcome]:
    return sorted(itertools.chain.from_iterable(outcomes), key=lambda o: o.t)
