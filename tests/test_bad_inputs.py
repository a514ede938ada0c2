"""Bad input gives one clear line and exit 2, never a traceback (docs/safety.md lists them).

Each case runs ``inv`` in a subprocess with no terminal on stdin, as a user or a
CI job would, and checks what they would see: the exit code, the one line on
stderr, and no "Traceback" anywhere.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from clirun import Ran, inv, lab_copy

from drillbook.core.console import SafeConsole

#: (argv, the one stderr line expected). {tmp} is the test's temp dir.
CASES = [
    (["load.run", "--rps", "abc"], "error: --rps must be a number, got 'abc'"),
    (["load.run", "--headroom", "abc"], "error: --headroom must be a number, got 'abc'"),
    (["load.run", "--processes", "abc"], "error: --processes must be a whole number, got 'abc'"),
    (["load.run", "--headroom", "nan"], "error: --headroom must be a finite number, got 'nan'"),
    (["load.run", "--rps", "inf"], "error: --rps must be a finite number, got 'inf'"),
    (["load.run", "--rps", "-5"], "error: --rps must be a positive rate in requests/s, got -5"),
    (["load.run", "--headroom", "-0.5"], "error: --headroom must be 0 or more (0.2 = 20 % above the peak)"),
    (["load.run", "--processes", "100000"], "error: --processes must be <= 1024, got 100000"),
    (["load.run", "--duration", "nan"], "error: --duration must be a finite number, got 'nan'"),
    (["lab.release", "9.9.9", "--error-rate", "abc"], "error: --error-rate must be a number, got 'abc'"),
    (["lab.release", "9.9.9", "--error-rate", "2"], "error: --error-rate must be <= 1, got 2"),
    (["lab.release", "9.9.9", "--latency-ms", "-1"], "error: --latency-ms must be >= 0, got -1"),
    (["chaos.kill-db", "--duration", "-1"], "error: --duration must be >= 0.1, got -1"),
    (["chaos.kill-redis", "--traffic", "nan"], "error: --traffic must be a finite number, got 'nan'"),
    (["deploy.canary", "2.0.0", "--window", "inf"], "error: --window must be a finite number, got 'inf'"),
    (["backup.prune", "--keep-last", "0"], "error: --keep-last must be >= 1, got 0"),
    (["report.list", "--limit", "many"], "error: --limit must be a whole number, got 'many'"),
    (
        ["smoke", "--junit", "{tmp}/a-file/verdict.xml"],
        "error: --junit {tmp}/a-file/verdict.xml: cannot write there (a parent is a file)",
    ),
    (
        ["smoke", "--report-dir", "{tmp}/a-file/reports"],
        "error: --report-dir {tmp}/a-file/reports: cannot write there (a parent is a file)",
    ),
    (
        ["load.report", "-r", "{tmp}/reports"],
        "error: {tmp}/reports/20260101T000000Z-load.run/journal.json is not a readable journal "
        "(JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    ),
    (
        ["runbook.run", "db-outage"],
        "error: runbook.run asks at every step and stdin is not a terminal: "
        "run it in a terminal, or pass --yes to run every step without asking",
    ),
    (["runbook.show", "[/oops]"], "error: no runbook '[/oops]' in runbooks (known: "),
    (["smoke", "-i", "{tmp}/[/x]-inventory"], "error: inventory {tmp}/[/x]-inventory does not exist"),
]


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory\n")
    bad = tmp_path / "reports" / "20260101T000000Z-load.run"
    bad.mkdir(parents=True)
    (bad / "journal.json").write_text("{not json")
    return tmp_path


def _one_line(ran: Ran, expected: str) -> None:
    assert "Traceback" not in ran.stdout + ran.stderr, ran.describe()
    assert ran.rc == 2, ran.describe()
    assert len(ran.err_lines) == 1, ran.describe()
    assert ran.err_lines[0].startswith(expected), ran.describe()


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str, tmp: Path) -> None:
    ran = inv(*(a.replace("{tmp}", str(tmp)) for a in argv), env={"DRILLBOOK_REPORT_DIR": str(tmp / "r")})
    _one_line(ran, expected.replace("{tmp}", str(tmp)))
    assert not (tmp / "r").exists() or not list((tmp / "r").iterdir()), "a drill started"


def test_a_sign_off_by_a_name_with_brackets_is_written_and_shown(tmp_path: Path) -> None:
    who = "[/x] mallory [bold]"
    ran = inv(
        "checklist.sign", "sec-dependency-review", "--by", who, "--note", "[red]n[/]", "-r", str(tmp_path)
    )
    assert ran.rc == 0 and f"by {who} at" in ran.stdout, ran.describe()
    ran = inv("checklist", "-r", str(tmp_path))
    assert "Traceback" not in ran.stdout + ran.stderr, ran.describe()
    assert f"signed by {who}" in ran.stdout and "[red]n[/]" in ran.stdout, ran.describe()


def test_tool_messages_keep_their_brackets() -> None:
    """Ansible's own "[failed on host]" was swallowed as a style tag; a stray "[/x]" crashed."""
    buf = io.StringIO()
    console = SafeConsole(file=buf, width=200, color_system=None)
    console.print(
        "[red]error:[/red] deploy.yml: task 'Drain' failed on lb: Error executing command [failed on host]"
    )
    console.print("[yellow]![/yellow] runbook [/x] and [bold]bold[/bold] [Errno 111]")
    assert buf.getvalue().splitlines() == [
        "error: deploy.yml: task 'Drain' failed on lb: Error executing command [failed on host]",
        "! runbook [/x] and bold [Errno 111]",
    ]


@pytest.mark.slow
def test_recover_ends_error_at_once_on_an_unreachable_host(tmp_path: Path) -> None:
    """chaos.recover waited chaos_recovery_limit_s and printed six FAIL checks for a host it never reached."""
    inventory = lab_copy(tmp_path / "inventory", "chaos_recovery_limit_s: 900\n")
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["vars"].update({"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9})
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    ran = inv("chaos.recover", "-i", str(inventory), "-r", str(tmp_path / "reports"), timeout=600)
    assert ran.rc == 2, ran.describe()
    assert "chaos.recover: ERROR" in ran.stdout and "host lab-db is unreachable" in ran.stdout, ran.describe()
    assert ran.seconds < 300, ran.describe()  # it used to wait the whole recovery limit (900 s here)
    journal = json.loads(next((tmp_path / "reports").glob("*-chaos.recover/journal.json")).read_text())
    assert journal["verdict"] == "error"
    assert not [c for c in journal["checks"] if c["name"].startswith("healthy:")], journal["checks"]
