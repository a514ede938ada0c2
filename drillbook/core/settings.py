"""One way to read a capability's settings: inventory variables, then overrides, validated together.

Every capability keeps its settings as a pydantic model whose field ``x`` is the
inventory variable ``<prefix>x`` (``backup_rto_s``, ``load_sla_p95_ms``). Tests and
command-line options then override a few fields for one run. Before this module
each capability merged the two its own way, and a bad override was, depending on
which one, a one-line error, a pydantic traceback, or silently ignored. Here:

* the inventory's values are validated first, so a bad variable is named as the
  inventory variable (``inventory lab: variable backup_jobs=0: ...``);
* overrides are applied as given (``None`` included: it switches an optional
  setting off) and validated with the rest, so a bad one is named as the option
  the user typed (``--window``) or, without a label, as the variable it
  overrides (``backup_jobs``);
* an override naming no field of the model is refused, never dropped.

A command-line layer passes only the options the user gave: :func:`given` drops
the ``None`` of options left unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory

M = TypeVar("M", bound=BaseModel)


def load_settings(
    inv: Inventory,
    model: type[M],
    prefix: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> M:
    """``<prefix>*`` inventory variables validated into ``model``, with ``overrides`` on top.

    ``labels`` maps a field to what the user typed for it (``{"window_s": "--window"}``),
    so an error names the option rather than the field. Raises :class:`ConfigError`,
    one line, for a bad variable, a bad override or an unknown override.
    """
    settings = inv.settings(model, prefix=prefix)
    if not overrides:
        return settings
    names = labels or {}

    def label(field: str) -> str:
        return names.get(field, f"{prefix}{field}")

    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        raise ConfigError(f"{label(unknown[0])}: no such setting in {model.__name__}")
    try:
        return model.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        shown = f"={overrides[field]!r}" if field in overrides else ""
        where = label(field) if field else model.__name__
        raise ConfigError(f"{where}{shown}: {first['msg']}") from None


def given(**options: Any) -> dict[str, Any]:
    """The options the user actually gave: ``None`` (an option left unset) is dropped."""
    return {k: v for k, v in options.items() if v is not None}
