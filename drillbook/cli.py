"""``drillbook`` console script: the same namespace as ``inv``, usable outside a checkout."""

from __future__ import annotations

from invoke.program import Program

from drillbook import __version__
from drillbook.tasks import namespace

program = Program(namespace=namespace, version=__version__, name="drillbook", binary="drillbook")


def main() -> None:
    program.run()
