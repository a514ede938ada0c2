"""ansible-vault secrets in an inventory: read by the Python side as by the playbooks, never written out.

The lab inventory is copied with the database password replaced by a ``!vault`` value;
the vault password comes from a file named by ``ANSIBLE_VAULT_PASSWORD_FILE``, as Ansible
itself reads it. Each check runs drillbook in a subprocess, since Ansible reads its
settings once per process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT

VAULT_PASSWORD = "vault-pass-for-tests-7f3a"


def _vaulted_inventory(tmp_path: Path) -> tuple[Path, Path, str]:
    """The lab inventory with ``postgres_db_password`` vault-encrypted: (inventory, password file, secret)."""
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    inv_dir = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inv_dir)
    lab_vars = inv_dir / "group_vars" / "all" / "lab.yml"
    secret = str(yaml.safe_load(lab_vars.read_text())["postgres_db_password"])
    lab_vars.write_text(
        "\n".join(
            line for line in lab_vars.read_text().splitlines() if not line.startswith("postgres_db_password:")
        )
        + "\n"
    )
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(VAULT_PASSWORD.encode()))])
    cipher = vault.encrypt(secret.encode()).decode()
    (inv_dir / "group_vars" / "all" / "secrets.yml").write_text(
        "postgres_db_password: !vault |\n" + textwrap.indent(cipher, "  ") + "\n"
    )
    pw_file = tmp_path / "vault-pass"
    pw_file.write_text(VAULT_PASSWORD + "\n")
    pw_file.chmod(0o600)
    return inv_dir, pw_file, secret


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


SHOW_DSN = (
    "import sys; from drillbook.core.inventory import load_inventory; "
    "print(load_inventory(sys.argv[1]).topology.postgres_dsn)"
)


def test_vault_value_decrypts_with_the_password_file(tmp_path: Path) -> None:
    inv_dir, pw_file, secret = _vaulted_inventory(tmp_path)
    res = _run([sys.executable, "-c", SHOW_DSN, str(inv_dir)], {"ANSIBLE_VAULT_PASSWORD_FILE": str(pw_file)})
    assert res.returncode == 0, res.stderr
    assert f":{secret}@" in res.stdout


def test_without_the_vault_password_the_error_is_one_line(tmp_path: Path) -> None:
    inv_dir, _pw, _secret = _vaulted_inventory(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    res = subprocess.run(
        [sys.executable, "-m", "invoke", "lab.status", "-i", str(inv_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "vault" in res.stderr.lower() and "ANSIBLE_VAULT_PASSWORD_FILE" in res.stderr


@pytest.mark.lab
def test_a_drill_runs_with_a_vaulted_password_and_writes_it_nowhere(
    lab: dict[str, Any], tmp_path: Path
) -> None:
    inv_dir, pw_file, secret = _vaulted_inventory(tmp_path)
    reports = tmp_path / "reports"
    junit = tmp_path / "junit.xml"
    res = _run(
        [
            sys.executable,
            "-m",
            "invoke",
            "backup.run",
            "-i",
            str(inv_dir),
            "--report-dir",
            str(reports),
            "--junit",
            str(junit),
        ],
        {"ANSIBLE_VAULT_PASSWORD_FILE": str(pw_file)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (journal_path,) = reports.glob("*/journal.json")
    assert json.loads(journal_path.read_text())["verdict"] == "pass"
    written = [p for p in [*reports.rglob("*"), junit] if p.is_file()]
    for text in (res.stdout, res.stderr, *(p.read_text(errors="replace") for p in written)):
        assert secret not in text
        assert VAULT_PASSWORD not in text
