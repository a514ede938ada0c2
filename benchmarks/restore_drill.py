"""Benchmark: the restore drill end to end against a bare ``pg_restore -j N`` of the same dump.

    DRILLBOOK_LAB_DIR=... DRILLBOOK_LAB_PORT_BASE=... python benchmarks/restore_drill.py [--gib 1] [--jobs N]

1. Builds (once; ``--rebuild`` to redo) a database of about ``--gib`` GiB on the
   lab's cluster: customers, orders (jsonb lines), events (free text), a
   product catalogue; random words from a vocabulary rather than pgbench's
   constant filler, numbers, timestamps, and the indexes a service would have.
2. Takes a backup of it with ``take_backup`` (pg_dump -Fd -j N -Z level).
3. Times a bare ``pg_restore -j N`` of that dump into an empty database
   (the same tool, flags and jobs the drill uses), then the drill
   (``RestoreTest``: integrity + restore + verify), alternating ``--runs`` times.
4. Prints the ratios against the targets of issue 3: drill restore phase within
   1.10x of bare pg_restore, whole drill (integrity + restore + verify) within
   1.5x, and MB/s (database size / seconds).

Everything it creates is named ``drillbook_bench_*`` and dropped at the end,
except the source database and its backup (kept for reruns; ``--drop`` removes them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drillbook.backup import RestoreTest, load_settings, open_repository, take_backup
from drillbook.backup.restore import fetch, pg_restore, pick_backup
from drillbook.core import pgdata
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import load_inventory

SRC = "drillbook_bench_src"
BARE = "drillbook_bench_bare"

# A vocabulary of 30k made-up words, and 200k sentences of 4-16 words drawn with a Zipf-like
# distribution (common words are common): text that gzip treats like prose, not like filler.
VOCABULARY = [
    """CREATE TABLE words AS SELECT x AS id,
           translate(substr(md5(x::text), 1, 2 + x % 9), '0123456789', 'ghijklmnop') AS w
         FROM generate_series(1, 30000) x""",
    "ALTER TABLE words ADD PRIMARY KEY (id)",
    """CREATE TABLE sentences AS
       SELECT x.sid AS id, string_agg(w.w, ' ' ORDER BY x.pos) AS s
         FROM (SELECT sid, pos, floor(exp(random() * ln(30000)))::int AS r
                 FROM generate_series(1, 200000) sid, generate_series(1, 16) pos
                WHERE pos <= 4 + sid % 13) x
         JOIN words w ON w.id = x.r
        GROUP BY x.sid""",
    "ALTER TABLE sentences ADD PRIMARY KEY (id)",
    "ANALYZE words",
    "ANALYZE sentences",
]


def _sentence(alias: str, prime: int) -> str:
    """Join clause picking sentence (g * prime) mod 200k for row g: a hash join, no per-row lookup."""
    return f"JOIN sentences {alias} ON {alias}.id = (g * {prime}) % 200000 + 1"


def _word(alias: str, prime: int) -> str:
    return f"JOIN words {alias} ON {alias}.id = (g * {prime}) % 30000 + 1"


# name: (CREATE TABLE, INSERT for rows {lo}..{hi}, indexes, share of the size, bytes per row on disk)
TABLES: dict[str, tuple[str, str, list[str], float, int]] = {
    "customers": (
        """CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, country char(2),
               created_at timestamptz, notes text)""",
        f"""INSERT INTO customers
            SELECT g, initcap(a.w) || ' ' || initcap(b.w), a.w || g || '@' || b.w || '.example',
                   upper(substr(b.w, 1, 2)), now() - random() * interval '1000 days', n.s
              FROM generate_series({{lo}}::bigint, {{hi}}) g
              {_word("a", 7919)} {_word("b", 104729)} {_sentence("n", 15485863)}""",
        ["CREATE INDEX ON customers (email)", "CREATE INDEX ON customers (created_at)"],
        0.15,
        290,
    ),
    "orders": (
        """CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, status text,
               total numeric(12,2), created_at timestamptz, lines jsonb)""",
        f"""INSERT INTO orders
            SELECT g, 1 + (random() * {{customers}})::bigint,
                   (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + (random() * 4)::int],
                   round((random() * 500)::numeric, 2), now() - random() * interval '1000 days',
                   jsonb_build_array(
                       jsonb_build_object('sku', a.w, 'qty', 1 + g % 4,
                                          'price', round((random() * 100)::numeric, 2)),
                       jsonb_build_object('sku', b.w, 'qty', 1, 'note', c.w || ' ' || a.w))
              FROM generate_series({{lo}}::bigint, {{hi}}) g
              {_word("a", 7919)} {_word("b", 104729)} {_word("c", 1299709)}""",
        ["CREATE INDEX ON orders (customer_id)", "CREATE INDEX ON orders (created_at)"],
        0.25,
        300,
    ),
    "events": (
        """CREATE TABLE events (id bigint PRIMARY KEY, order_id bigint, kind text, at timestamptz,
               message text)""",
        f"""INSERT INTO events
            SELECT g, 1 + (random() * {{orders}})::bigint,
                   (ARRAY['view','click','cart','pay','ship','mail','refund'])[1 + (random() * 6)::int],
                   now() - random() * interval '1000 days',
                   a.s || ' ' || b.s || CASE WHEN g % 2 = 0 THEN ' ' || c.s ELSE '' END
              FROM generate_series({{lo}}::bigint, {{hi}}) g
              {_sentence("a", 7919)} {_sentence("b", 104729)} {_sentence("c", 15485863)}""",
        ["CREATE INDEX ON events (order_id)", "CREATE INDEX ON events (at)"],
        0.50,
        330,
    ),
    "products": (
        """CREATE TABLE products (sku text PRIMARY KEY, title text, price numeric(10,2), description text)""",
        f"""INSERT INTO products
            SELECT 'sku-' || g, initcap(a.s), round((random() * 100)::numeric, 2),
                   b.s || '. ' || c.s || '. ' || d.s || '.'
              FROM generate_series({{lo}}::bigint, {{hi}}) g
              {_sentence("a", 7919)} {_sentence("b", 104729)} {_sentence("c", 15485863)}
              {_sentence("d", 179424673)}""",
        [],
        0.10,
        410,
    ),
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_source(admin: str, gib: float, jobs: int) -> None:
    pgdata.create_database(admin, SRC, replace=True)
    dsn = pgdata.dsn_for(admin, SRC)
    with pgdata.connect(dsn) as conn:
        conn.execute("SET jit = off")
        for statement in VOCABULARY:
            conn.execute(statement)  # type: ignore[arg-type]
        for create, *_ in TABLES.values():
            conn.execute(create)  # type: ignore[arg-type]
    target = gib * 1024**3
    rows = {name: int(target * share / per_row) for name, (_, _, _, share, per_row) in TABLES.items()}
    chunks: list[tuple[str, int, int]] = []
    for name, n in rows.items():
        step = 250_000
        chunks += [(name, lo, min(n, lo + step - 1)) for lo in range(1, n + 1, step)]
    say(f"building {SRC}: {rows} rows in {len(chunks)} chunks over {jobs} sessions")
    lock = threading.Lock()

    def worker() -> None:
        with pgdata.connect(dsn) as conn:
            conn.execute("SET jit = off")
            while True:
                with lock:
                    if not chunks:
                        return
                    name, lo, hi = chunks.pop()
                sql = TABLES[name][1].format(lo=lo, hi=hi, customers=rows["customers"], orders=rows["orders"])
                conn.execute(sql)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(worker) for _ in range(jobs)]:
            future.result()
    with pgdata.connect(dsn) as conn:
        for _, _, indexes, _, _ in TABLES.values():
            for ix in indexes:
                conn.execute(ix)  # type: ignore[arg-type]
        conn.execute("DROP TABLE words, sentences")
        conn.execute("VACUUM ANALYZE")
        size = pgdata.database_size(conn)
    say(f"{SRC} is {size / 1024**3:.2f} GiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0, help="size of the source database (default 1 GiB)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="pg_dump/pg_restore jobs")
    ap.add_argument("--runs", type=int, default=1, help="bare/drill pairs to time (alternating)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the source database and its backup")
    ap.add_argument("--drop", action="store_true", help="drop the source database and backup at the end")
    ap.add_argument("--inventory", default=None)
    ap.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    args = ap.parse_args()

    inv = load_inventory(args.inventory)
    admin = inv.topology.postgres_admin_dsn
    lab_dir = Path(str(inv.var("lab_dir", tempfile.gettempdir())))
    repo_dir = lab_dir / "bench-backups"
    settings = load_settings(
        inv,
        source_dsn=pgdata.dsn_for(admin, SRC),
        local_path=str(repo_dir),
        work_dir=str(lab_dir / "bench-work"),
        redis=False,
        jobs=args.jobs,
        rpo_query=None,
        verify_queries=[],
        scratch_prefix="drillbook_bench_drill",
        rto_s=3600,
    )
    repo = open_repository(settings)
    with pgdata.connect(admin) as conn:
        have_src = pgdata.database_exists(conn, SRC)
    if args.rebuild or not have_src:
        build_source(admin, args.gib, args.jobs)
        shutil.rmtree(repo_dir, ignore_errors=True)
    if not repo.ids():
        say(f"backup: pg_dump -Fd -j {args.jobs} -Z {settings.compression}")
        b = take_backup(inv, settings=settings, repository=repo)
        mb = b.manifest.total_bytes / 1e6
        say(f"backup {b.id}: {mb:.0f} MB in {b.duration_s:.1f}s (dump {b.dump_s:.1f}s)")
    manifest = pick_backup(repo)
    db_bytes = manifest.db_size_bytes

    bare_s: list[float] = []
    drills: list[dict[str, Any]] = []
    for i in range(args.runs):
        pgdata.create_database(admin, BARE, replace=True)
        try:
            fetched = fetch(repo, manifest, settings)
            say(f"run {i + 1}: bare pg_restore -j {args.jobs}")
            bare_s.append(
                pg_restore(fetched, manifest, pgdata.dsn_for(admin, BARE), jobs=args.jobs, no_owner=False)
            )
        finally:
            pgdata.drop_database(admin, BARE)
        say(f"run {i + 1}: bare {bare_s[-1]:.2f}s; drill")
        with tempfile.TemporaryDirectory() as reports:
            j = execute(
                RestoreTest(settings), DrillContext(inventory=inv, report_root=Path(reports), quiet=True)
            )
        if j.verdict != "pass":
            say(f"drill verdict {j.verdict}: {j.error} {[c.name for c in j.failed_checks]}")
            return 2
        m = j.measurements
        drills.append(m)
        say(
            f"run {i + 1}: drill restore {m['restore_s']:.2f}s, integrity {m['integrity_s']:.2f}s, "
            f"verify {m['verify_s']:.2f}s, total {m['total_s']:.2f}s"
        )

    bare = statistics.median(bare_s)
    restore = statistics.median(float(m["restore_s"]) for m in drills)
    whole = statistics.median(float(m["integrity_s"] + m["restore_s"] + m["verify_s"]) for m in drills)
    total = statistics.median(float(m["total_s"]) for m in drills)
    figures = {
        "db_size_bytes": db_bytes,
        "backup_bytes": manifest.total_bytes,
        "tables": len(manifest.tables),
        "rows": manifest.rows,
        "jobs": args.jobs,
        "compression": manifest.dump.compression,
        "dump_s": manifest.dump.duration_s,
        "runs": args.runs,
        "bare_pg_restore_s": round(bare, 2),
        "bare_mb_per_s": round(db_bytes / 1e6 / bare, 1),
        "drill_restore_s": round(restore, 2),
        "drill_integrity_s": round(statistics.median(float(m["integrity_s"]) for m in drills), 2),
        "drill_verify_s": round(statistics.median(float(m["verify_s"]) for m in drills), 2),
        "drill_total_s": round(total, 2),
        "drill_restore_mb_per_s": round(db_bytes / 1e6 / restore, 1),
        "restore_ratio": round(restore / bare, 3),
        "whole_ratio": round(whole / bare, 3),
        "load_average": os.getloadavg(),
    }
    print(
        f"database {db_bytes / 1e9:.2f} GB ({len(manifest.tables)} tables, {manifest.rows} rows), "
        f"backup {manifest.total_bytes / 1e6:.0f} MB (-Z{manifest.dump.compression}), -j {args.jobs}"
    )
    print(f"bare pg_restore        {bare:7.2f} s  {figures['bare_mb_per_s']:6.1f} MB/s")
    print(
        f"drill restore phase    {restore:7.2f} s  {figures['drill_restore_mb_per_s']:6.1f} MB/s  "
        f"ratio {figures['restore_ratio']:.3f} (target <= 1.10)"
    )
    print(
        f"drill integrity+restore+verify {whole:7.2f} s  ratio {figures['whole_ratio']:.3f} (target <= 1.5)"
    )
    print(f"drill total_s          {total:7.2f} s")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")
    if args.drop:
        pgdata.drop_database(admin, SRC)
        shutil.rmtree(repo_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
