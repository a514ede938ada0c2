"""The flow engine's pure parts: what a step needs, how answers are judged, how traffic draws steps."""

from __future__ import annotations

import httpx
import pytest

from drillbook.core.flow import judge, needs, new_values, prepare
from drillbook.core.profile import SqlCheck, Step, WeightedStep
from drillbook.core.traffic import StepMix, sql_verify_all

WRITE = WeightedStep(
    name="write",
    method="POST",
    path="/orders",
    json={"ref": "${uuid}", "run": "${run_id}"},
    expect_status=[201],
    capture={"order_id": "/id"},
)
READ = WeightedStep(name="read", path="/orders/${order_id}", weight=5)


def test_needs_are_the_captures_from_earlier_steps() -> None:
    assert needs(WRITE) == set()
    assert needs(READ) == {"order_id"}
    own = Step(
        name="s",
        method="POST",
        path="/x/${a}",
        capture={"b": "/b"},
        sql=SqlCheck(query="SELECT 1 WHERE %(b)s = %(c)s"),
    )
    assert needs(own) == {"a", "c"}  # its own capture b may be checked, not c


def test_uuid_is_fresh_at_each_use_and_run_id_fixed() -> None:
    values = new_values("r1")
    a, b = prepare(WRITE, values).json["ref"], prepare(WRITE, values).json["ref"]
    assert a != b and prepare(WRITE, values).json["run"] == "r1"
    with pytest.raises(KeyError):
        prepare(READ, values)


def test_judge_never_raises_on_odd_bodies() -> None:
    ok, detail, _ = judge(WRITE, httpx.Response(201, text="<html>"), {})
    assert not ok and "body is not JSON" in detail
    ok, detail, captured = judge(WRITE, httpx.Response(201, json=[1, 2]), {})
    assert not ok and "capture order_id" in detail and captured == {}
    ok, detail, _ = judge(WRITE, httpx.Response(500, text="boom"), {})
    assert not ok and detail.startswith("HTTP 500, expected 201")
    ok, _, captured = judge(WRITE, httpx.Response(201, json={"id": 7}), {})
    assert ok and captured == {"order_id": 7}


def test_traffic_reads_back_only_what_was_acknowledged() -> None:
    mix = StepMix(
        [WRITE, READ], verify=SqlCheck(query="SELECT count(*) FROM t WHERE id = %(order_id)s"), seed=1
    )
    first = [mix(k) for k in range(20)]
    assert {r.endpoint for r in first} == {"POST /orders"}  # nothing to read back yet
    assert first[0].expect is not None and first[0].expect(httpx.Response(201, json={"id": 42}))
    assert not first[1].expect(httpx.Response(503, json={}))  # type: ignore[misc]
    (ack,) = mix.acknowledged()
    assert ack.values["order_id"] == 42 and ack.check is not None
    later = [mix(k) for k in range(50)]
    reads = [r for r in later if r.endpoint == "GET /orders/${order_id}"]
    assert reads and {r.path for r in reads} == {"/orders/42"}


def test_traffic_refuses_steps_that_all_need_captures() -> None:
    with pytest.raises(ValueError, match="at least one must need none"):
        StepMix([READ])


def test_no_acknowledged_writes_means_nothing_lost() -> None:
    assert sql_verify_all("postgresql://nowhere", []) == (0, "no acknowledged writes")
