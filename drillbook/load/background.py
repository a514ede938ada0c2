"""The user's locustfile as background traffic for another drill, request by request.

A chaos drill must show what users saw during the outage. A service profile can
declare that traffic as weighted requests (core/traffic.py), or point at the
team's own locustfile (``service_traffic.locustfile``): then Locust runs it as a
child process, paced to an arrival rate by drillbook's plugin, and
``request_log.py`` writes every request as a JSON line that this class reads
back as :class:`~drillbook.core.traffic.Outcome` records, on the drill's
monotonic clock. It answers ``start``/``stop``/``snapshot`` like
:class:`~drillbook.core.traffic.Traffic`, so the drill watches either alike.

What a locustfile cannot give: the writes the service acknowledged with the
values to look them up afterwards; with a locustfile, "nothing lost" rests on
the profile's marker alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from drillbook.core.errors import TargetUnreachable
from drillbook.core.traffic import Outcome
from drillbook.load import runner
from drillbook.load.plan import resolve_locustfile

REQUEST_LOG = Path(__file__).with_name("request_log.py")
#: The pacing plan's length: far beyond any drill; the drill stops Locust itself.
_UNTIL_STOPPED_S = 24 * 3600


class LocustTraffic:
    """``locustfile`` at ``rps`` arrivals per second against ``host`` until :meth:`stop`."""

    def __init__(self, locustfile: Path, host: str, rps: float, directory: Path) -> None:
        self.locustfile = locustfile
        self.host = host
        self.rps = rps
        self.files = runner.LocustFiles(directory)
        self.log = directory / "background_requests.jsonl"
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0.0  # wall - monotonic, to put Locust's wall times on the drill's clock
        self._read = 0
        self._outcomes: list[Outcome] = []

    def command(self) -> list[str]:
        """Locust headless, drillbook's pacing plugin and request log ahead of the user's locustfile."""
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            f"{runner.PLUGIN},{REQUEST_LOG},{self.locustfile}",
            "--headless",
            "--host",
            self.host,
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            "2",
            "--drillbook-rps",
            f"{self.rps:g}",
            "--drillbook-duration",
            str(_UNTIL_STOPPED_S),
            "--drillbook-request-log",
            str(self.log),
        ]

    def start(self) -> LocustTraffic:
        if self.rps <= 0:
            return self
        self.files.directory.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self._offset = time.time() - time.monotonic()
        self._proc = runner.start(self.command(), self.files)
        return self

    def snapshot(self) -> list[Outcome]:
        """Every request Locust has logged so far (read incrementally)."""
        if not self.log.exists():
            return list(self._outcomes)
        with self.log.open(encoding="utf-8") as f:
            f.seek(self._read)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits for the next read
        self._read += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            self._outcomes.append(self._outcome(json.loads(line)))
        return list(self._outcomes)

    def stop(self) -> list[Outcome]:
        if self._proc is not None:
            runner.stop(self._proc, grace_s=10.0)
            if self._proc.returncode not in (0, -2, 130) and not self._outcomes and not self.snapshot():
                raise TargetUnreachable(
                    f"background traffic: Locust exited {self._proc.returncode} "
                    f"without a request (its log: {self.files.log})"
                )
        return self.snapshot()

    def _outcome(self, row: dict[str, object]) -> Outcome:
        wall = float(row["wall"] or 0.0)  # type: ignore[arg-type]
        status = row.get("status")
        error = row.get("error")
        return Outcome(
            t=wall - self._offset,
            wall=wall,
            endpoint=str(row["endpoint"]),
            status=int(status) if isinstance(status, int) else None,
            latency_ms=float(row["ms"]),  # type: ignore[arg-type]
            ok=error is None,
            error=str(error) if error is not None else None,
        )


def background_traffic(locustfile: str, host: str, rps: float, directory: Path) -> LocustTraffic:
    """The user's locustfile (a path as the profile gives it) as a drill's background traffic.

    One line (ConfigError) when the file does not exist; Locust starts at :meth:`LocustTraffic.start`.
    """
    return LocustTraffic(resolve_locustfile(locustfile), host, rps, directory)
