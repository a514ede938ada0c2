"""Running PostgreSQL's own tools (pg_dump, pg_restore) from the control machine.

The tools do the heavy lifting; this module finds a version that can read the
server (a pg_dump older than the server refuses to dump it), passes the
password through the environment rather than argv, and makes a tool stoppable:
it runs in its own process group, so Ctrl-C reaches drillbook alone, which
then terminates the tool and its parallel workers before the drill unwinds
(and, say, drops a half-restored scratch database).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drillbook.backup.errors import BackupFailed
from drillbook.core.errors import ConfigError

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Tool:
    """A PostgreSQL client binary and its major version, to match it against the server's."""

    path: Path
    version: str  # "pg_dump (PostgreSQL) 15.18"
    major: int


def tool_version(path: Path) -> Tool:
    """Run ``<tool> --version``; :class:`ConfigError` when it does not run or the version is unreadable."""
    try:
        text = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"{path} does not run: {exc}") from exc
    match = _VERSION_RE.search(text)
    if not match:
        raise ConfigError(f"cannot tell the version of {path} from {text!r}")
    return Tool(path=path, version=text.splitlines()[0], major=int(match.group(1)))


def find_tool(name: str, min_major: int, bin_dir: str | None = None) -> Tool:
    """``name`` of major version >= ``min_major``: from ``bin_dir``, Debian's versioned dirs, or PATH."""
    candidates: list[Path] = []
    if bin_dir:
        candidates.append(Path(bin_dir) / name)
    else:
        versioned = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_dir_major)
        exact = [p for p in versioned if _dir_major(p) == min_major]
        newer = [p for p in versioned if _dir_major(p) > min_major]
        candidates += exact + newer
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    seen: list[str] = []
    for path in candidates:
        if not path.exists():
            continue
        tool = tool_version(path)
        if tool.major >= min_major:
            return tool
        seen.append(f"{path} ({tool.major})")
    where = f" in {bin_dir}" if bin_dir else ""
    raise ConfigError(
        f"no {name}{where} of version >= {min_major}"
        + (f" (found {', '.join(seen)})" if seen else "")
        + f"; install postgresql-client-{min_major} or set backup_pg_bin_dir"
    )


def _dir_major(path: Path) -> int:
    try:
        return int(path.parts[-3])
    except (ValueError, IndexError):
        return 0


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    what: str,
    timeout_s: float | None = None,
    grace_s: float = 5.0,
) -> float:
    """Run a tool to completion and return its duration; a non-zero exit is :class:`BackupFailed`.

    Any exception while waiting (an interrupt, a timeout) terminates the tool's
    whole process group first, then propagates.
    """
    with tempfile.TemporaryFile(mode="w+", prefix="drillbook-tool-") as errfile:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errfile,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout_s)
        except BaseException:
            stop_group(proc, grace_s)
            raise
        duration = time.monotonic() - t0
        if rc != 0:
            errfile.seek(0)
            lines = [line.strip() for line in errfile.read().splitlines() if line.strip()]
            detail = _pick_error(lines) or f"exit code {rc}"
            raise BackupFailed(f"{what} failed: {detail}")
        return duration


def stop_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; never raises."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # workers forked by a parallel pg_restore share the group: make sure none is left
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _pick_error(lines: list[str]) -> str:
    """The most telling stderr line: the first ``error:`` line, else the last line."""
    for line in lines:
        if "error:" in line.lower() or "fatal:" in line.lower():
            return line
    return lines[-1] if lines else ""
