"""The Invoke namespace: one module per namespace, found automatically.

``drillbook/tasks/backup.py`` becomes ``backup.*``. A module whose tasks belong at
the top level (``inv demo``, ``inv smoke``) marks one of them ``default=True``:
Invoke then runs it as ``inv <module>`` and its siblings as ``inv <module>.<task>``.
Modules starting with ``_`` are helpers, not namespaces.
"""

from __future__ import annotations

import importlib
import pkgutil

from invoke.collection import Collection


def build_namespace() -> Collection:
    ns = Collection()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        ns.add_collection(Collection.from_module(module), name=info.name.replace("_", "-"))
    ns.configure({"run": {"echo": False}})
    return ns


namespace = build_namespace()
