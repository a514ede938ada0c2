"""Every executable drillbook runs is installed by one of its roles or is a documented prerequisite.

A fresh machine once failed ``inv demo`` because ``playbooks/deploy.yml`` called
``socat``, which nothing installed. This test reads what the playbooks, roles
and drill code actually run (command/shell argv and ``cmd:``, the daemons that
``pidfile_daemon`` starts, ``subprocess`` calls and tool look-ups in
``drillbook/``), resolves role variables such as ``{{ redis_cli_bin }}``, and
checks each name against ``docs/prerequisites.yml``: either a package that a
role's apt list installs, a tool a role puts in place itself, or a documented
prerequisite of the hosts or the control machine. And a missing executable at
run time is named in the error, on a real playbook run.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbook.core.ansible import missing_executable, run_playbook
from drillbook.core.errors import AnsibleFailed
from drillbook.core.inventory import Inventory
from drillbook.core.paths import REPO_ROOT

PREREQUISITES = REPO_ROOT / "docs" / "prerequisites.yml"
VARIABLE_PROGRAMS: dict[str, str] = yaml.safe_load(PREREQUISITES.read_text())["variable_programs"]
COMMAND_MODULES = {
    "ansible.builtin.command",
    "command",
    "ansible.builtin.shell",
    "shell",
    "ansible.builtin.raw",
    "raw",
}
SHELL_MODULES = {"ansible.builtin.shell", "shell", "ansible.builtin.raw", "raw"}
# Words after which a shell command's program follows; builtins that are not programs.
SHELL_KEYWORDS = {"if", "then", "else", "elif", "while", "until", "do", "!", "time", "{", "nohup", "sudo"}
SHELL_WORDS = {
    "fi", "for", "in", "done", "case", "esac", "set", "echo", "printf", "exit", "return", "cd",
    "export", "test", "[", "[[", "]]", "]", "true", "false", "local", "read", "exec", "trap", "wait",
    "kill", "shift", "unset", "command", "}", ":", "source", ".", "umask", "check", "break",
    "continue",
}  # fmt: skip


def _yaml_files() -> Iterator[Path]:
    yield from sorted((REPO_ROOT / "playbooks").glob("*.yml"))
    yield from sorted((REPO_ROOT / "roles").glob("*/tasks/*.yml"))
    yield from sorted((REPO_ROOT / "roles").glob("*/handlers/*.yml"))
    yield from sorted((REPO_ROOT / "roles").glob("*/molecule/*/*.yml"))


def _role_vars() -> dict[str, Any]:
    """Every role's defaults and vars, flattened (role variables are role-prefixed, so no clash)."""
    out: dict[str, Any] = {}
    for path in sorted((REPO_ROOT / "roles").glob("*/[dv][ea]*/main.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        out.update(data)
    return out


def _tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from _tasks(node[key])


def _program(word: str, variables: dict[str, Any], depth: int = 0) -> list[str]:
    """The program(s) a first argv word names, through role variables and Jinja expressions."""
    word = word.strip()
    if depth > 5 or not word:
        return []
    whole = re.fullmatch(r"\{\{\s*([\w]+)\s*\}\}", word)
    if whole and whole.group(1) in VARIABLE_PROGRAMS:
        program = VARIABLE_PROGRAMS[whole.group(1)]
        return [] if program == "user" else [program]
    if whole:
        value = variables.get(whole.group(1))
        if value is None:
            return [f"unresolved:{word}"]
        if isinstance(value, list):
            return _program(str(value[0]), variables, depth + 1) if value else []
        return _program(str(value), variables, depth + 1)
    if "{{" in word and not word.rstrip().endswith("}}"):
        return [Path(word.rsplit("}}", 1)[1]).name]  # "{{ bin_dir }}/psql" -> psql
    if "{{" in word:
        # A Jinja expression building an argv: its list literals start with the program.
        found = re.findall(r"\[\s*(?:[\w.]+\s*~\s*)?'([^']+)'", word)
        if found:
            return [Path(f).name for f in found]
        inner = re.findall(r"\{\{\s*(\w+)", word)
        return [p for name in inner for p in _program("{{ " + name + " }}", variables, depth + 1)]
    return [Path(word).name]


def _shell_programs(script: str) -> list[str]:
    """First word of every simple command of a shell script (good enough for the roles' scripts)."""
    programs: list[str] = []
    script = re.sub(r"\{\{.*?\}\}", "TEMPLATED", script.replace("\\\n", " "), flags=re.S)
    programs += re.findall(r"\$\(\s*([\w./+-]+)", script)  # $(cmd ...), also inside quotes
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:
            tokens = line.split()
        at_start = True
        for token in tokens:
            if set(token) <= set(";|&()"):
                at_start = True
                continue
            if not at_start:
                continue
            if token in SHELL_KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
                continue  # `if cmd`, `VAR=x cmd`: the program comes next
            at_start = False
            if token in SHELL_WORDS or token.startswith(("$", "-", "<", ">")) or token.isdigit():
                continue
            if re.fullmatch(r"[\w./+-]+", token):
                programs.append(Path(token).name)
    return [p for p in programs if p != "TEMPLATED"]


def collect_ansible() -> dict[str, set[str]]:
    """program -> {file:task} for every command, shell and pidfile_daemon task of playbooks/ and roles/."""
    variables = _role_vars()
    found: dict[str, set[str]] = {}
    for path in _yaml_files():
        for task in _tasks(yaml.safe_load(path.read_text())):
            where = f"{path.relative_to(REPO_ROOT)}:{task.get('name', '?')}"
            programs: list[str] = []
            for module in COMMAND_MODULES & task.keys():
                args = task[module]
                if isinstance(args, str):
                    args = {"_raw": args}
                if not isinstance(args, dict):
                    continue
                if "argv" in args:
                    argv = args["argv"]
                    programs += _program(str(argv[0] if isinstance(argv, list) else argv), variables)
                script = args.get("cmd") or args.get("_raw")
                if script and module in SHELL_MODULES:
                    programs += _shell_programs(str(script))
                elif script:
                    programs += _program(str(script).split()[0], variables)
            daemon = task.get("pidfile_daemon")
            if isinstance(daemon, dict) and daemon.get("command"):
                cmd = daemon["command"]
                programs += _program(str(cmd[0] if isinstance(cmd, list) else cmd), variables)
            for program in programs:
                found.setdefault(program, set()).add(where)
    return found


def collect_python() -> dict[str, set[str]]:
    """program -> {file:line} for subprocess calls and tool look-ups in drillbook/ (the control machine)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "drillbook").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            names: list[str] = []
            if name in ("find_tool", "_tool", "which"):
                names = [
                    a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
                names = names[:1]
            elif (
                isinstance(func, ast.Attribute)
                and getattr(func.value, "id", "") == "subprocess"
                and name in ("run", "Popen", "check_output", "check_call", "call")
                and node.args
                and isinstance(node.args[0], ast.List)
                and node.args[0].elts
            ):
                first = node.args[0].elts[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
            for program in names:
                where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
                found.setdefault(Path(program).name, set()).add(where)
    return found


def collect_all() -> dict[str, set[str]]:
    found = collect_ansible()
    for program, where in collect_python().items():
        found.setdefault(program, set()).update(where)
    return found


def _role_packages() -> set[str]:
    """Packages the roles install: their *_packages defaults and apt tasks with a literal name list."""
    packages: set[str] = set()
    variables = _role_vars()
    for key, value in variables.items():
        if key.endswith("_packages") and isinstance(value, list):
            packages.update(
                re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(variables.get(m.group(1))), str(v))
                for v in value
            )
    for path in _yaml_files():
        for task in _tasks(yaml.safe_load(path.read_text())):
            apt = task.get("ansible.builtin.apt")
            if isinstance(apt, dict) and isinstance(apt.get("name"), list):
                packages.update(str(n) for n in apt["name"] if "{{" not in str(n))
    return packages


def _prerequisites() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PREREQUISITES.read_text())
    return data


def test_the_collector_sees_what_the_roles_run() -> None:
    """The collector itself: names known to be run are found, through variables and Jinja."""
    found = collect_all()
    for program in (
        "redis-cli",
        "haproxy",
        "redis-server",
        "psql",
        "sha1sum",  # the app role's virtualenv build (the service's own commands are inventory data)
        "tail",
        "systemctl",
        "pg_dump",
    ):
        assert program in found, program
    assert not [p for p in found if p.startswith("unresolved:")], [p for p in found if "unresolved" in p]


def test_every_executable_is_installed_by_a_role_or_a_documented_prerequisite() -> None:
    prereq = _prerequisites()
    by_role = prereq["installed_by_roles"]
    documented = {
        *by_role,
        *prereq["installed_by_role_tasks"],
        *prereq["host_prerequisites"],
        *prereq["control_prerequisites"],
    }
    missing = {p: sorted(w)[:3] for p, w in collect_all().items() if p not in documented}
    assert not missing, (
        f"executables neither installed by a role nor documented in {PREREQUISITES}: {missing}"
    )
    # every package named there is really in a role's package list
    packages = _role_packages()
    unknown = {exe: v["package"] for exe, v in by_role.items() if v["package"] not in packages}
    assert not unknown, f"packages no role installs: {unknown} (role packages: {sorted(packages)})"


def test_socat_is_not_needed() -> None:
    assert "socat" not in collect_all()


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to ask which package owns a file")
def test_the_package_map_matches_this_machine() -> None:
    """Where an executable is installed here, the package that owns it is the one documented."""
    checked = 0
    for exe, entry in _prerequisites()["installed_by_roles"].items():
        package = entry.get("owner", entry["package"])
        # PostgreSQL's own binaries first: /usr/bin/psql is Debian's version-picking wrapper.
        path = next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{exe}"))), None) or shutil.which(exe)
        if path is None:
            continue
        owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=False)
        if owner.returncode != 0:
            continue  # installed outside dpkg (a virtualenv): nothing to compare
        owners = {o.strip() for o in owner.stdout.split(":", 1)[0].split(",")}
        assert any(o == package or o.startswith(package + "-") for o in owners), (exe, package, owners)
        checked += 1
    assert checked > 0


def test_missing_executable_is_read_from_ansible_results() -> None:
    command = {"msg": "[Errno 2] No such file or directory: b'socat'", "rc": 2, "cmd": ["socat", "stdio"]}
    assert missing_executable(command) == "socat"
    # ansible-core 2.19: the errno as rc, a generic message
    newer = {"msg": "Error executing command.", "rc": 2, "cmd": "socat stdio UNIX-CONNECT:/x"}
    assert missing_executable(newer) == "socat"
    assert missing_executable({"msg": "Error executing command.", "rc": 13, "cmd": ["x"]}) is None
    shell = {"msg": "non-zero return code", "rc": 127, "stderr": "/bin/sh: 1: socat: not found"}
    assert missing_executable(shell) == "socat"
    bash = {"rc": 127, "stderr": "bash: line 1: redis-cli: command not found"}
    assert missing_executable(bash) == "redis-cli"
    # a file argument that does not exist is not a missing program
    other = {"msg": "[Errno 2] No such file or directory: b'/x/in.sql'", "rc": 2, "cmd": ["psql", "-f"]}
    assert missing_executable(other) is None
    assert missing_executable({"rc": 1, "stderr": "ERROR: relation does not exist"}) is None


@pytest.mark.parametrize("module", ["command", "shell"])
def test_a_missing_executable_is_named_in_the_error(
    module: str, lab_inventory: Inventory, tmp_path: Path
) -> None:
    """A real playbook run on the lab's (local) db host: one line naming the program and the host."""
    args = (
        {"argv": ["drillbook-no-such-tool", "--version"]}
        if module == "command"
        else {"cmd": "drillbook-no-such-tool --version"}
    )
    playbook = tmp_path / "missing.yml"
    play = [
        {
            "name": "Run a tool that is not installed",
            "hosts": "db",
            "gather_facts": False,
            "tasks": [{"name": "Ask the tool its version", f"ansible.builtin.{module}": args}],
        }
    ]
    playbook.write_text(yaml.safe_dump(play))
    with pytest.raises(AnsibleFailed) as raised:
        run_playbook(lab_inventory, str(playbook))
    host = lab_inventory.hosts("db")[0]
    assert f"needs `drillbook-no-such-tool`, which is not installed on {host}" in str(raised.value)
