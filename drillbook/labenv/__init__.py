"""The lab environment: provisioning the lab on this machine and building its releases.

"Lab" names four things, kept apart by their names:

- ``inventory/lab/``: the lab *inventory* (every host is localhost, ports from
  ``DRILLBOOK_LAB_PORT_BASE``);
- ``lab/``: the *reference service* (the FastAPI app ``refservice`` and its
  migrations) that the lab deploys; it imports nothing from drillbook;
- ``inv lab.*`` (drillbook/tasks/lab.py): the lab *tasks*;
- :mod:`drillbook.labenv` (this package): the Python that brings the lab up
  (:mod:`~drillbook.labenv.provision`) and builds the reference service's release
  artifact (:mod:`~drillbook.labenv.release`).
"""

from drillbook.labenv.provision import LabStatus, artifact_path, build_release, down, status, up

__all__ = ["LabStatus", "artifact_path", "build_release", "down", "status", "up"]
