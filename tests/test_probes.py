"""Probes against a real HTTP server on loopback whose health the test flips."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drillbook.core.probes import Probe, ProbeLoop, ProbeSet, percentile, stays, wait_until
from drillbook.core.traffic import Request, Traffic, constant


class Flippable(ThreadingHTTPServer):
    healthy = True


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.server.healthy else 503  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Flippable]:
    srv = Flippable(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_probe_sees_flip_and_recovery(server: Flippable) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/health/ready"
    # wait for the first answer: on a busy machine the thread may take a while to get going
    loop = ProbeLoop(Probe("ready", url, interval_s=0.05, timeout_s=0.5)).start(wait_s=5)
    assert loop.samples, "no first sample within 5 s"
    time.sleep(0.3)
    flipped_at = time.monotonic()
    server.healthy = False
    time.sleep(0.3)
    back_at = time.monotonic()
    server.healthy = True
    time.sleep(0.3)
    samples = loop.stop()
    bad = loop.first_bad_after(flipped_at)
    good = loop.first_good_after(back_at)
    assert bad is not None and bad.status == 503
    assert good is not None and good.status == 200
    assert bad.t - flipped_at < 0.3 and good.t - back_at < 0.3
    # every answer that arrived before the flip was good (a request sent just before it may be answered after)
    answered_before = [s for s in samples if s.t + s.latency_ms / 1000 < flipped_at]
    assert answered_before and all(s.status == 200 for s in answered_before)
    assert stays(answered_before, start=0, end=flipped_at, good=True)
    # the sampling clock does not drift or burst: about 0.9 s / 0.05 s samples, never more
    assert 12 <= len(samples) <= 20
    assert all(s.t <= loop.snapshot()[-1].t for s in samples)


def test_refused_connection_is_a_bad_sample_not_an_exception() -> None:
    loop = ProbeLoop(Probe("dead", "http://127.0.0.1:9/", interval_s=0.05, timeout_s=0.2)).start(wait_s=5)
    time.sleep(0.2)
    samples = loop.stop()
    assert samples and all(s.status is None and s.error for s in samples)


def test_probe_set_and_wait_until(server: Flippable) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with ProbeSet([Probe("a", url, 0.05), Probe("b", url, 0.05)]) as probes:
        assert wait_until(probes.all_good_now, timeout_s=2) is not None
        server.healthy = False
        assert wait_until(lambda: not probes.all_good_now(), timeout_s=2) is not None
    assert wait_until(lambda: False, timeout_s=0.2, interval_s=0.05) is None


def test_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 50) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)


def test_traffic_keeps_its_rate_records_every_outcome_and_stops_cleanly(server: Flippable) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    traffic = Traffic(url, rps=50, source=constant(Request("GET /", "GET", "/")), poisson=False, workers=4)
    with traffic:
        assert wait_until(lambda: bool(traffic.snapshot()), timeout_s=5, interval_s=0.01) is not None
        time.sleep(0.4)
        server.healthy = False
        time.sleep(0.4)
    outcomes = traffic.snapshot()
    assert outcomes is not traffic.outcomes and outcomes == traffic.outcomes  # a copy of the public list
    # about 0.8 s at 50/s after the first answer: 40 due; never a burst beyond the schedule
    assert 15 <= len(outcomes) <= 50, len(outcomes)
    assert {o.status for o in outcomes} == {200, 503}
    assert [o.ok for o in outcomes if o.status == 503] == [False] * sum(o.status == 503 for o in outcomes)
    assert traffic.errors == []
    time.sleep(0.1)
    assert len(traffic.snapshot()) == len(outcomes), "no request after stop"


def test_traffic_at_zero_rps_sends_nothing() -> None:
    with Traffic("http://127.0.0.1:9", rps=0, source=constant(Request("GET /", "GET", "/"))) as traffic:
        time.sleep(0.05)
    assert traffic.snapshot() == []
