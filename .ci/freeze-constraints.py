"""Write constraints.txt: the exact versions of drillbook[test]'s dependency tree as installed here.

CI installs with ``pip install -c constraints.txt`` so that a new release upstream cannot
turn CI red overnight. Regenerate deliberately, after the tests pass on the new versions:

    pip install -U -e '.[test]' && inv test.all && python .ci/freeze-constraints.py
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement

HEADER = (
    "# Versions CI installs (pip install -c constraints.txt), so a new upstream release cannot\n"
    "# turn CI red overnight. Regenerate deliberately: python .ci/freeze-constraints.py\n"
)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tree(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Installed name -> version for ``root`` and everything it requires (with ``extras``)."""
    found: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if _key(name) in found:
            continue
        found[_key(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *wanted)):
                todo.append((req.name, tuple(req.extras)))
    found.pop(_key(root), None)
    return found


def main() -> None:
    pins = tree("drillbook", ("test",))
    out = Path(__file__).resolve().parents[1] / "constraints.txt"
    out.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    print(f"{out}: {len(pins)} pins")


if __name__ == "__main__":
    main()
