"""Which release an instance runs, per the profile (drillbook/core/identity.py), and the canary's
fallback when the profile names no identity: the rollout record, said so."""

from __future__ import annotations

import httpx
import pytest

from drillbook.canary.state import Fleet, InstanceState, Rollout, recorded_version
from drillbook.core import identity
from drillbook.core.profile import Identity


def _resp(status: int = 200, body: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, text=body, headers=headers or {})


@pytest.mark.parametrize(
    ("ident", "resp", "expected"),
    [
        (Identity(path="/version", json_pointer="/version"), _resp(body='{"version": "2.4.0"}'), "2.4.0"),
        (Identity(path="/version", json_pointer="/build/tag"), _resp(body='{"build": {"tag": 7}}'), "7"),
        (Identity(path="/VERSION"), _resp(body="3.1.0\n"), "3.1.0"),
        (Identity(header="X-Release", header_path="/livez"), _resp(headers={"X-Release": "1.0.0"}), "1.0.0"),
    ],
)
def test_each_way_of_naming_a_release(ident: Identity, resp: httpx.Response, expected: str) -> None:
    assert identity.from_response(ident, resp) == (expected, "")


def test_a_release_that_cannot_be_read_says_why_in_one_phrase() -> None:
    header = Identity(header="X-Release")
    assert identity.from_response(header, _resp(200)) == (None, "no X-Release header (200)")
    path = Identity(path="/version", json_pointer="/version")
    assert identity.from_response(path, _resp(404, "{}")) == (None, "/version 404")
    assert identity.from_response(path, _resp(body="not json")) == (None, "/version: no /version in the body")


def test_the_witness_names_how_this_service_is_asked() -> None:
    assert (
        identity.describe(Identity(header="X-Release", header_path="/livez"))
        == "X-Release header of GET /livez"
    )
    assert (
        identity.describe(Identity(path="/version", json_pointer="/version"))
        == "GET /version (JSON /version)"
    )
    assert identity.describe(Identity(command="cat VERSION")) == "`cat VERSION` on the host"
    assert identity.describe(None) == identity.RECORD and "rollout record" in identity.RECORD


def test_without_identity_the_record_says_what_runs_where() -> None:
    rollout = Rollout("2.0", "1.0", ["app-1"], phase="paused")
    assert recorded_version(rollout, "app-1") == "2.0" and recorded_version(rollout, "app-2") == "1.0"
    assert recorded_version(Rollout("2.0", "1.0", ["app-1"], phase="promoted"), "app-2") == "2.0"
    assert recorded_version(Rollout("2.0", "1.0", ["app-1"], phase="rolled_back"), "app-1") == "1.0"
    assert recorded_version(Rollout("2.0", "1.0", ["app-1"], phase="promoting"), "app-1") is None
    assert recorded_version(None, "app-1") is None


def _state(name: str, version: str | None) -> InstanceState:
    return InstanceState(
        name, name, f"http://{name}", False, version, True, lb_status="UP", weight=1, initial_weight=1
    )


def test_a_fleet_without_identity_says_where_its_versions_come_from() -> None:
    fleet = Fleet([_state("a", "1.0"), _state("b", "1.0")], version_source=identity.RECORD, identified=False)
    assert fleet.steady and fleet.version == "1.0"
    assert fleet.notes() == [
        f"versions from {identity.RECORD}: what drillbook deployed, not asked of the instances"
    ]
    assert fleet.to_dict()["version_source"] == identity.RECORD
    unknown = Fleet([_state("a", None)], version_source=identity.RECORD, identified=False)
    assert not unknown.steady
    assert unknown.problems()[0].startswith(
        "no service_identity in the profile and no finished rollout on record"
    )
    assert Fleet([_state("a", "1.0")]).notes() == []
