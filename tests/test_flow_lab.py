"""The flow engine (core/flow.py) against the real lab service: requests as data, judged.

What a user would check of their smoke flow: values captured by one step feed the
next, a SQL check proves the write in the database itself (bound parameters,
never spliced), a step whose input never came is skipped with the reason, a body
that is not JSON is a failed step and not a traceback, and auth headers come from
the environment through the inventory, or from a login step.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drillbook.core.flow import Flow
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import LAB_INVENTORY
from drillbook.core.profile import Auth, Login, SqlCheck, Step, load_profile

pytestmark = pytest.mark.lab


def _flow(inv: Inventory, **profile_update: Any) -> Flow:
    profile = load_profile(inv)
    return Flow.for_inventory(inv, profile.model_copy(update=profile_update) if profile_update else profile)


def _create(name: str = "flow-${run_id}", **kw: Any) -> Step:
    return Step(
        name="create",
        method="POST",
        path="/items",
        json={"name": name, "value": "v-${uuid}"},
        expect_status=[201],
        capture={"item_id": "/id", "value": "/value"},
        **kw,
    )


def _delete() -> Step:
    return Step(name="delete", method="DELETE", path="/items/${item_id}", expect_status=[204, 404])


def test_captures_feed_later_steps_and_sql_proves_the_write(
    lab: dict[str, Any], lab_inventory: Inventory
) -> None:
    # a name with a quote: bound as a parameter, not spliced into the SQL text
    sql = SqlCheck(query="SELECT count(*) FROM items WHERE id = %(item_id)s AND name = %(who)s", expect=1)
    steps = [
        _create(name="${who}", sql=sql),
        Step(name="read", path="/items/${item_id}", expect_json={"/value": "${value}", "/id": "${item_id}"}),
        _delete(),
        Step(name="gone", path="/items/${item_id}", expect_status=[404]),
    ]
    with _flow(lab_inventory) as flow:
        flow.values["who"] = "o'flow-test"
        results = flow.run(steps)
    assert [r.ok for r in results] == [True] * 4, [(r.name, r.detail) for r in results]
    create = results[0]
    assert create.status == 201 and isinstance(create.captured["item_id"], int)
    assert "sql: 1" in create.detail
    assert results[3].status == 404
    assert all(r.latency_ms > 0 for r in results)
    with psycopg.connect(lab["postgres_dsn"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM items WHERE id = %s", (create.captured["item_id"],)
        ).fetchone()
    assert row == (0,)  # the flow's own delete removed it


def test_sql_check_that_does_not_hold_fails_the_step(lab_inventory: Inventory) -> None:
    wrong = SqlCheck(query="SELECT count(*) FROM items WHERE id = %(item_id)s", expect=0)
    with _flow(lab_inventory) as flow:
        create, delete = flow.run([_create(sql=wrong), _delete()])
    assert not create.ok and create.status == 201 and "sql: got 1, expected 0" in create.detail
    assert delete.ok  # the capture was kept: cleanup still works


def test_a_failed_step_skips_the_steps_that_need_its_captures(lab_inventory: Inventory) -> None:
    steps = [
        Step(
            name="create",
            method="POST",
            path="/items",
            json={"nope": 1},
            expect_status=[201],
            capture={"item_id": "/id"},
        ),
        Step(name="read", path="/items/${item_id}"),
        Step(name="liveness", path="/health/live"),
    ]
    with _flow(lab_inventory) as flow:
        create, read, live = flow.run(steps)
    assert not create.ok and create.status == 422 and "expected 201" in create.detail
    assert not read.ok and read.skipped and read.status is None
    assert read.detail == "skipped: needs ${item_id} (from 'create')"
    assert live.ok  # independent steps still run
    outcome = read.outcome()
    assert outcome.detail == read.detail and outcome.value is None


def test_a_body_that_is_not_json_is_a_failed_step_not_a_traceback(lab_inventory: Inventory) -> None:
    steps = [
        Step(name="metrics as json", path="/metrics", expect_json={"/x": 1}),
        Step(name="capture from text", path="/metrics", capture={"x": "/x"}),
        Step(name="pointer absent", path="/health/live", capture={"x": "/no/such/field"}),
        Step(name="unreachable", path="/health/live", timeout_s=1),
    ]
    with _flow(lab_inventory) as flow:
        results = flow.run(steps[:3])
        dead = Flow(flow.profile, "http://127.0.0.1:9").run(steps[3:])
    assert [r.ok for r in results] == [False, False, False]
    assert "body is not JSON" in results[0].detail and "body is not JSON" in results[1].detail
    assert "capture x: no /no/such/field in the body" in results[2].detail
    assert not dead[0].ok and dead[0].status is None and "ConnectError" in dead[0].detail


def test_each_instance_steps_go_to_every_instance(lab_inventory: Inventory) -> None:
    with _flow(lab_inventory) as flow:
        results = flow.run([Step(name="ready", path="/health/ready", each_instance=True)])
    assert len(results) == len(lab_inventory.topology.app_instances) >= 2
    assert [r.name for r in results] == [f"ready ({i.name})" for i in lab_inventory.topology.app_instances]
    assert all(r.ok for r in results)


def test_auth_header_from_the_environment(
    lab: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header templated from the environment by the inventory reaches the service (which echoes it)."""
    inv_dir = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inv_dir)
    service = inv_dir / "group_vars" / "all" / "service.yml"
    text = service.read_text()
    assert "service_auth:\n  headers: {}" in text
    service.write_text(
        text.replace(
            "service_auth:\n  headers: {}",
            "service_auth:\n  headers:\n"
            "    X-Request-ID: \"{{ lookup('ansible.builtin.env', 'FLOW_TEST_TOKEN') }}\"",
        )
    )
    monkeypatch.setenv("FLOW_TEST_TOKEN", "token-from-env-42")
    inv = load_inventory(inv_dir)
    with Flow.for_inventory(inv) as flow:
        (echo,) = flow.run([Step(name="echo", path="/health/live", capture={"rid": "header:X-Request-ID"})])
    assert echo.ok and echo.captured["rid"] == "token-from-env-42"


def test_login_step_gives_the_header_every_request_carries(lab_inventory: Inventory) -> None:
    login = Login(
        step=Step(
            name="token", method="POST", path="/auth/token", json={"username": "flow", "password": "flow"}
        ),
        token="/token",
        header="X-Request-ID",
        format="login-${token}",
    )
    with _flow(lab_inventory, auth=Auth(login=login)) as flow:
        first, echo = flow.run(
            [Step(name="echo", path="/health/live", capture={"rid": "header:X-Request-ID"})]
        )
    assert first.name == "login: token" and first.ok, first.detail
    assert echo.ok and echo.captured["rid"] == f"login-{first.captured['token']}"


def test_a_failed_login_skips_every_step(lab_inventory: Inventory) -> None:
    login = Login(step=Step(name="token", method="POST", path="/auth/token", json={}), token="/token")
    with _flow(lab_inventory, auth=Auth(login=login)) as flow:
        first, step = flow.run([Step(name="live", path="/health/live")])
    assert not first.ok and first.status == 422
    assert step.skipped and step.detail == "skipped: needs ${token} (from 'token')"


def value_starts_with_v(resp: Any, values: dict[str, Any]) -> str | None:
    """A hook (``test_flow_lab:value_starts_with_v``): what data cannot say, said in Python."""
    value = resp.json().get("value", "")
    return None if value.startswith("v-") else f"value {value!r} does not start with v-"


def test_hook_judges_what_data_cannot_say(lab_inventory: Inventory) -> None:
    steps = [
        _create(),
        Step(name="hooked", path="/items/${item_id}", hook="test_flow_lab:value_starts_with_v"),
        Step(name="hook fails", path="/health/live", hook="test_flow_lab:value_starts_with_v"),
        Step(name="hook missing", path="/health/live", hook="test_flow_lab:no_such_hook"),
        _delete(),
    ]
    with _flow(lab_inventory) as flow:
        create, hooked, fails, missing, delete = flow.run(steps)
    assert create.ok and delete.ok
    assert hooked.ok and "hook test_flow_lab:value_starts_with_v: ok" in hooked.detail
    assert not fails.ok and "does not start with v-" in fails.detail
    assert not missing.ok and "AttributeError" in missing.detail
