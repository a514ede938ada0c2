"""Traffic shifting: weight arithmetic, and the runtime API calls against a fake admin socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drillbook.canary.watch import ServerWatch
from drillbook.canary.weights import MAX_WEIGHT, Weights, achieved, load_ratio, split, split_control
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.haproxy import HAProxy


@pytest.mark.parametrize("percent", [1, 5, 25, 50, 75, 90, 99])
def test_split_gives_the_canary_its_share(percent: float) -> None:
    c, b = split(percent / 100, [100], [100, 100])
    assert all(0 <= w <= MAX_WEIGHT for w in c + b)
    assert achieved(c, b) == pytest.approx(percent / 100, abs=0.006)


def test_split_keeps_the_baseline_while_it_can() -> None:
    assert split(0.05, [100], [100, 100]) == ([11], [100, 100])
    assert split(0.5, [100], [100, 100]) == ([200], [100, 100])
    c, b = split(0.9, [100], [100, 100])  # the canary would need 1800 > 256: baseline shrinks
    assert c == [256] and b == [14, 14]
    # 100 %: the baseline stays at 1, so HAProxy has somewhere to go if the canary falls over.
    assert split(1.0, [100], [100, 100]) == ([256], [1, 1])
    assert achieved(*split(1.0, [100], [100, 100])) == pytest.approx(0.992, abs=0.001)
    assert split(0.0, [100], [100, 100]) == ([0], [100, 100])
    assert split(0.25, [0, 100], [100]) == ([1, 33], [100])  # a canary configured at 0 still counts
    with pytest.raises(ValueError):
        split(1.5, [100], [100])


def test_load_ratio_per_server() -> None:
    """Where a canary server takes more than a baseline server, latency is not comparable."""
    ratios = {p: load_ratio(*split(p / 100, [100], [100, 100])) for p in (5, 25, 50, 100)}
    assert ratios[5] == pytest.approx(0.11) and ratios[25] == pytest.approx(0.67)
    assert ratios[50] == pytest.approx(2.0) and ratios[100] == 256
    assert load_ratio([100], [0, 0]) == float("inf")


class FakeHAProxy:
    """Just enough of HAProxy's runtime API: get/set weight, set server state, show stat."""

    HEADER = (
        "# pxname,svname,stot,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,weight,status,"
        "check_status,lastchg,req_tot"
    )

    def __init__(self, path: Path, servers: dict[str, int]) -> None:
        self.path = path
        self.initial = dict(servers)
        self.weights = dict(servers)
        self.states = {s: "UP" for s in servers}
        self.responses = {s: 0 for s in servers}
        self.checks = {s: "L7OK" for s in servers}
        self.commands: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                cmd = conn.recv(4096).decode().strip()
                self.commands.append(cmd)
                conn.sendall(self.answer(cmd).encode())

    def answer(self, cmd: str) -> str:
        words = cmd.split()
        if cmd == "show stat":
            rows = [self.HEADER]
            for s, w in self.weights.items():
                n = self.responses[s]
                rows.append(f"app,{s},{n},0,{n},0,0,0,{w},{self.states[s]},{self.checks[s]},5")
            rows.append("app,BACKEND,0,0,0,0,0,2,300,UP,,5,7")
            return "\n".join(rows) + "\n\n"
        name = words[2].split("/")[1] if len(words) > 2 else ""
        if name not in self.weights:
            return "No such server.\n"
        if words[:2] == ["get", "weight"]:
            return f"{self.weights[name]} (initial {self.initial[name]})\n"
        if words[:2] == ["set", "weight"]:
            self.weights[name] = int(words[3])
            return "\n"
        if words[:2] == ["set", "server"] and words[3] == "state":
            self.states[name] = {"ready": "UP", "drain": "DRAIN", "maint": "MAINT"}[words[4]]
            return "\n"
        return "Unknown command.\n"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def fake(tmp_path: Path) -> Iterator[FakeHAProxy]:
    haproxy = FakeHAProxy(tmp_path / "admin.sock", {"app-1": 100, "app-2": 100, "app-3": 100})
    yield haproxy
    haproxy.close()


def test_weights_shift_off_and_restore(fake: FakeHAProxy) -> None:
    w = Weights(HAProxy(str(fake.path)), "app", ["app-1"], ["app-2", "app-3"])
    assert w.set_share(5) == pytest.approx(5.21, abs=0.01)
    assert fake.weights == {"app-1": 11, "app-2": 100, "app-3": 100}
    assert [d.server for d in w.drifted()] == ["app-1"]
    w.set_share(100)
    assert fake.weights == {"app-1": 256, "app-2": 1, "app-3": 1}
    w.canary_off()
    assert fake.weights == {"app-1": 0, "app-2": 100, "app-3": 100}
    w.restore()
    assert fake.weights == fake.initial and not w.drifted()
    assert w.shares() == {"app-1": 33.33, "app-2": 33.33, "app-3": 33.33}


def test_weights_refuse_unknown_servers_and_missing_socket(fake: FakeHAProxy, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such server"):
        Weights(HAProxy(str(fake.path)), "app", ["app-9"], ["app-2"]).set_share(5)
    with pytest.raises(TargetUnreachable, match="admin socket"):
        Weights(HAProxy(str(tmp_path / "missing.sock")), "app", ["app-1"], ["app-2"]).canary_off()
    with pytest.raises(ConfigError, match="both canary and baseline"):
        Weights(HAProxy(str(fake.path)), "app", ["app-1"], ["app-1"])


def test_watch_finds_the_first_canary_request_and_down_servers(fake: FakeHAProxy) -> None:
    watch = ServerWatch(str(fake.path), "app", ["app-1"], ["app-2", "app-3"])
    first = watch.sample()
    second = watch.sample()
    fake.responses["app-1"] = 3
    third = watch.sample()
    assert first.error is None and second.error is None and third.error is None
    # The first response came after the second sample at the earliest.
    assert watch.first_canary_request(first.t) == second.t
    assert watch.canary_down() == []
    fake.states["app-1"] = "DOWN"
    fake.checks["app-1"] = "L7STS"
    watch.sample()
    r = watch.readiness()
    assert r.canary_down == ["app-1 DOWN (L7STS)"] and r.baseline_down == [] and not r.timeouts_only


def test_watch_tells_a_slow_health_check_and_a_shared_outage_apart(fake: FakeHAProxy) -> None:
    """Readiness canary against baseline: a timeout under load, or everyone down, is not the release."""
    watch = ServerWatch(str(fake.path), "app", ["app-1"], ["app-2", "app-3"])
    fake.states["app-1"], fake.checks["app-1"] = "DOWN", "* L7TOUT"
    watch.sample()
    assert watch.readiness().timeouts_only
    fake.states["app-2"], fake.checks["app-2"] = "DOWN 1/2", "L4CON"
    watch.sample()
    r = watch.readiness()
    assert r.canary_down == ["app-1 DOWN (L7TOUT)"] and r.baseline_down == ["app-2 DOWN 1/2 (L4CON)"]
    fake.states["app-2"], fake.checks["app-2"] = "UP", "L7OK"
    fake.states["app-1"], fake.checks["app-1"] = "DOWN 1/2", "L7OK"  # rising back after timeouts
    watch.sample()
    assert watch.readiness().timeouts_only


def test_control_takes_the_canary_weight_where_the_rest_can_carry_it(fake: FakeHAProxy) -> None:
    """Kayenta's baseline of the canary's size: app-2 at app-1's weight, app-3 carries the rest."""
    assert split_control(0.05, [100], [100], [100]) == ([14], [14], [256])
    assert split_control(0.25, [100], [100], [100]) == ([100], [100], [200])
    assert split_control(0.5, [100], [100], [100]) is None  # the rest would carry less than the canary
    w = Weights(HAProxy(str(fake.path)), "app", ["app-1"], ["app-2", "app-3"])
    assert w.control == ["app-2"]
    assert w.set_share(25, control=True) == pytest.approx(25.0)
    assert fake.weights == {"app-1": 100, "app-2": 100, "app-3": 200}
    assert w.load_ratio(25, control=True) == pytest.approx(100 / 150)
    assert w.set_share(50, control=True) == pytest.approx(50.0)  # no control fits: the plain split
    assert fake.weights == {"app-1": 200, "app-2": 100, "app-3": 100}
    assert Weights(HAProxy(str(fake.path)), "app", ["app-1"], ["app-2"]).control == []


def test_backend_totals_read_the_backend_row(fake: FakeHAProxy) -> None:
    assert HAProxy(str(fake.path)).backend_totals("app") == (7, 2)
