"""The drill scorecard: journals under a report root read back as verdicts, trends and metrics.

- :mod:`~drillbook.core.store` (in core) finds and reads journals (an unreadable one is listed, not fatal);
- :mod:`~drillbook.report.scorecard` the latest verdict per drill, key figure and freshness;
- :mod:`~drillbook.report.html` one static HTML page with trend plots (:mod:`~drillbook.report.plots`);
- :mod:`~drillbook.report.prom` Prometheus text exposition for node-exporter's textfile collector.
"""

from drillbook.report.html import write_html
from drillbook.report.prom import write_metrics
from drillbook.report.scorecard import build_scorecard, render_terminal

__all__ = ["build_scorecard", "render_terminal", "write_html", "write_metrics"]
