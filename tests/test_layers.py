"""The package's layers, enforced: who may import whom (docs/architecture.md, "Layers").

Read statically from the AST of every module under drillbook/, so an import inside
a function, under ``TYPE_CHECKING`` or through ``importlib.import_module("drillbook...")``
counts as much as one at the top of a file::

    entry         drillbook/cli.py (and tasks.py at the repository root)
    tasks         drillbook/tasks/*       may import anything below, and drillbook.tasks itself
    composition   drillbook/app/*         capabilities and core; is handed the namespace, never imports it
    capabilities  drillbook/<capability>  core and itself; another capability only through
                                          the functions listed in CROSS_CAPABILITY
    core          drillbook/core/*        core only

Nothing but the entry and the tasks layer imports ``drillbook.tasks``. The reference
service (lab/) and drillbook never import each other.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from drillbook.core.paths import REPO_ROOT

PACKAGE = "drillbook"

CORE = "core"
COMPOSITION = "app"
TASKS = "tasks"
CAPABILITIES = frozenset(
    {
        "audit",
        "backup",
        "canary",
        "chaos",
        "checklist",
        "doctor",
        "labenv",
        "load",
        "migrate",
        "project",
        "report",
        "runbooks",
        "smoke",
    }
)
#: The console script: builds Invoke's Program from the namespace.
ENTRY = frozenset({"drillbook.cli"})

#: A capability may use another only through documented functions of its package face:
#: (importer, imported) -> names. Anything else (a submodule, another name) is a violation.
CROSS_CAPABILITY: dict[tuple[str, str], frozenset[str]] = {
    ("migrate", "backup"): frozenset({"take_backup", "restore_into"}),
    ("chaos", "load"): frozenset({"background_traffic"}),
}

#: Debt the rule already knows, each with who removes it. The test fails on any
#: violation not listed here, and on a listed one that is gone (so this list only shrinks).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

#: Modules allowed an import whose target is not a string in the source, and why.
#: In these, every string constant naming a drillbook module counts as an import.
DYNAMIC_IMPORTS: dict[str, str] = {
    "drillbook.tasks": "builds the namespace from its own modules (pkgutil over its __path__)",
    "drillbook.load": "lazy attributes; the targets are string constants, checked as imports",
    "drillbook.core.flow": "a profile's hook (module:function) is the user's module; drillbook's refused",
}

_MODULE_STRING = re.compile(rf"^{PACKAGE}(\.\w+)+$")


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` (a module) uses ``target`` (a module, or ``module:name``)."""

    source: str
    target: str
    line: int

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def name(self) -> str | None:
        return self.target.split(":", 1)[1] if ":" in self.target else None


def module_name(path: Path, root: Path) -> str:
    """``drillbook/backup/__init__.py`` -> ``drillbook.backup``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_sources(root: Path = REPO_ROOT, package: str = PACKAGE) -> dict[str, tuple[str, bool]]:
    """Every module of the package: name -> (source, is a package ``__init__``)."""
    return {
        module_name(path, root): (path.read_text(), path.name == "__init__.py")
        for path in sorted((root / package).rglob("*.py"))
    }


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, target] if target else base)


def _import_target(call: ast.Call) -> ast.expr | None:
    """The argument of ``importlib.import_module(...)`` / ``import_module(...)`` / ``__import__(...)``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in ("import_module", "__import__") and call.args:
        return call.args[0]
    return None


def edges_of(module: str, source: str, is_package: bool, modules: set[str]) -> tuple[list[Edge], list[int]]:
    """The drillbook imports of one module, and the lines of dynamic imports it cannot read."""
    tree = ast.parse(source)
    edges: list[Edge] = []
    dynamic: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges.extend(Edge(module, a.name, node.lineno) for a in node.names if _ours(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            if not _ours(base):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                edges.append(Edge(module, sub if sub in modules else f"{base}:{alias.name}", node.lineno))
        elif isinstance(node, ast.Call) and (arg := _import_target(node)) is not None:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if _ours(arg.value):
                    edges.append(Edge(module, arg.value, node.lineno))
            else:
                dynamic.append(node.lineno)
    if dynamic and module in DYNAMIC_IMPORTS:
        for node in ast.walk(tree):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and _MODULE_STRING.match(value):
                edges.append(Edge(module, value, getattr(node, "lineno", 0)))
    return edges, dynamic


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def layer_of(module: str) -> tuple[str, str]:
    """(layer, unit): the unit is the capability's name for capabilities, else the layer."""
    parts = module.split(".")
    if module == PACKAGE:
        return "root", "root"
    if module in ENTRY:
        return "entry", "entry"
    top = parts[1]
    if top == CORE:
        return "core", CORE
    if top == COMPOSITION:
        return "composition", COMPOSITION
    if top == TASKS:
        return "tasks", TASKS
    if top in CAPABILITIES:
        return "capability", top
    return "unplaced", module


RANK = {"core": 0, "capability": 1, "composition": 2, "tasks": 3, "entry": 4}


def judge(edge: Edge) -> str | None:
    """Why ``edge`` breaks the layering, or None when it is allowed."""
    src_layer, src_unit = layer_of(edge.source)
    if src_layer == "unplaced":
        return f"{edge.source} belongs to no layer (move it into core, a capability, app or tasks)"
    if edge.module == PACKAGE:
        # the package face holds only __version__
        return None if edge.name == "__version__" else f"imports {edge.target} from the package face"
    if src_layer == "root":
        return f"the package face imports {edge.target}"
    dst_layer, dst_unit = layer_of(edge.module)
    if dst_layer == "unplaced":
        return None  # reported where it is defined
    if dst_layer in ("tasks", "entry") and src_layer not in ("tasks", "entry"):
        return f"imports {edge.target}: only the entry and the tasks layer use drillbook.tasks"
    if RANK[dst_layer] > RANK[src_layer]:
        return f"{src_layer} imports {edge.target}, a layer above it ({dst_layer})"
    if src_layer == "capability" and dst_layer == "capability" and src_unit != dst_unit:
        allowed = CROSS_CAPABILITY.get((src_unit, dst_unit), frozenset())
        face = f"{PACKAGE}.{dst_unit}"
        if edge.module == face and edge.name in allowed:
            return None
        names = ", ".join(sorted(allowed)) or "nothing"
        return f"capability {src_unit} imports {edge.target}; it may use only {face}: {names}"
    return None


def violations(sources: dict[str, tuple[str, bool]]) -> dict[tuple[str, str], str]:
    """Every broken rule in ``sources``: (module, target) -> "file:line: why"."""
    modules = set(sources)
    found: dict[tuple[str, str], str] = {}
    for module, (source, is_package) in sorted(sources.items()):
        if layer_of(module)[0] == "unplaced":
            found[(module, "")] = f"{module}: belongs to no layer (core, a capability, app, tasks)"
            continue
        edges, dynamic = edges_of(module, source, is_package, modules)
        if dynamic and module not in DYNAMIC_IMPORTS:
            found[(module, "<dynamic>")] = (
                f"{module}:{dynamic[0]}: an import whose target is not a string in the source "
                "(list the module in DYNAMIC_IMPORTS with the reason, and name targets as constants)"
            )
        for edge in edges:
            why = judge(edge)
            if why:
                found.setdefault((edge.source, edge.target), f"{edge.source}:{edge.line}: {why}")
    return found


# -- the package itself ----------------------------------------------------------------


def test_the_package_keeps_its_layers() -> None:
    found = violations(package_sources())
    new = {key: why for key, why in found.items() if key not in KNOWN_VIOLATIONS}
    assert not new, "layer rule broken (docs/architecture.md):\n" + "\n".join(sorted(new.values()))


def test_known_violations_are_still_there() -> None:
    """A debt paid off leaves the list, so the list never hides a new violation of the same shape."""
    found = violations(package_sources())
    gone = sorted(f"{src} -> {dst}" for src, dst in KNOWN_VIOLATIONS if (src, dst) not in found)
    assert not gone, "fixed, remove from KNOWN_VIOLATIONS: " + ", ".join(gone)


def test_every_capability_exists_and_the_root_holds_no_loose_module() -> None:
    packages = {p.name for p in (REPO_ROOT / PACKAGE).iterdir() if (p / "__init__.py").exists()}
    assert packages == {*CAPABILITIES, CORE, COMPOSITION, TASKS}
    loose = {p.stem for p in (REPO_ROOT / PACKAGE).glob("*.py")} - {"__init__", "cli"}
    assert not loose, f"loose modules at the package root, move them into a layer: {sorted(loose)}"


def test_the_reference_service_and_drillbook_stay_apart() -> None:
    for path in sorted((REPO_ROOT / "lab").rglob("*.py")):
        for line in path.read_text().splitlines():
            assert not re.match(r"\s*(from|import)\s+drillbook\b", line), f"{path}: {line}"
    for module, (source, _) in package_sources().items():
        assert not re.search(r"^\s*(from|import)\s+(refservice|lab)\b", source, re.M), module


# -- the checker can fail ----------------------------------------------------------------


def _check(**modules: str) -> list[str]:
    sources = {name.replace("__", "."): (text, False) for name, text in modules.items()}
    for name in list(sources):  # every package the modules live in, as empty __init__s
        parts = name.split(".")
        for i in range(1, len(parts)):
            sources.setdefault(".".join(parts[:i]), ("", True))
    return sorted(why for why in violations(sources).values())


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ({"drillbook__chaos__drill": "from drillbook.backup import take_backup"}, "capability chaos imports"),
        ({"drillbook__migrate__x": "from drillbook.backup import load_settings"}, "may use only"),
        ({"drillbook__migrate__x": "from drillbook.backup.take import take_backup"}, "may use only"),
        ({"drillbook__migrate__x": "import drillbook.backup"}, "may use only"),
        ({"drillbook__checklist__refs": "from drillbook.tasks import namespace"}, "only the entry"),
        ({"drillbook__app__demo": "from drillbook.tasks import namespace"}, "only the entry"),
        (
            {"drillbook__canary__demo": "from drillbook import labenv", "drillbook__labenv": ""},
            "capability canary imports drillbook.labenv",
        ),
        ({"drillbook__core__x": "from drillbook.report import store"}, "core imports"),
        ({"drillbook__core__x": "from drillbook.app import demo"}, "core imports"),
        ({"drillbook__smoke__x": "from drillbook.app.registry import known_drills"}, "capability imports"),
        ({"drillbook__checklist__refs": "def f():\n    from ..audit import AUDIT_CHECKS\n"}, "imports"),
        (
            {"drillbook__checklist__refs": "import importlib\nimportlib.import_module('drillbook.audit')\n"},
            "capability checklist imports drillbook.audit",
        ),
        ({"drillbook__runbooks__x": "import importlib\nimportlib.import_module(name)\n"}, "not a string"),
        ({"drillbook__loose": "x = 1\n"}, "belongs to no layer"),
    ],
)
def test_the_checker_refuses(modules: dict[str, str], expected: str) -> None:
    found = _check(**modules)
    assert found and expected in found[0], found


@pytest.mark.parametrize(
    "modules",
    [
        {"drillbook__migrate__x": "from drillbook.backup import restore_into, take_backup"},
        {"drillbook__chaos__x": "from drillbook.core import probes\nfrom drillbook.chaos import plan"},
        {"drillbook__app__demo": "from drillbook.backup import load_settings\nfrom drillbook.smoke import x"},
        {"drillbook__tasks__lab": "from drillbook.tasks import namespace\nfrom drillbook.app import demo"},
        {"drillbook__cli": "from drillbook import __version__\nfrom drillbook.tasks import namespace"},
        {"drillbook__backup__x": "from . import take\nfrom .errors import BackupFailed"},
    ],
)
def test_the_checker_allows(modules: dict[str, str]) -> None:
    assert _check(**modules) == []
