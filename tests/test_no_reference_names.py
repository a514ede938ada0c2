"""Drill code knows no service: the reference service's names stay out of drillbook/ (issue 14).

What a drill needs from the service under test comes from the inventory's
service profile (drillbook/core/profile.py); the lab's reference service is one
profile, in inventory/lab. So no module under drillbook/ may name the reference
service's paths, tables, package or settings: ``/items``, ``items`` (the table, in
SQL), ``sentinel``, ``refservice``, ``REFSVC_``.

Read from the AST: string constants (SQL, paths, environment names, messages;
docstrings left out, they may explain) and names (modules, functions, variables,
attributes). ``.items()``, the dict method, is a name of Python, not of the
service, and is left out.

While other work still removes them, :data:`KNOWN` lists the modules that still
do, each with its owner. The test fails on a module not listed, and on a listed
one that is clean (remove it): the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from drillbook.core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "drillbook"
#: In text: a path segment, the table in SQL, the sentinel, the package, the settings prefix
#: ("checklist items" in a message is English, not the reference's table).
TEXT = re.compile(
    r"/items\b|\b(from|into|update|join|table)\s+items\b|sentinel|refservice|refsvc_", re.IGNORECASE
)
#: In names: what names the service (``items_api``, ``sentinel``), not ``dict.items`` or a list of items.
NAME = re.compile(r"items_api|sentinel|refservice|refsvc", re.IGNORECASE)

#: Module -> who removes what it still names. Only shrinks.
KNOWN: dict[str, str] = {
    "drillbook/labenv/provision.py": "app2: the lab's reference service (a lab convenience)",
    "drillbook/labenv/release.py": "app2: the reference service's release builder (a lab convenience)",
}


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def reference_names(path: Path) -> list[str]:
    """What ``path`` names of the reference service: ``line: text``."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            match = TEXT.search(node.value)
            if match:
                hits.append(f"{node.lineno}: {node.value[:60]!r}")
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names = [node.name]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [a.name for a in node.names] + (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
        for name in names:
            for part in name.split("."):
                if NAME.search(part):
                    hits.append(f"{getattr(node, 'lineno', 0)}: {name}")
    if path.name == "items_api.py":
        hits.append("0: the module's own name")
    return hits


def _scan() -> dict[str, list[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        hits = reference_names(path)
        if hits:
            found[str(path.relative_to(REPO_ROOT))] = hits
    return found


def test_drill_code_names_nothing_of_the_reference_service() -> None:
    found = _scan()
    new = {module: hits[:5] for module, hits in found.items() if module not in KNOWN}
    assert not new, f"drill code names the reference service (use the service profile): {new}"


def test_the_known_list_only_shrinks() -> None:
    found = _scan()
    clean = sorted(module for module in KNOWN if module not in found)
    assert not clean, f"these no longer name the reference service, remove them from KNOWN: {clean}"


def test_the_scanner_sees_what_it_must_and_not_dict_items(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        '"""Items are fine in a docstring."""\n'
        "d = {}\n"
        "for k, v in d.items():\n"
        "    pass\n"
        'q = "SELECT count(*) FROM items"\n'
        'p = f"/items/{1}"\n'
        'env = "REFSVC_DATABASE_URL"\n'
        "from drillbook.core import items_api\n"
    )
    hits = reference_names(sample)
    assert sorted(int(h.split(":")[0]) for h in hits) == [5, 6, 7, 8], hits
