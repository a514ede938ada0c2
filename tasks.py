"""Invoke entry point: every task lives in drillbook/tasks/ (run ``inv --list``)."""

from drillbook.tasks import namespace as ns

__all__ = ["ns"]
