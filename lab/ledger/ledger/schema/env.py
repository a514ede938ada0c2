"""Alembic environment of the ledger: the database is the ledger's own setting.

LEDGER_DATABASE_URL through ledger.settings, as the service reads it; nothing
else (no -x argument, no sqlalchemy.url in the ini). Online mode only.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.settings import settings

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

engine = create_engine(settings().sqlalchemy_url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
