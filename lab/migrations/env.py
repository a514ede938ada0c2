"""Alembic environment of the reference service.

* The database is REFSVC_DATABASE_URL (the service's own variable, so the lab
  configures one thing); postgresql:// is mapped to SQLAlchemy's psycopg 3
  driver.
* REFSVC_MIGRATION_SET adds one directory of drill revisions to the main chain
  (see README.md). The drill revisions are never part of the default chain, so
  `alembic upgrade head` without the variable always means 0003.
* All pending revisions run in one transaction (PostgreSQL has transactional
  DDL): a revision that fails half-way leaves the schema where it started.
* lock_timeout bounds how long a migration waits behind live traffic for a
  table lock, instead of queueing every request behind it.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionMap
from alembic.util import CommandError
from sqlalchemy import create_engine, pool, text

# Set name -> directory under migrations/drills/.
MIGRATION_SETS = {
    "lossy": "lossy",
    "broken": "broken",
    "irreversible": "irreversible",
    "broken-downgrade": "broken_downgrade",
}

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = os.environ.get("REFSVC_DATABASE_URL", "").strip() or config.get_main_option("sqlalchemy.url")
    if not url:
        raise CommandError("REFSVC_DATABASE_URL is not set (postgresql://user:password@host:port/db)")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def select_migration_set(script: ScriptDirectory) -> None:
    """Add the drill directory named by REFSVC_MIGRATION_SET to the version locations.

    Runs before any revision is looked up (commands resolve revisions inside
    the migration function, which runs after this file), so the revision map
    is rebuilt from the extended locations.
    """
    name = os.environ.get("REFSVC_MIGRATION_SET", "").strip()
    drills = Path(script.dir) / "drills"
    locations = [str(Path(p).resolve()) for p in script.version_locations] or [
        str((Path(script.dir) / "versions").resolve())
    ]
    chosen_by_ini = {p for p in locations if Path(p).parent == drills.resolve()}
    if not name:
        return
    if name not in MIGRATION_SETS:
        raise CommandError(
            f"REFSVC_MIGRATION_SET={name!r} is not a migration set; known: {', '.join(MIGRATION_SETS)}"
        )
    wanted = str((drills / MIGRATION_SETS[name]).resolve())
    if chosen_by_ini - {wanted}:
        raise CommandError(
            f"REFSVC_MIGRATION_SET={name!r} conflicts with the ini section's version_locations"
            f" ({', '.join(sorted(chosen_by_ini))})"
        )
    if wanted in locations:
        return
    script.version_locations = [*locations, wanted]
    script.__dict__.pop("_version_locations", None)  # memoized from the old list
    script.revision_map = RevisionMap(script._load_revisions)


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SET lock_timeout = '5s'"))
        connection.commit()
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()


select_migration_set(context.script)
if context.is_offline_mode():
    run_offline()
else:
    run_online()
