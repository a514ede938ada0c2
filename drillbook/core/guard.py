"""The production guard: one rule, one message, for every task and drill that changes something.

An inventory with ``drillbook_environment: production`` is refused unless the
operator says ``--allow-production``. The task layer applies it to every task
that writes (drillbook/tasks/_cli.py ``CliTask``), before the task's body runs,
so a refusal takes no lock, makes no report folder and starts no Ansible.
Capabilities that can be driven without the task layer (chaos drills) call the
same function, so a library user meets the same rule.

A task given ``--allow-production`` passes the consent on (:func:`give_consent`)
through ``$DRILLBOOK_ALLOW_PRODUCTION``: to the drills it runs in-process (``demo``
runs chaos drills, which check again) and to the tasks it runs as subprocesses
(``runbook.run``). The variable holds the fleet id the consent was given for
(:attr:`Inventory.fleet_id`), so it covers that one fleet, and a stray
``export DRILLBOOK_ALLOW_PRODUCTION=1`` covers nothing.
"""

from __future__ import annotations

import os

from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory

ALLOW_PRODUCTION_ENV = "DRILLBOOK_ALLOW_PRODUCTION"


def production_allowed(inv: Inventory, allow_production: bool) -> bool:
    """Whether a change to ``inv`` may go ahead: not production, or the operator said so."""
    if not inv.is_production or allow_production:
        return True
    return os.environ.get(ALLOW_PRODUCTION_ENV) == inv.fleet_id


def refuse_production(inv: Inventory, allow_production: bool, what: str) -> None:
    """Raise :class:`ConfigError` (one line, exit 2) unless :func:`production_allowed`."""
    if not production_allowed(inv, allow_production):
        raise ConfigError(
            f"{what} refused: inventory {inv.name} is production (drillbook_environment: production); "
            "add --allow-production to run it anyway"
        )


def give_consent(inv: Inventory) -> None:
    """Record the operator's ``--allow-production`` for ``inv``'s fleet, for this process and its children."""
    if inv.is_production:
        os.environ[ALLOW_PRODUCTION_ENV] = inv.fleet_id
