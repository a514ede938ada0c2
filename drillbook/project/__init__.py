"""The user's ops project: ``drillbook init`` scaffolds one (see :mod:`drillbook.project.scaffold`)."""

from drillbook.project.scaffold import FileOutcome, init_project

__all__ = ["FileOutcome", "init_project"]
