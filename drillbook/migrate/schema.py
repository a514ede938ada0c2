"""The schema as PostgreSQL's catalog describes it, and a diff that names each difference.

A rehearsal proves that ``upgrade`` then ``downgrade`` returns to the schema it
started from. The dump reads the catalog directly (not the migration tool's
idea of the schema): tables, columns with type, nullability, default, identity
and generation, indexes, constraints, views, sequences, triggers and enum types
of every user schema. Each object becomes one ``kind -> name -> description``
entry, so a difference reads like "column public.orders.note: missing after".

Column *positions* are kept apart: a downgrade that re-adds a dropped column
puts it last, which changes ``SELECT *`` order but nothing else; the diff
reports it as a note, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
"""

_QUERIES: dict[str, str] = {
    "table": f"""
        SELECT n.nspname || '.' || c.relname,
               CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
                 || CASE WHEN c.relpersistence = 'u' THEN ' (unlogged)' ELSE '' END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMAS}
    """,
    "column": f"""
        SELECT n.nspname || '.' || c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
                 || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
                 || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
                 || CASE a.attidentity WHEN 'a' THEN ' IDENTITY ALWAYS'
                                       WHEN 'd' THEN ' IDENTITY BY DEFAULT' ELSE '' END
                 || CASE WHEN a.attgenerated = 's' THEN ' GENERATED' ELSE '' END
                 || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                         THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
          AND {_USER_SCHEMAS}
    """,
    "index": f"""
        SELECT n.nspname || '.' || ic.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE {_USER_SCHEMAS}
    """,
    "constraint": f"""
        SELECT n.nspname || '.' || c.relname || '.' || con.conname,
               pg_get_constraintdef(con.oid)
                 || CASE WHEN con.condeferrable THEN ' DEFERRABLE' ELSE '' END
                 || CASE WHEN NOT con.convalidated THEN ' NOT VALID' ELSE '' END
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}
    """,
    "view": f"""
        SELECT n.nspname || '.' || c.relname,
               CASE c.relkind WHEN 'm' THEN 'materialized: ' ELSE '' END || pg_get_viewdef(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {_USER_SCHEMAS}
    """,
    "sequence": f"""
        SELECT n.nspname || '.' || c.relname,
               format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement
                 || coalesce(' owned by ' || oc.relname || '.' || oa.attname, '')
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_depend dep ON dep.objid = c.oid AND dep.classid = 'pg_class'::regclass
             AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
        LEFT JOIN pg_class oc ON oc.oid = dep.refobjid
        LEFT JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
        WHERE {_USER_SCHEMAS}
    """,
    "trigger": f"""
        SELECT n.nspname || '.' || c.relname || '.' || tg.tgname, pg_get_triggerdef(tg.oid)
        FROM pg_trigger tg
        JOIN pg_class c ON c.oid = tg.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT tg.tgisinternal AND {_USER_SCHEMAS}
    """,
    "type": f"""
        SELECT n.nspname || '.' || t.typname,
               'enum (' || string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) || ')'
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE {_USER_SCHEMAS}
        GROUP BY 1
    """,
}

_POSITIONS = f"""
    SELECT n.nspname || '.' || c.relname, string_agg(a.attname, ', ' ORDER BY a.attnum)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER_SCHEMAS}
    GROUP BY 1
"""

KINDS = tuple(_QUERIES)


@dataclass
class Catalog:
    """``objects[kind][name] = description`` plus each table's column order."""

    objects: dict[str, dict[str, str]] = field(default_factory=dict)
    column_order: dict[str, str] = field(default_factory=dict)

    def tables(self) -> list[str]:
        return sorted(self.objects.get("table", {}))

    def count(self) -> int:
        return sum(len(v) for v in self.objects.values())

    def to_dict(self) -> dict[str, Any]:
        return {"objects": self.objects, "column_order": self.column_order}


@dataclass(frozen=True)
class Difference:
    """One named difference between two catalogs (or two data fingerprints)."""

    kind: str
    name: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.after is None:
            return f"{self.kind} {self.name}: missing after (was {self.before})"
        if self.before is None:
            return f"{self.kind} {self.name}: new after ({self.after})"
        return f"{self.kind} {self.name}: {self.before} -> {self.after}"


def dump(conn: Any) -> Catalog:
    """Read the catalog of the database ``conn`` (a psycopg connection) is connected to."""
    catalog = Catalog()
    for kind, query in _QUERIES.items():
        rows = conn.execute(query).fetchall()
        catalog.objects[kind] = {str(name): str(desc) for name, desc in rows}
    catalog.column_order = {str(t): str(cols) for t, cols in conn.execute(_POSITIONS).fetchall()}
    return catalog


def diff(before: Catalog, after: Catalog, *, ignore_tables: tuple[str, ...] = ()) -> list[Difference]:
    """Every object added, removed or changed between ``before`` and ``after``, sorted by kind and name."""
    out: list[Difference] = []
    for kind in KINDS:
        a, b = before.objects.get(kind, {}), after.objects.get(kind, {})
        for name in sorted(set(a) | set(b)):
            if _ignored(name, ignore_tables):
                continue
            if a.get(name) != b.get(name):
                out.append(Difference(kind, name, a.get(name), b.get(name)))
    return out


def order_changes(before: Catalog, after: Catalog) -> list[str]:
    """Tables whose column order changed (same columns, other positions): notes, not failures."""
    notes = []
    for table, cols in sorted(before.column_order.items()):
        other = after.column_order.get(table)
        if other is not None and other != cols and sorted(other.split(", ")) == sorted(cols.split(", ")):
            notes.append(f"column order of {table} changed: ({cols}) -> ({other})")
    return notes


def _ignored(name: str, tables: tuple[str, ...]) -> bool:
    return any(name == t or name.startswith(t + ".") for t in tables)
