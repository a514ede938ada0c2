"""The pre-production smoke test (``inv smoke``): one request flow through the service, each step judged.

:func:`smoke_checks` runs the steps and returns them; :class:`Smoke` is the drill
that journals them as declared checks.
"""

from drillbook.smoke.drill import Smoke, SmokeMeasured, smoke_checks

__all__ = ["Smoke", "SmokeMeasured", "smoke_checks"]
