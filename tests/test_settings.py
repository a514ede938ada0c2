"""Core's one settings loader and one age formatter (no lab needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from drillbook.backup import load_settings as backup_settings
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.settings import given, load_settings
from drillbook.core.timefmt import age, age_s

DATA = Path(__file__).parent / "data" / "inventory"


class Knobs(BaseModel):
    """A model like a capability's settings: read from ``knob_*`` variables."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(default=30, gt=0)
    target_s: float | None = Field(default=5, gt=0)
    name: str = "x"


def test_inventory_values_then_overrides_validated_together() -> None:
    inv = load_inventory(DATA)
    assert load_settings(inv, Knobs, "knob_") == Knobs()
    s = load_settings(inv, Knobs, "knob_", {"window_s": "12", "target_s": None})
    assert s.window_s == 12.0 and s.target_s is None, "None is applied: it switches a setting off"
    assert load_settings(inv, Knobs, "knob_", given(window_s=None, name="y")) == Knobs(name="y")


@pytest.mark.parametrize(
    ("overrides", "labels", "message"),
    [
        ({"window_s": 0}, None, "knob_window_s=0: Input should be greater than 0"),
        ({"window_s": -1}, {"window_s": "--window"}, "--window=-1: Input should be greater than 0"),
        ({"window_s": "soon"}, None, "knob_window_s='soon': Input should be a valid number"),
        ({"widow_s": 3}, None, "knob_widow_s: no such setting in Knobs"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_option(
    overrides: dict[str, object], labels: dict[str, str] | None, message: str
) -> None:
    inv = load_inventory(DATA)
    with pytest.raises(ConfigError) as exc:
        load_settings(inv, Knobs, "knob_", overrides, labels=labels)
    text = str(exc.value)
    assert text.startswith(message) and "\n" not in text, text


def test_backup_settings_go_through_the_core_loader() -> None:
    inv = load_inventory(DATA)
    assert backup_settings(inv, rpo_query=None).rpo_query is None
    with pytest.raises(ConfigError, match=r"^backup_compression=12: Input should be less than or equal to 9"):
        backup_settings(inv, compression=12)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (7199, "120m"),
        (7200, "2h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (9 * 86400 + 3600, "9d"),
    ],
)
def test_age_switches_unit_at_twice_the_unit(seconds: float, text: str) -> None:
    assert age_s(seconds) == text
    now = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert age(now, now - timedelta(seconds=seconds)) == text
