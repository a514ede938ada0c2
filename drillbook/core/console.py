"""Terminal output: one rich console for the whole process, on stderr for progress."""

from __future__ import annotations

import time

from rich.console import Console

#: Results and tables go to stdout; progress and errors to stderr so ``--json`` output stays clean.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow", "running": "cyan"}


class Progress:
    """Timestamped progress lines relative to a drill's start: ``[  3.2s] killing redis``."""

    def __init__(self, label: str = "", enabled: bool = True) -> None:
        self.t0 = time.monotonic()
        self.label = label
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.t0
            prefix = f"{self.label} " if self.label else ""
            err.print(f"[dim][{elapsed:6.1f}s][/dim] {prefix}{message}", markup=True, highlight=False)
