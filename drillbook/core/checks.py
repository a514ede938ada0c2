"""A drill's checks, declared as data and evaluated in one place.

A drill does not judge itself. It declares what it checks::

    checks = (
        at_most("readiness_flip_s", limit_from="readiness_flip_limit_s"),
        at_most("acknowledged_writes_lost", limit=0),
        is_true("data_intact", detail_from="data_detail"),
    )

and its ``observe`` phase returns a typed measurement record (a :class:`Measurements`
model). The lifecycle's ``verify`` phase (core/drill.py) evaluates every declared
check against that record and the drill's settings and writes each result into the
journal with its value, its *numeric* limit, the comparison and where the limit came
from. Nothing else decides a verdict, so a reader of the drill's class sees every way
it can fail, and a check cannot read a measurement the record does not declare
(:func:`validate_specs` fails at import time, when the drill class is defined).

Why data and not code: the checklist, the docs and the report can list a drill's
checks without running it; limits always appear as numbers in the journal; and a
check that silently never ran is impossible (a missing value fails, naming itself).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drillbook.core.journal import Check

Comparison = Literal["<=", ">=", "==", "is true", "each ok"]


class Measurements(BaseModel):
    """Base of every drill's measurement record: what ``observe`` returns.

    Declare each figure as a field; give it its outside witness with :func:`witnessed`
    so the journal names who else can confirm it. ``None`` means "not measured", and a
    check on a value that is ``None`` fails with that reason.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def witnesses(self) -> dict[str, str]:
        """Field name -> witness, for the fields that declare one."""
        found: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("witness"), str):
                found[name] = str(extra["witness"])
        return found


def witnessed(witness: str, default: Any = None) -> Any:
    """A measurement field whose value an outside observer can confirm (probe, HAProxy stats, SQL)."""
    return Field(default=default, json_schema_extra={"witness": witness})


class Outcome(BaseModel):
    """One judged step of a drill whose checks are a list (smoke steps, audit findings)."""

    name: str
    ok: bool
    value: Any = None
    expected: Any = None
    detail: str = ""


@dataclass(frozen=True)
class CheckSpec:
    """One declared check: ``measurement`` compared with a limit.

    The limit is either a constant (``limit``) or a field of the drill's settings
    (``limit_from``); a settings field that is ``None`` means the user turned the check
    off, and the check is left out of the journal. ``detail_from`` names a measurement
    field whose text explains the value (e.g. which instance answered what).
    ``compare="each ok"`` reads a list of :class:`Outcome` and records one check per item.
    """

    name: str
    measurement: str
    compare: Comparison
    limit: float | int | bool | None = None
    limit_from: str | None = None
    detail_from: str | None = None

    def limit_value(self, settings: BaseModel | None) -> Any:
        """The numeric limit in force: the constant, or the settings field it names."""
        if self.limit_from is None:
            return self.limit
        if settings is None or not hasattr(settings, self.limit_from):
            raise TypeError(f"check {self.name}: the drill's settings have no field {self.limit_from!r}")
        return getattr(settings, self.limit_from)


def at_most(
    measurement: str,
    *,
    limit: float | None = None,
    limit_from: str | None = None,
    name: str | None = None,
    detail_from: str | None = None,
) -> CheckSpec:
    """``measurement <= limit`` (a latency, a duration, a count of lost writes)."""
    return CheckSpec(name or measurement, measurement, "<=", limit, limit_from, detail_from)


def at_least(
    measurement: str,
    *,
    limit: float | None = None,
    limit_from: str | None = None,
    name: str | None = None,
    detail_from: str | None = None,
) -> CheckSpec:
    """``measurement >= limit`` (a rate held, a share of successful requests)."""
    return CheckSpec(name or measurement, measurement, ">=", limit, limit_from, detail_from)


def equals(
    measurement: str, *, limit: float | int | bool, name: str | None = None, detail_from: str | None = None
) -> CheckSpec:
    """``measurement == limit`` (an exact count)."""
    return CheckSpec(name or measurement, measurement, "==", limit, None, detail_from)


def is_true(measurement: str, *, name: str | None = None, detail_from: str | None = None) -> CheckSpec:
    """A yes/no finding that must be yes (data intact, instance back in rotation)."""
    return CheckSpec(name or measurement, measurement, "is true", True, None, detail_from)


def each_ok(measurement: str) -> CheckSpec:
    """Every :class:`Outcome` in a list must be ok; each becomes a check of its own name."""
    return CheckSpec(measurement, measurement, "each ok")


def validate_specs(specs: Iterable[CheckSpec], record: type[BaseModel], where: str) -> None:
    """Refuse a check that reads a field the measurement record does not declare."""
    fields = set(record.model_fields)
    for spec in specs:
        for field in (spec.measurement, spec.detail_from):
            if field is not None and field not in fields:
                raise TypeError(f"{where}: check {spec.name!r} reads {field!r}, not in {record.__name__}")


def evaluate(specs: Sequence[CheckSpec], measured: BaseModel, settings: BaseModel | None) -> list[Check]:
    """Every declared check against the record; the only place a comparison is made."""
    checks: list[Check] = []
    for spec in specs:
        value = getattr(measured, spec.measurement)
        detail = str(getattr(measured, spec.detail_from) or "") if spec.detail_from else ""
        if spec.compare == "each ok":
            checks.extend(_outcome_check(o) for o in value or [])
            continue
        limit = spec.limit_value(settings)
        if limit is None:
            continue  # the user switched this check off
        ok = _compare(spec.compare, value, limit)
        if value is None:
            detail = "; ".join(d for d in ("not measured", detail) if d)
        checks.append(
            Check(
                name=spec.name,
                value=value,
                limit=limit,
                ok=ok,
                detail=detail,
                op=spec.compare,
                limit_from=spec.limit_from or "",
            )
        )
    return checks


def _outcome_check(outcome: Outcome) -> Check:
    return Check(
        name=outcome.name,
        value=outcome.value,
        limit=outcome.expected,
        ok=outcome.ok,
        detail=outcome.detail,
        op="==",
    )


def _compare(op: Comparison, value: Any, limit: Any) -> bool:
    if value is None:
        return False
    if op == "is true":
        return value is True
    if op == "==":
        return bool(value == limit)
    if isinstance(value, float) and math.isnan(value):
        return False
    if op == "<=":
        return bool(value <= limit)
    return bool(value >= limit)
