"""Probes against a real HTTP server on loopback whose health the test flips."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drillbook.core.probes import Probe, ProbeLoop, ProbeSet, percentile, stays, wait_until


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
    loop = ProbeLoop(Probe("ready", url, interval_s=0.05, timeout_s=0.5)).start()
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
    assert stays(samples, start=0, end=flipped_at - 0.01, good=True)
    # the sampling clock does not drift: about 0.9 s / 0.05 s samples
    assert 12 <= len(samples) <= 20


def test_refused_connection_is_a_bad_sample_not_an_exception() -> None:
    loop = ProbeLoop(Probe("dead", "http://127.0.0.1:9/", interval_s=0.05, timeout_s=0.2)).start()
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
