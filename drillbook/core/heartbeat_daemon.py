"""``python -m drillbook.core.heartbeat_daemon``: the long-running heartbeat writer, and its one-shot check.

Run by ``roles/heartbeat`` as a pid-file daemon (or a systemd unit) beside the
service, so every nightly backup of the database holds drillbook's heartbeat and a
restore drill can measure its RPO (see :mod:`drillbook.core.heartbeat` for the
tables and why). The DSN comes from ``$DRILLBOOK_HEARTBEAT_DSN``, never from argv,
which ``ps`` shows to every user. Logs one line when writing starts, stops and
resumes; SIGTERM ends it cleanly (exit 0). Imports only the heartbeat, the sampler,
pgdata, errors and psycopg: the role copies just those files to the host.

    export DRILLBOOK_HEARTBEAT_DSN=postgresql://...
    python -m drillbook.core.heartbeat_daemon --writer-id db1             # write every second
    python -m drillbook.core.heartbeat_daemon --writer-id db1 --check 5   # exit 0: a beat < 5 s old
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from drillbook.core import pgdata
from drillbook.core.errors import DrillbookError
from drillbook.core.heartbeat import DSN_ENV, TABLE, HeartbeatWriter, first_line, tables_exist


def main(argv: Sequence[str] | None = None) -> int:
    """Write until SIGTERM, or ``--check`` the newest beat once.

    The DSN comes from ``$DRILLBOOK_HEARTBEAT_DSN``. Exit 0 on SIGTERM/SIGINT, 2 with
    one line when the writer is refused before its first beat (or ``--check`` finds no
    fresh beat of this writer id).
    """
    args = _parser().parse_args(argv)
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        return _fail(f"${DSN_ENV} is not set: the DSN the heartbeat writes with")
    if args.check is not None:
        return _check(dsn, args.writer_id, args.check)
    try:
        writer = HeartbeatWriter(
            dsn,
            args.writer_id,
            interval_s=args.interval,
            retention_s=args.retention,
            keep_beats=False,
            say=_log,
        )
    except DrillbookError as exc:
        return _fail(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _log(f"heartbeat {args.writer_id}: started (pid {os.getpid()}, every {args.interval}s)")
    writer.start()
    while not stop.wait(1.0) and writer.running:
        pass
    writer.stop()
    if writer.fatal is not None:
        return _fail(first_line(writer.fatal))
    _log(f"heartbeat {args.writer_id}: stopped after {writer.beats_written} beats")
    return 0


def _check(dsn: str, writer_id: str, max_age_s: float) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            row = None
            if tables_exist(conn):
                row = conn.execute(
                    f"SELECT seq, clock_timestamp() - ts FROM {TABLE} WHERE writer_id = %s", (writer_id,)
                ).fetchone()
    except psycopg.Error as exc:
        return _fail(f"cannot read {TABLE}: {first_line(exc)}")
    if row is None:
        return _fail(f"no heartbeat of writer {writer_id!r} in {pgdata.describe(dsn)}")
    age = row[1].total_seconds()
    print(f"heartbeat {writer_id}: seq {row[0]}, {age:.1f}s old")
    return 0 if age <= max_age_s else _fail(f"heartbeat {writer_id} is {age:.1f}s old (limit {max_age_s}s)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drillbook.core.heartbeat_daemon", description=main.__doc__)
    p.add_argument("--writer-id", default=socket.gethostname(), help="this writer's row (default: host name)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between beats (default 1)")
    p.add_argument(
        "--retention", type=float, default=3600.0, help="seconds of heartbeat_log kept (default 3600)"
    )
    p.add_argument(
        "--check", type=float, metavar="MAX_AGE_S", help="read once: exit 0 when the beat is fresh"
    )
    return p


def _log(line: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}", flush=True)


def _fail(line: str) -> int:
    print(f"error: {line}", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
