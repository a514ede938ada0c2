"""Fingerprints of a database's data, to prove a round trip kept it, naming what changed.

A downgrade that "works" may still lose data: it re-creates a dropped column
empty, or rebuilds values from a truncated copy. Row counts and the row
checksums of :mod:`drillbook.core.pgdata` (the same ones backup drills use)
catch that a table changed; a digest per column names *which* column did. Each
column digest is an order-independent fingerprint of that column's values
(their sorted text forms, NULLs marked), so it depends neither on the physical
row order nor on the other columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.heartbeat import TABLES as HEARTBEAT_TABLES
from drillbook.migrate.schema import Difference

_NULL = "\\N"


@dataclass(frozen=True)
class TableData:
    rows: int
    checksum: str
    columns: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum, "columns": self.columns}


def fingerprint(dsn: str, *, exclude: tuple[str, ...] = (), columns: bool = True) -> dict[str, TableData]:
    """``schema.table -> TableData`` for every table except ``exclude`` (``table`` or ``schema.table``).

    drillbook's own heartbeat tables are always left out: drillbook writes them every
    second, they are no data of the service's that a migration could lose.
    """
    exclude = (*exclude, *HEARTBEAT_TABLES)
    with pgdata.connect(
        dsn, read_only=True, stable_output=True, application_name="drillbook-migrate"
    ) as conn:
        tables = [t for t in pgdata.list_tables(conn) if t.qualified not in exclude and t.name not in exclude]
        digests = {t.qualified: column_digests(conn, t) for t in tables} if columns else {}
    rows = pgdata.fingerprints(dsn, tables) if tables else {}
    return {
        name: TableData(rows=fp.rows, checksum=fp.checksum, columns=digests.get(name, {}))
        for name, fp in rows.items()
    }


def column_digests(conn: pgdata.Conn, table: pgdata.Table) -> dict[str, str]:
    """One digest per column of ``table``, computed by the server in a single scan."""
    cols = [
        str(r[0])
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (table.ident.as_string(conn),),
        ).fetchall()
    ]
    if not cols:
        return {}
    parts = []
    for col in cols:
        value = sql.SQL("coalesce(t.{c}::text, {null})").format(
            c=sql.Identifier(col), null=sql.Literal(_NULL)
        )
        parts.append(sql.SQL("md5(coalesce(string_agg({v}, E'\\x1f' ORDER BY {v}), ''))").format(v=value))
    query = sql.SQL("SELECT {parts} FROM {table} AS t").format(
        parts=sql.SQL(", ").join(parts), table=table.ident
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return dict(zip(cols, (str(v) for v in row), strict=True))


def total_rows(data: dict[str, TableData]) -> int:
    return sum(t.rows for t in data.values())


def diff(before: dict[str, TableData], after: dict[str, TableData]) -> list[Difference]:
    """Tables gone or new, lost or added rows, and each column whose values changed."""
    out: list[Difference] = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            out.append(
                Difference(
                    "table data", name, f"{a.rows} rows" if a else None, f"{b.rows} rows" if b else None
                )
            )
            continue
        if a.rows != b.rows:
            out.append(Difference("row count", name, str(a.rows), str(b.rows)))
        changed = [c for c in a.columns if c in b.columns and a.columns[c] != b.columns[c]]
        out.extend(
            Difference("column data", f"{name}.{c}", "values before", "values changed") for c in changed
        )
        if a.checksum != b.checksum and not changed and a.rows == b.rows and set(a.columns) == set(b.columns):
            # Same values per column, yet different rows: values moved between rows,
            # or column digests were not taken.
            out.append(Difference("row data", name, f"checksum {a.checksum}", f"checksum {b.checksum}"))
    return out
