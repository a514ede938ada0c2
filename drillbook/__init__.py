"""drillbook: a production-readiness checklist whose every line is a drill that runs for real.

The package is layered (see docs/architecture.md): ``drillbook.core`` holds what every
drill shares (inventory, Ansible runner, drill lifecycle and journal, probes, HAProxy
client, metrics); each capability module builds one kind of drill on top of it; and
``drillbook.tasks`` is the thin Invoke layer that parses options and sets exit codes.
"""

__version__ = "0.1.0"
