"""``migrate.status``: where the database is, where the code is, and what lies between."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drillbook.migrate.revisions import Revision, label
from drillbook.migrate.target import Database, Migrations


@dataclass
class MigrationStatus:
    database: str
    runs_on: str
    current: list[str]
    heads: list[str]
    pending: list[Revision]
    #: Revisions recorded in the database that the code does not know (newer code was deployed?).
    unknown: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.unknown and len(self.heads) == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "runs_on": self.runs_on,
            "current": self.current[0] if len(self.current) == 1 else (self.current or None),
            "head": self.heads[0] if len(self.heads) == 1 else self.heads,
            "pending": [
                {"revision": r.id, "doc": r.doc, "has_downgrade": r.has_downgrade, "path": r.path}
                for r in self.pending
            ],
            "unknown": self.unknown,
            "up_to_date": self.up_to_date,
        }

    def lines(self) -> list[str]:
        cur = ", ".join(self.current) if self.current else label(None)
        out = [f"database: {self.database} (migrations run on {self.runs_on})", f"current:  {cur}"]
        out.append(
            f"head:     {', '.join(self.heads)}" + ("   MULTIPLE HEADS" if len(self.heads) > 1 else "")
        )
        if self.unknown:
            out.append(
                f"unknown:  {', '.join(self.unknown)} is recorded in the database but not in these migrations"
            )
        if not self.pending:
            out.append("pending:  none")
        else:
            out.append(f"pending:  {len(self.pending)}")
            for r in self.pending:
                down = {
                    True: "downgrade: yes",
                    False: "downgrade: NO (irreversible)",
                    None: "downgrade: unknown",
                }
                out.append(f"  {r.id:<24} {down[r.has_downgrade]:<30} {r.doc}")
        return out


def status(migrations: Migrations, db: Database | None = None) -> MigrationStatus:
    """Read-only: the version table and the command's revision list; changes nothing."""
    db = db or migrations.source
    graph = migrations.graph(db)
    current = migrations.current(db)
    unknown = [c for c in current if c not in graph.revisions]
    heads = graph.heads
    done: set[str] = set()
    for c in current:
        done |= graph.ancestors(c)
    wanted: set[str] = set()
    for h in heads:
        wanted |= graph.ancestors(h)
    pending = [graph.revisions[r] for r in graph.ordered() if r in wanted - done]
    return MigrationStatus(
        database=db.describe(),
        runs_on=migrations.command.where,
        current=current,
        heads=heads,
        pending=[] if unknown else pending,
        unknown=unknown,
    )
