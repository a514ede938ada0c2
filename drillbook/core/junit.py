"""JUnit XML for CI systems: one test suite per drill, one test case per check.

CI systems keep and show these files to everyone with access to the pipeline,
so the journal is redacted before it becomes XML and the file is written with
the report file mode (0600 unless ``DRILLBOOK_REPORT_MODE`` says otherwise).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from drillbook.core.journal import write_atomic

if TYPE_CHECKING:
    from drillbook.core.journal import Journal


def write_junit(journal: Journal, path: Path) -> None:
    """Write ``journal`` as JUnit XML; an error verdict is an <error> on a synthetic case."""
    journal = journal.redacted()
    suite = ET.Element(
        "testsuite",
        name=journal.drill,
        tests=str(max(1, len(journal.checks))),
        failures=str(len(journal.failed_checks)),
        errors="1" if journal.verdict == "error" else "0",
        timestamp=journal.started_at,
        time=f"{sum(p.duration_s for p in journal.phases if '/' not in p.name):.3f}",
    )
    for check in journal.checks:
        case = ET.SubElement(suite, "testcase", classname=journal.drill, name=check.name)
        if not check.ok:
            failure = ET.SubElement(case, "failure", message=f"{check.value} (limit {check.limit})")
            failure.text = check.detail
    if journal.verdict == "error" or not journal.checks:
        case = ET.SubElement(suite, "testcase", classname=journal.drill, name="drill")
        if journal.verdict == "error":
            ET.SubElement(case, "error", message=journal.error or "error")
    props = ET.SubElement(suite, "properties")
    for key, value in journal.measurements.items():
        ET.SubElement(props, "property", name=key, value=str(value))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    write_atomic(path, "<?xml version='1.0' encoding='utf-8'?>\n" + xml + "\n")
