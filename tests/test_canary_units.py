"""Canary pieces that need no lab: the rollout record, fleet problems, plans, options, PromQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drillbook.canary.drill import load_settings
from drillbook.canary.fleet import plan
from drillbook.canary.state import Fleet, InstanceState, Rollout, RolloutStore
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory

INVENTORY = Path(__file__).parent / "data" / "inventory"


def test_rollout_record_round_trip_and_history(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "rollout.json")
    assert store.load() is None
    rollout = Rollout(version="2.0.0", previous="1.0.0", canary_hosts=["lab-app-1"])
    store.save(rollout, "canary", "deploy.canary")
    store.save(rollout, "paused", "analysis passed")
    again = store.load()
    assert again is not None and again.phase == "paused" and again.unfinished
    assert [h["phase"] for h in again.history] == ["canary", "paused"]
    store.save(again, "promoted")
    assert not (store.load() or again).unfinished
    (tmp_path / "rollout.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        store.load()


def inst(name: str, version: str | None, **kw: object) -> InstanceState:
    base: dict[str, object] = {
        "host": f"h-{name}",
        "instance": name,
        "url": "http://x",
        "canary": name == "app-1",
        "version": version,
        "ready": True,
        "weight": 100,
        "initial_weight": 100,
        "lb_status": "UP",
    }
    base.update(kw)
    return InstanceState(**base)  # type: ignore[arg-type]


def test_fleet_steady_and_its_problems() -> None:
    steady = Fleet([inst("app-1", "1.0.0"), inst("app-2", "1.0.0")])
    assert steady.steady and steady.version == "1.0.0" and steady.problems() == []
    mixed = Fleet(
        [
            inst("app-1", "2.0.0", weight=11),
            inst("app-2", "1.0.0", ready=False, detail="/health/ready 503", lb_status="DOWN"),
        ]
    )
    assert not mixed.steady and mixed.version is None
    problems = "; ".join(mixed.problems())
    for phrase in ("versions differ", "app-2 not ready", "app-1 weight 11 (configured 100)", "app-2 is DOWN"):
        assert phrase in problems
    assert json.dumps(mixed.to_dict())  # deploy.status --json


def test_plan_needs_a_baseline() -> None:
    with pytest.raises(ConfigError, match="needs a baseline"):
        plan(load_inventory(INVENTORY))


def test_command_line_overrides_are_validated() -> None:
    inv = load_inventory(INVENTORY)
    settings = load_settings(inv, window_s=3, steps="10,50")
    assert settings.window_s == 3 and settings.steps == [10, 50]
    with pytest.raises(ConfigError, match="--steps"):
        load_settings(inv, steps="five")
    with pytest.raises(ConfigError, match="steps"):
        load_settings(inv, steps="50,10")
    with pytest.raises(ConfigError, match="--window"):
        load_settings(inv, window_s=-1)
