"""A Locust plugin that writes every request as one JSON line: background traffic for other drills.

    locust -f drillbook/load/plugin.py,drillbook/load/request_log.py,locustfile.py \\
        --drillbook-request-log requests.jsonl ...

The load drill judges per-second records (``shape.py``); a chaos drill needs each
request with the moment it was sent, to count what users saw between the fault and
the recovery. Runs inside Locust's process, like ``shape.py``: nothing from the
control side is imported here.
"""

from __future__ import annotations

import json
from typing import IO, Any

from locust import events

_out: IO[str] | None = None


def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("drillbook request log", "one JSON line per request (drillbook.load)")
    group.add_argument("--drillbook-request-log", default="", help="Append every request here (JSON lines)")


def _on_init(environment: Any, **_kw: Any) -> None:
    global _out
    path = getattr(environment.parsed_options, "drillbook_request_log", "")
    if path:
        _out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the run


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_kw: Any,
) -> None:
    if _out is None:
        return
    row = {
        "wall": start_time,
        "endpoint": f"{request_type} {name}",
        "status": getattr(response, "status_code", None) or None,
        "ms": round(float(response_time), 3),
        "error": None if exception is None else type(exception).__name__,
    }
    _out.write(json.dumps(row) + "\n")


def _on_quitting(**_kw: Any) -> None:
    if _out is not None:
        _out.close()


_HOOKS: list[tuple[Any, Any]] = [
    (events.init_command_line_parser, _add_arguments),
    (events.init, _on_init),
    (events.request, _on_request),
    (events.quitting, _on_quitting),
]
for _hook, _listener in _HOOKS:
    _hook.add_listener(_listener)
