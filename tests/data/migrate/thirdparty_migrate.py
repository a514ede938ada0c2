"""A third-party service's migration entry point, for the target-proof tests.

Like many real services, its Alembic environment builds the database URL from
the service's *own* settings and ignores whatever drillbook passes
(REFSVC_DATABASE_URL for the lab's env.py): this wrapper overwrites that
variable before it starts Alembic, from

* THIRDPARTY_DATABASE_URL, a whole URL, or
* THIRDPARTY_DB_HOST / _PORT / _NAME / _USER / _PASSWORD, the parts.

Set to the live database they reproduce the incident of issue 13 (the rehearsal
migrated the source); mapped onto drillbook's placeholders through migrate_env
(``THIRDPARTY_DATABASE_URL: "{dsn}"``, ``THIRDPARTY_DB_NAME: "{database}"``...)
they make the same service rehearse on the copy.

Usage: thirdparty_migrate.py [--writes-only] ALEMBIC [ARGS...]
``--writes-only`` applies the service's own setting to upgrade/downgrade only:
a command that answers the read-only ``current`` honestly and still writes to
the wrong database, which only the checks after each step can catch.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote


def own_url() -> str | None:
    url = os.environ.get("THIRDPARTY_DATABASE_URL")
    if url:
        return url
    name = os.environ.get("THIRDPARTY_DB_NAME")
    if not name:
        return None
    user = quote(os.environ.get("THIRDPARTY_DB_USER", ""), safe="")
    password = quote(os.environ.get("THIRDPARTY_DB_PASSWORD", ""), safe="")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = os.environ.get("THIRDPARTY_DB_HOST", "localhost")
    port = os.environ.get("THIRDPARTY_DB_PORT", "5432")
    return f"postgresql://{auth}{host}:{port}/{quote(name, safe='')}"


def main() -> None:
    args = sys.argv[1:]
    writes_only = args[:1] == ["--writes-only"]
    if writes_only:
        args = args[1:]
    writes = "upgrade" in args or "downgrade" in args
    url = own_url()
    if url and (writes or not writes_only):
        os.environ["REFSVC_DATABASE_URL"] = url
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
