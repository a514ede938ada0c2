"""The ledger's settings, from ``LEDGER_*`` environment variables, read once.

The service and its migrations read the same settings, so a deploy configures
the database in one place and the migrations never depend on the tool that
runs them.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    database_url: str
    release: str
    username: str
    password: str
    token_secret: str
    token_ttl_s: int

    @property
    def sqlalchemy_url(self) -> str:
        """The same database through SQLAlchemy's psycopg 3 driver (for the migrations)."""
        scheme, sep, rest = self.database_url.partition("://")
        return f"postgresql+psycopg{sep}{rest}" if scheme in ("postgres", "postgresql") else self.database_url


@functools.cache
def settings() -> Settings:
    url = os.environ.get("LEDGER_DATABASE_URL", "")
    if not url:
        raise RuntimeError("LEDGER_DATABASE_URL is not set")
    return Settings(
        database_url=url,
        release=os.environ.get("LEDGER_RELEASE", "dev"),
        username=os.environ.get("LEDGER_USERNAME", "ledger"),
        password=os.environ.get("LEDGER_PASSWORD", ""),
        # Without a configured secret, tokens die with the process (and differ per instance).
        token_secret=os.environ.get("LEDGER_TOKEN_SECRET") or secrets.token_hex(32),
        token_ttl_s=int(os.environ.get("LEDGER_TOKEN_TTL_S", "3600")),
    )
