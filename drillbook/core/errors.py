"""One exception hierarchy for the whole toolkit.

The task layer turns any of these into one clear line on stderr and an exit code;
a traceback is shown only with ``--debug``::

    DrillbookError                 exit 2  something drillbook could not do
     ├── ConfigError               exit 2  bad inventory, threshold or option
     ├── TargetUnreachable         exit 2  a host or service cannot be reached
     ├── AnsibleFailed             exit 2  a playbook task failed on a host
     ├── LockHeld                  exit 2  another drill runs against this inventory
     ├── WrongDatabase             exit 2  a command acted on another database than drillbook named
     ├── CheckFailed               exit 1  a measurement broke a threshold: the verdict is fail
     └── DrillInterrupted          exit 130  SIGINT/SIGTERM; the restore phase still ran
"""

from __future__ import annotations


class DrillbookError(Exception):
    """Base class: a failure the user can act on, reported as one line."""

    exit_code = 2


class ConfigError(DrillbookError):
    """The inventory, a threshold or a command-line option is wrong."""


class TargetUnreachable(DrillbookError):
    """A host, database, cache or URL named by the inventory cannot be reached."""


class AnsibleFailed(DrillbookError):
    """A playbook failed; the message names the task, the host and Ansible's own message."""

    def __init__(self, message: str, *, host: str | None = None, task: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.task = task


class LockHeld(DrillbookError):
    """Another drill holds this inventory's lock: two drills at once would spoil both measurements."""


class WrongDatabase(DrillbookError):
    """A command drillbook ran acted on (or read) another database than the one it was given.

    Not a failed check of the service: drillbook cannot judge a drill whose actions
    landed elsewhere, and it must stop at once, before the next step lands there too.
    The message names the database that changed and how to restore it.
    """


class CheckFailed(DrillbookError):
    """A drill stopped early because a check failed (for instance the steady state was not healthy)."""

    exit_code = 1


class DrillInterrupted(DrillbookError):
    """The operator pressed Ctrl-C or the drill received SIGTERM."""

    exit_code = 130
