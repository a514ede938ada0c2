"""The ledger's schema migrations (Alembic), shipped inside the package.

Unlike the reference service (``alembic.ini`` and ``migrations/`` beside the
code), the migrations travel in the wheel: ``python -m ledger.schema`` upgrades
to head, ``python -m ledger.schema downgrade -1`` and friends pass through to
Alembic, and ``alembic -c <site-packages>/ledger/schema/alembic.ini`` works too.
env.py takes the database from the ledger's own settings (LEDGER_DATABASE_URL).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
INI = HERE / "alembic.ini"
