"""Run a playbook through ansible-runner: stream progress, collect results, raise on failure.

Everything that happens on a host goes through here. Progress comes from
ansible-runner's event stream (task started, host ok/changed/failed), not from
parsing stdout; a failure becomes one :class:`AnsibleFailed` line naming the
task, the host and Ansible's own message; an unreachable host becomes
:class:`TargetUnreachable`. Ctrl-C cancels the playbook through runner's
``cancel_callback`` so ansible-playbook stops cleanly before the drill unwinds.

Nothing leaves this module unredacted: progress lines, failure messages and the
task results handed to callers pass through :mod:`drillbook.core.redact`, with
the inventory's own secret values learned first. A command that is not
installed on a host becomes "needs `X`, which is not installed on HOST".

The user's Ansible settings win. drillbook does not point ``ANSIBLE_CONFIG`` at
its own file: the run gets the configuration file Ansible itself would find for
the user (``$ANSIBLE_CONFIG``, ``./ansible.cfg``, ``~/.ansible.cfg``,
``/etc/ansible/ansible.cfg``), and drillbook's defaults (:data:`DRILLBOOK_DEFAULTS`)
are added as ``ANSIBLE_*`` variables only for settings that neither that file
nor the environment sets. Host key checking is never turned off here: the lab
turns it off for itself in its inventory. drillbook's roles are appended to the
user's ``roles_path``, since its playbooks need them.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drillbook.core import interrupts
from drillbook.core.errors import AnsibleFailed, DrillInterrupted, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.core.paths import PLAYBOOKS, ROLES
from drillbook.core.redact import redact, redact_text, remember_inventory

ProgressFn = Callable[[str], None]


@dataclass
class TaskResult:
    """One host's result for one task, as ansible-runner reported it."""

    host: str
    task: str
    role: str
    status: str  # ok | changed | failed | skipped | unreachable
    res: dict[str, Any]
    at: float  # wall clock (time.time()) when the event was received


@dataclass
class PlaybookResult:
    """What a playbook did: per-task results, per-host stats, timing."""

    playbook: str
    status: str
    rc: int
    started_at: float
    finished_at: float
    results: list[TaskResult] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds from the playbook's start to its end."""
        return self.finished_at - self.started_at

    @property
    def changed(self) -> int:
        """How many task results changed something (0 on an idempotent second run)."""
        return sum(self.stats.get("changed", {}).values())

    def for_task(self, name: str) -> list[TaskResult]:
        """Results of tasks whose name contains ``name`` (ok or changed)."""
        return [r for r in self.results if name in r.task and r.status in ("ok", "changed")]


class _EventCollector:
    """Turns ansible-runner events into progress lines and :class:`TaskResult` rows."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self._announced: set[str] = set()
        self.results: list[TaskResult] = []
        self.failures: list[TaskResult] = []
        self.unreachable: list[TaskResult] = []
        self.stats: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind.startswith("runner_on_") and kind != "runner_on_start":
            res = data.get("res", {}) or {}
            status = {
                "runner_on_ok": "changed" if res.get("changed") else "ok",
                "runner_on_failed": "failed",
                "runner_on_skipped": "skipped",
                "runner_on_unreachable": "unreachable",
            }.get(kind, kind.removeprefix("runner_on_"))
            row = TaskResult(
                host=str(data.get("host", "")),
                task=str(data.get("task", "")),
                role=str(data.get("role", "") or ""),
                status=status,
                res=redact(res),
                at=time.time(),
            )
            self.results.append(row)
            self._announce(row, data)
            if status == "failed" and not data.get("ignore_errors"):
                self.failures.append(row)
            elif status == "unreachable":
                self.unreachable.append(row)
        elif kind == "playbook_on_stats":
            self.stats = {k: data.get(k, {}) or {} for k in ("ok", "changed", "failures", "dark", "skipped")}
        return True

    def _announce(self, row: TaskResult, data: dict[str, Any]) -> None:
        """One progress line per task that did something (skipped tasks stay quiet)."""
        key = str(data.get("task_uuid") or row.task)
        if self.progress is None or row.status == "skipped" or key in self._announced:
            return
        self._announced.add(key)
        name = f"{row.role} : {row.task}" if row.role else row.task
        self.progress(redact_text(f"{name} [{row.status} on {row.host}]"))


GENERIC_MESSAGES = ("non-zero return code", "MODULE FAILURE")

# "[Errno 2] No such file or directory: b'socat'" (command module, argv or cmd)
_NO_SUCH_FILE = re.compile(r"No such file or directory: b?['\"]([^'\"]+)['\"]")
# "/bin/sh: 1: socat: not found", "bash: socat: command not found" (shell, rc 127)
_NOT_FOUND = re.compile(r"(?:^|[\s:])([\w./+-]+): (?:command )?not found", re.MULTILINE)


def missing_executable(res: Mapping[str, Any]) -> str | None:
    """The executable a failed task could not start, if that is why it failed."""
    text = "\n".join(str(res.get(k) or "") for k in ("msg", "stderr", "module_stderr"))
    match = _NO_SUCH_FILE.search(text)
    if match and ("Errno 2" in text or res.get("rc") in (2, 127)):
        cmd = res.get("cmd")
        first = cmd[0] if isinstance(cmd, list) and cmd else None
        # chdir or a file argument may be what is missing; name the program only when it is the one
        if first is None or first == match.group(1) or str(first).endswith("/" + match.group(1)):
            return match.group(1)
    if str(res.get("msg", "")).startswith("Error executing command") and res.get("rc") == errno.ENOENT:
        # ansible-core >= 2.19 says only this, with the errno as rc: exec found no such program
        cmd = res.get("cmd")
        words = cmd if isinstance(cmd, list) else str(cmd or "").split()
        if words:
            return str(words[0])
    if res.get("rc") == 127:
        found = _NOT_FOUND.search(text)
        if found:
            return found.group(1)
    return None


def _message(res: Mapping[str, Any]) -> str:
    """Ansible's own failure text, shortened to its first meaningful line.

    A command's generic "non-zero return code" says nothing: its stderr does.
    """
    exe = missing_executable(res)
    if exe:
        return f"needs `{exe}`, which is not installed"
    keys = ["msg", "stderr", "module_stderr", "stdout"]
    if any(str(res.get("msg", "")).startswith(g) for g in GENERIC_MESSAGES) and res.get("stderr"):
        keys = ["stderr", "msg"]
    for key in keys:
        text = str(res.get(key) or "").strip()
        if text:
            lines = [line for line in text.splitlines() if line.strip()]
            return lines[-1] if key in ("stderr", "module_stderr") else lines[0]
    return json.dumps(res)[:200]


def run_playbook(
    inventory: Inventory,
    playbook: str,
    *,
    limit: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    artifact_dir: Path | None = None,
    cancellable: bool = True,
) -> PlaybookResult:
    """Run ``playbooks/<playbook>`` against ``inventory`` and return its results.

    Raises :class:`AnsibleFailed` or :class:`TargetUnreachable` when any host failed,
    and :class:`DrillInterrupted` when Ctrl-C cancelled it (``cancellable=False`` lets a
    restore playbook finish regardless).
    """
    import ansible_runner

    path = Path(playbook) if Path(playbook).is_absolute() else PLAYBOOKS / playbook
    remember_inventory(inventory)
    private = Path(tempfile.mkdtemp(prefix="drillbook-runner-"))
    collector = _EventCollector(progress)
    started = time.time()
    try:
        with interrupts.deferred():
            runner = ansible_runner.run(
                private_data_dir=str(private),
                artifact_dir=str(artifact_dir) if artifact_dir else None,
                playbook=str(path),
                inventory=str(inventory.path),
                limit=limit,
                tags=",".join(tags) if tags else None,
                extravars=dict(extravars or {}),
                envvars=ansible_env(),
                quiet=True,
                event_handler=collector,
                cancel_callback=(interrupts.cancel_requested if cancellable else (lambda: False)),
                settings={"suppress_ansible_output": True},
            )
        finished = time.time()
    finally:
        if artifact_dir is None:
            shutil.rmtree(private, ignore_errors=True)
    result = PlaybookResult(
        playbook=path.name,
        status=str(runner.status),
        rc=int(runner.rc or 0),
        started_at=started,
        finished_at=finished,
        results=collector.results,
        stats=collector.stats,
    )
    if runner.status == "canceled":
        raise DrillInterrupted(f"{path.name} cancelled by {interrupts.requested() or 'request'}")
    if collector.unreachable:
        row = collector.unreachable[0]
        raise TargetUnreachable(redact_text(f"host {row.host} is unreachable: {_message(row.res)}"))
    if collector.failures:
        row = collector.failures[0]
        where = f"{row.role} : {row.task}" if row.role else row.task
        message = _message(row.res)
        if message.startswith("needs `"):
            message += f" on {row.host}"
        raise AnsibleFailed(
            redact_text(f"{path.name}: task '{where}' failed on {row.host}: {message}"),
            host=row.host,
            task=row.task,
        )
    if runner.status != "successful":
        tail = _stdout_tail(runner)
        raise AnsibleFailed(
            redact_text(f"{path.name} did not complete ({runner.status}, rc={runner.rc}){tail}")
        )
    return result


@dataclass(frozen=True)
class AnsibleDefault:
    """One drillbook default: Ansible's setting name, the variable that sets it, drillbook's value.

    ``ini`` lists more (section, key) places that count as the user having said
    something (plugin options such as ``[ssh_connection] pipelining``).
    """

    setting: str
    env: str
    value: str
    ini: tuple[tuple[str, str], ...] = ()


#: What drillbook's playbooks are written for, used only where the user's settings say nothing.
DRILLBOOK_DEFAULTS: tuple[AnsibleDefault, ...] = (
    AnsibleDefault("DEFAULT_FORKS", "ANSIBLE_FORKS", "10"),
    AnsibleDefault("RETRY_FILES_ENABLED", "ANSIBLE_RETRY_FILES_ENABLED", "False"),
    # Plays say gather_facts: false; facts cost seconds per host and no role needs them.
    AnsibleDefault("DEFAULT_GATHERING", "ANSIBLE_GATHERING", "explicit"),
    AnsibleDefault("INTERPRETER_PYTHON", "ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
    # Fewer round trips per task over SSH; tasks that become postgres need no world-readable temp files.
    AnsibleDefault(
        "ANSIBLE_PIPELINING",
        "ANSIBLE_PIPELINING",
        "True",
        ini=(("ssh_connection", "pipelining"), ("connection", "pipelining")),
    ),
    AnsibleDefault("ANSIBLE_NOCOWS", "ANSIBLE_NOCOWS", "True"),
    AnsibleDefault("LOCALHOST_WARNING", "ANSIBLE_LOCALHOST_WARNING", "False"),
)


def user_ansible_config() -> Path | None:
    """The ansible.cfg Ansible would use for the user here (``$ANSIBLE_CONFIG``, ./, ~/, /etc/ansible/)."""
    from ansible.config.manager import find_ini_config_file

    found = find_ini_config_file()
    return Path(found).resolve() if found else None


def ansible_env() -> dict[str, str]:
    """The environment of an ansible-playbook run: the user's settings, then drillbook's defaults.

    ansible-runner starts ansible-playbook in its own private directory, where
    Ansible would not find the user's ./ansible.cfg: the file found from here
    is passed on explicitly.
    """
    from ansible.config.manager import ConfigManager

    cfg = user_ansible_config()
    manager = ConfigManager(str(cfg) if cfg else None)
    ini = configparser.ConfigParser(interpolation=None, strict=False)
    if cfg:
        with contextlib.suppress(configparser.Error):  # Ansible itself reports a broken file
            ini.read(cfg)
    env: dict[str, str] = {"ANSIBLE_NOCOLOR": "1"}
    if cfg:
        env["ANSIBLE_CONFIG"] = str(cfg)
    for default in DRILLBOOK_DEFAULTS:
        _, origin = manager.get_config_value_and_origin(default.setting)
        said = origin != "default" or any(ini.has_option(sec, key) for sec, key in default.ini)
        said = said or any(
            env_name in os.environ
            for env_name in (default.env, *(f"ANSIBLE_{k.upper()}" for _, k in default.ini))
        )
        if not said:
            env[default.env] = default.value
    # ansible-runner turns host key checking off unless ANSIBLE_HOST_KEY_CHECKING is
    # set: pass on what the user's settings say (Ansible's default: on). An
    # inventory can still turn it off for its hosts (the lab: ansible_host_key_checking).
    if "ANSIBLE_HOST_KEY_CHECKING" not in os.environ:
        checking, _ = manager.get_config_value_and_origin("HOST_KEY_CHECKING")
        env["ANSIBLE_HOST_KEY_CHECKING"] = "True" if checking in (True, "True", "true", "1", 1) else "False"
    roles, origin = manager.get_config_value_and_origin("DEFAULT_ROLES_PATH")
    user_roles = [str(r) for r in (roles or [])] if origin != "default" else []
    env["ANSIBLE_ROLES_PATH"] = os.pathsep.join([*user_roles, str(ROLES)])
    return env


def _stdout_tail(runner: Any) -> str:
    """The last line ansible-playbook printed, for failures that happen before any task (syntax errors)."""
    try:
        text = runner.stdout.read()
    except Exception:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    return redact_text(f": {(errors or lines or [''])[-1]}") if lines else ""
