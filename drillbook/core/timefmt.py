"""How long ago, said the same way everywhere: ``45s``, ``12m``, ``5h``, ``9d``.

The backup list, the scorecard and the checklist each had their own wording
(``3.5h``, ``3h``, ``3 h ago``); one formatter keeps a table and a status line
that describe the same journal in agreement. Whole units, switching at twice the
unit (up to 119 s in seconds, up to 119 min in minutes, up to 47 h in hours), so
the number never reads as a smaller unit in disguise ("1h" for 110 minutes).
"""

from __future__ import annotations

from datetime import datetime


def age_s(seconds: float) -> str:
    """A duration in whole seconds, minutes, hours or days; a negative one (clock skew) is ``0s``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def age(now: datetime, then: datetime) -> str:
    """How long before ``now`` ``then`` was (aware datetimes): ``3h``; callers add "ago" where it reads."""
    return age_s((now - then).total_seconds())
