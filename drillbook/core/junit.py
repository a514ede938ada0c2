"""JUnit XML for CI systems: one test suite per drill, one test case per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drillbook.core.journal import Journal


def write_junit(journal: Journal, path: Path) -> None:
    """Write ``journal`` as JUnit XML; an error verdict is an <error> on a synthetic case."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
