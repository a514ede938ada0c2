"""Run a playbook through ansible-runner: stream progress, collect results, raise on failure.

Everything that happens on a host goes through here. Progress comes from
ansible-runner's event stream (task started, host ok/changed/failed), not from
parsing stdout; a failure becomes one :class:`AnsibleFailed` line naming the
task, the host and Ansible's own message; an unreachable host becomes
:class:`TargetUnreachable`. Ctrl-C cancels the playbook through runner's
``cancel_callback`` so ansible-playbook stops cleanly before the drill unwinds.
"""

from __future__ import annotations

import json
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
from drillbook.core.paths import ANSIBLE_CFG, PLAYBOOKS, ROLES

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
                res=res,
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
        self.progress(f"{name} [{row.status} on {row.host}]")


GENERIC_MESSAGES = ("non-zero return code", "MODULE FAILURE")


def _message(res: Mapping[str, Any]) -> str:
    """Ansible's own failure text, shortened to its first meaningful line.

    A command's generic "non-zero return code" says nothing: its stderr does.
    """
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
                envvars={
                    "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
                    "ANSIBLE_ROLES_PATH": str(ROLES),
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_LOCALHOST_WARNING": "false",
                },
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
        raise TargetUnreachable(f"host {row.host} is unreachable: {_message(row.res)}")
    if collector.failures:
        row = collector.failures[0]
        where = f"{row.role} : {row.task}" if row.role else row.task
        raise AnsibleFailed(
            f"{path.name}: task '{where}' failed on {row.host}: {_message(row.res)}",
            host=row.host,
            task=row.task,
        )
    if runner.status != "successful":
        tail = _stdout_tail(runner)
        raise AnsibleFailed(f"{path.name} did not complete ({runner.status}, rc={runner.rc}){tail}")
    return result


def _stdout_tail(runner: Any) -> str:
    """The last line ansible-playbook printed, for failures that happen before any task (syntax errors)."""
    try:
        text = runner.stdout.read()
    except Exception:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    return f": {(errors or lines or [''])[-1]}" if lines else ""
