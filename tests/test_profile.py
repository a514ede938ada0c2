"""The service profile (``service_*`` variables): validation a user can act on, placeholders, statuses.

No lab: small inventories in a temporary directory, and the lab's own profile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT
from drillbook.core.probes import Sample
from drillbook.core.profile import (
    Health,
    ServiceProfile,
    load_profile,
    placeholders,
    status_matches,
    substitute,
)
from drillbook.core.readiness import Readiness


def _inventory(tmp_path: Path, profile: str) -> Inventory:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    app:\n      hosts:\n        app-1:\n          ansible_connection: local\n"
    )
    (tmp_path / "group_vars" / "all" / "service.yml").write_text(profile)
    return Inventory(tmp_path)


def test_the_lab_profile_is_valid_and_complete() -> None:
    profile = load_profile(load_inventory(LAB_INVENTORY))
    assert profile.health.ready and profile.health.degraded is not None
    assert profile.missing("smoke", "marker", "identity", "metrics", "health.ready") == []


def test_an_empty_profile_is_valid_and_says_what_it_lacks(tmp_path: Path) -> None:
    profile = load_profile(_inventory(tmp_path, "service_name: shop\n"))
    assert profile.health.tcp, "no readiness path: readiness is a TCP connect"
    assert profile.missing("smoke", "marker", "identity", "health.ready") == [
        "service_smoke",
        "service_marker",
        "service_identity",
        "service_health.ready",
    ]


MISTAKES = """\
service_health:
  ready: healthz
  ready_status: ["6xx"]
  timeot_s: 3
service_identity: {}
service_uses_redis: maybe
service_smoke:
  - name: create
    method: POST
    path: /orders
    capture: {order_id: /id}
  - name: read
    path: /orders/${order_id}/${ordr_id}
"""


def test_every_mistake_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile(_inventory(tmp_path, MISTAKES))
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"inventory {tmp_path}: service_") for line in lines), lines
    text = "\n".join(lines)
    for needle in (
        "service_health.ready='healthz': a path starts with '/'",
        "service_health.ready_status[0]='6xx': a status (100-599) or a class of them ('2xx')",
        "service_health.timeot_s: no such setting (a typo?)",
        "service_identity: identity: give exactly one of path, header, command",
        "service_uses_redis='maybe': Input should be a valid boolean",
    ):
        assert needle in text, text
    assert len(lines) == 5, "one line per mistake: the union branches of one status are merged"


def test_an_undefined_placeholder_names_the_step_and_the_name(tmp_path: Path) -> None:
    profile = MISTAKES.split("service_smoke:")[1]
    with pytest.raises(ConfigError) as caught:
        load_profile(_inventory(tmp_path, "service_smoke:" + profile))
    assert str(caught.value) == (
        f"inventory {tmp_path}: service_smoke[1] ('read') uses ${{ordr_id}}, which no earlier step captures"
    )


def test_marker_verify_may_use_what_the_write_captured(tmp_path: Path) -> None:
    ok = """\
service_marker:
  write: {name: w, method: POST, path: /things, json: {v: "${uuid}"}, capture: {thing: /id}}
  verify: [{name: v, path: "/things/${thing}", sql: {query: "SELECT 1 WHERE %(thing)s IS NOT NULL"}}]
  cleanup: [{name: c, method: DELETE, path: "/things/${thing}", expect_status: [204, 404]}]
"""
    assert load_profile(_inventory(tmp_path, ok)).marker is not None
    bad = ok.replace('/things/${thing}", sql', '/things/${thng}", sql')
    with pytest.raises(ConfigError, match=r"service_marker.verify\[0\] \('v'\) uses \$\{thng\}"):
        load_profile(_inventory(tmp_path / "bad", bad))


def test_a_profile_mistake_is_one_line_on_the_command_line_not_a_traceback(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, "service_health: {ready: healthz}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "doctor", "-i", str(inv.path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: inventory {inv.path}: service_health.ready='healthz': a path starts with '/'"]
    assert "Traceback" not in proc.stderr


def test_placeholders_and_substitution_keep_types() -> None:
    assert placeholders("/orders/${order_id}?u=${uuid}") == {"order_id", "uuid"}
    body = {"id": "${n}", "label": "n=${n}", "tags": ["${t}"]}
    assert substitute(body, {"n": 42, "t": "x"}) == {"id": 42, "label": "n=42", "tags": ["x"]}
    with pytest.raises(KeyError, match="missing"):
        substitute("/a/${missing}", {})


@pytest.mark.parametrize(
    ("statuses", "status", "matches"),
    [
        (["2xx"], 200, True),
        (["2xx"], 204, True),
        (["2xx"], 301, False),
        ([200], 204, False),
        ([204, "3xx"], 302, True),
        (["5xx"], 503, True),
        (["2xx"], None, False),
    ],
)
def test_status_classes(statuses: list[int | str], status: int | None, matches: bool) -> None:
    assert status_matches(statuses, status) is matches  # type: ignore[arg-type]


def _sample(status: int | None, body: str | None = None, headers: dict[str, str] | None = None) -> Sample:
    return Sample(t=0.0, wall=0.0, status=status, latency_ms=1.0, body=body, headers=headers)


def test_not_ready_is_any_non_ready_answer_a_timeout_or_a_refusal() -> None:
    r = Readiness(Health(ready="/ready"))
    assert r.ready(_sample(200)) and r.ready(_sample(204))
    for answer in (_sample(503), _sample(500), _sample(404), _sample(None)):
        assert r.not_ready(answer)
    strict = Readiness(Health(ready="/ready", ready_status=[200]))
    assert strict.not_ready(_sample(204))


def test_readiness_without_a_path_is_a_tcp_connect() -> None:
    r = Readiness(Health())
    assert r.url("http://127.0.0.1:8080") == "tcp://127.0.0.1:8080"
    refused = r.check("http://127.0.0.1:1")  # nothing listens on port 1
    assert refused.connected is False and r.not_ready(refused)


@pytest.mark.parametrize(
    ("degraded", "sample", "is_degraded"),
    [
        ({"json_pointer": "/cache/ok", "equals": False}, _sample(200, '{"cache": {"ok": false}}'), True),
        ({"json_pointer": "/cache/ok", "equals": False}, _sample(200, '{"cache": {"ok": true}}'), False),
        ({"header": "X-Degraded"}, _sample(200, "", {"x-degraded": "redis"}), True),
        ({"header": "X-Degraded"}, _sample(200, "", {}), False),
        ({"status": 207}, _sample(207), True),
        ({"status": 207}, _sample(200), False),
    ],
)
def test_degraded_signal_json_header_or_status(
    degraded: dict[str, object], sample: Sample, is_degraded: bool
) -> None:
    r = Readiness(Health.model_validate({"ready": "/ready", "degraded": degraded}))
    assert r.degraded_serving(sample) is is_degraded
    assert r.serving(sample)


def test_a_profile_model_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        ServiceProfile.model_validate({"health": {"readyy": "/x"}})
