"""drillbook: a production-readiness checklist whose every line is a drill that runs for real.

The package is layered (see docs/architecture.md; tests/test_layers.py enforces it):
``drillbook.core`` holds what every drill shares (inventory, Ansible runner, drill
lifecycle and journal, probes, HAProxy client, metrics); each capability package
(backup, chaos, canary, ...) builds one kind of drill on top of it, side by side;
``drillbook.app`` composes them (the demo, the registries the checklist reads); and
``drillbook.tasks`` is the thin Invoke layer that parses options and sets exit codes.
"""

__version__ = "0.1.0"
