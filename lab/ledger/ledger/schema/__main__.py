"""``python -m ledger.schema [alembic arguments]``: default ``upgrade head``."""

from __future__ import annotations

import sys

from alembic.config import main

from ledger.schema import INI

if __name__ == "__main__":
    main(argv=["-c", str(INI), *(sys.argv[1:] or ["upgrade", "head"])], prog="python -m ledger.schema")
