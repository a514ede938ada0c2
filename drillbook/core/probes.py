"""HTTP probes sampled on a clock, and the questions drills ask of them.

A probe loop samples one URL every ``interval_s`` on a fixed schedule (no drift:
sample k is due at start + k x interval; the loop is core/sampling.py's), records
status and latency with both a monotonic and a wall-clock timestamp, and answers "when did it first go bad
after t, and when good again". Each request has a short timeout and no retries:
a retry would hide exactly the outage a drill is trying to see.

A ``tcp://host:port`` URL is a TCP connect instead of a request: the readiness of a
service whose profile gives no readiness path (core/readiness.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from drillbook.core.sampling import Every, Sampler, Take


@dataclass(frozen=True)
class Sample:
    """One probe request: when (monotonic and wall), what status (None = no answer), how long."""

    t: float
    wall: float
    status: int | None
    latency_ms: float
    error: str | None = None
    body: str | None = None
    #: Response headers (lower-case names), kept with the body.
    headers: dict[str, str] | None = None
    #: A TCP probe's answer: True connected, False not; None for an HTTP probe.
    connected: bool | None = None

    @property
    def ok(self) -> bool:
        """A TCP probe: connected. An HTTP probe: a 2xx answer (redirects and errors are not ok)."""
        if self.connected is not None:
            return self.connected
        return self.status is not None and 200 <= self.status < 300

    @property
    def answer(self) -> str:
        """What the probe got, in one word: ``200``, ``connected``, ``ConnectError``."""
        if self.connected is not None:
            return "connected" if self.connected else (self.error or "refused")
        return str(self.status) if self.status is not None else (self.error or "none")


Judge = Callable[[Sample], bool]


def status_ok(sample: Sample) -> bool:
    """The default :data:`Judge`; a probe with readiness rules passes its own judge instead."""
    return sample.ok


@dataclass
class Probe:
    """What to sample and how: URL, interval, timeout, and what counts as good."""

    name: str
    url: str
    interval_s: float = 0.1
    timeout_s: float = 1.0
    judge: Judge = status_ok
    keep_body: bool = False


def tcp_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``tcp://host:port`` probe URL, None for an HTTP one."""
    if not url.startswith("tcp://"):
        return None
    host, _, port = url[len("tcp://") :].rstrip("/").rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _connect(probe: Probe, address: tuple[str, int]) -> Sample:
    wall, t0 = time.time(), time.monotonic()
    try:
        with socket.create_connection(address, timeout=probe.timeout_s):
            connected, error = True, None
    except OSError as exc:
        connected, error = False, type(exc).__name__
    latency = (time.monotonic() - t0) * 1000
    return Sample(t=t0, wall=wall, status=None, latency_ms=latency, error=error, connected=connected)


def sample_once(client: httpx.Client, probe: Probe) -> Sample:
    """One request (or TCP connect); never raises, a transport error is a sample with status None."""
    address = tcp_address(probe.url)
    if address is not None:
        return _connect(probe, address)
    wall, t0 = time.time(), time.monotonic()
    try:
        resp = client.get(probe.url, timeout=probe.timeout_s)
        return Sample(
            t=t0,
            wall=wall,
            status=resp.status_code,
            latency_ms=(time.monotonic() - t0) * 1000,
            body=resp.text[:2000] if probe.keep_body else None,
            headers={k.lower(): v for k, v in resp.headers.items()} if probe.keep_body else None,
        )
    except httpx.HTTPError as exc:
        return Sample(
            t=t0,
            wall=wall,
            status=None,
            latency_ms=(time.monotonic() - t0) * 1000,
            error=type(exc).__name__,
        )


class ProbeLoop(Sampler[Sample]):
    """One probe sampled in the background (core/sampling.py) with its own HTTP client.

    The client lives in the sampling thread and has no retries; a slow answer skips
    the slots it overran instead of bursting.
    """

    def __init__(self, probe: Probe) -> None:
        super().__init__(
            f"probe-{probe.name}",
            session=self._probing,
            clock=Every(probe.interval_s),
            join_timeout_s=probe.timeout_s + 2,
        )
        self.probe = probe

    @contextmanager
    def _probing(self) -> Iterator[Take[Sample]]:
        transport = httpx.HTTPTransport(retries=0)
        with httpx.Client(transport=transport, headers={"User-Agent": "drillbook-probe"}) as client:
            yield lambda: sample_once(client, self.probe)

    # -- questions ---------------------------------------------------------------
    def first_bad_after(self, t: float) -> Sample | None:
        """The first sample at or after ``t`` (monotonic) that the probe's judge rejects; None if none yet."""
        return self.first(after=t, where=lambda s: not self.probe.judge(s))

    def first_good_after(self, t: float) -> Sample | None:
        """The first sample at or after ``t`` (monotonic) that the probe's judge accepts; None if none yet."""
        return self.first(after=t, where=self.probe.judge)


def first_where(
    samples: Iterable[Sample], *, after: float, good: bool, judge: Judge = status_ok
) -> Sample | None:
    """The first sample taken at or after ``after`` (monotonic) that is good (or bad)."""
    for s in list(samples):
        if s.t >= after and judge(s) == good:
            return s
    return None


def stays(
    samples: Iterable[Sample], *, start: float, end: float, good: bool, judge: Judge = status_ok
) -> bool:
    """True when every sample in [start, end] is good (or bad); vacuously false with no samples."""
    window = [s for s in samples if start <= s.t <= end]
    return bool(window) and all(judge(s) == good for s in window)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class ProbeSet:
    """Several probe loops started and stopped together (one per app instance, say)."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        self.loops = {p.name: ProbeLoop(p) for p in probes}

    def __enter__(self) -> ProbeSet:
        for loop in self.loops.values():
            loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every loop; samples stay readable afterwards."""
        for loop in self.loops.values():
            loop.stop()

    def __getitem__(self, name: str) -> ProbeLoop:
        return self.loops[name]

    def all_good_now(self) -> bool:
        """True when every loop's latest sample passes its judge; a loop with no sample yet is not good."""
        return all(
            (latest := loop.latest()) is not None and loop.probe.judge(latest) for loop in self.loops.values()
        )


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float | None:
    """Poll ``predicate`` until true; return the seconds it took, or None on timeout."""
    t0 = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout_s:
            return None
        time.sleep(interval_s)


def check_url(url: str, timeout_s: float = 2.0) -> Sample:
    """A single probe of ``url`` (steady-state checks, lab status); ``tcp://host:port`` connects."""
    with httpx.Client(transport=httpx.HTTPTransport(retries=0)) as client:
        return sample_once(client, Probe(name=url, url=url, timeout_s=timeout_s, keep_body=True))
