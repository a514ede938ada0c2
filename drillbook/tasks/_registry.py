"""The tasks layer hands its own namespace to the composition layer's registry.

``inv checklist`` validates its evidence against the drill tasks; those are
this layer's namespace, so it is passed down from here rather than imported
from below (see drillbook/app/registry.py and tests/test_layers.py).
"""

from __future__ import annotations


def known_drills() -> set[str]:
    """The drill task names (and aliases) of the ``inv`` namespace."""
    from drillbook.app import registry
    from drillbook.tasks import namespace  # built by this package's __init__, after this module loads

    return registry.known_drills(namespace)


def known_audits() -> dict[str, set[str]]:
    """The checks each audit records, by audit drill name."""
    from drillbook.app import registry

    return registry.known_audits()
