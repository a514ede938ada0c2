"""The user's Ansible settings win; drillbook's defaults fill only the gaps; host keys are checked.

drillbook used to force ``ANSIBLE_CONFIG`` to its own file with
``host_key_checking = False`` for every inventory, so a user's ansible.cfg
(ProxyJump, known hosts, forks) was ignored. Each test runs a real playbook
through drillbook's ansible-runner wrapper and asks Ansible itself (the
``config`` lookup) which settings the run had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbook.core.ansible import ansible_env, run_playbook
from drillbook.core.inventory import Inventory
from drillbook.core.paths import ROLES

SETTINGS_PLAY = [
    {
        "name": "Report the settings of this run",
        "hosts": "lab-db",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Read the settings",
                "ansible.builtin.set_fact": {
                    "seen": {
                        "forks": "{{ lookup('ansible.builtin.config', 'DEFAULT_FORKS') }}",
                        "gathering": "{{ lookup('ansible.builtin.config', 'DEFAULT_GATHERING') }}",
                        "host_key_checking": "{{ lookup('ansible.builtin.config', 'HOST_KEY_CHECKING') }}",
                        "roles_path": "{{ lookup('ansible.builtin.config', 'DEFAULT_ROLES_PATH') }}",
                        "host_var_host_key_checking": "{{ ansible_host_key_checking | default('unset') }}",
                    }
                },
            }
        ],
    }
]


@pytest.fixture()
def clean_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no ansible.cfg anywhere and no ANSIBLE_* settings of their own."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_FORKS", "ANSIBLE_GATHERING", "ANSIBLE_HOST_KEY_CHECKING"):
        monkeypatch.delenv(name, raising=False)
    return work


def _settings(inv: Inventory, tmp_path: Path) -> dict[str, Any]:
    playbook = tmp_path / "settings.yml"
    playbook.write_text(yaml.safe_dump(SETTINGS_PLAY))
    result = run_playbook(inv, str(playbook))
    (row,) = [r for r in result.results if r.task == "Read the settings"]
    seen: dict[str, Any] = row.res["ansible_facts"]["seen"]
    return seen


def test_without_user_settings_drillbook_defaults_apply_and_host_keys_are_checked(
    clean_user: Path, lab_inventory: Inventory, tmp_path: Path
) -> None:
    env = ansible_env()
    assert "ANSIBLE_CONFIG" not in env and env["ANSIBLE_FORKS"] == "10"
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"  # ansible-runner's own default would be False
    seen = _settings(lab_inventory, tmp_path)
    assert int(seen["forks"]) == 10 and seen["gathering"] == "explicit"
    assert str(seen["host_key_checking"]) == "True"  # Ansible's default: drillbook never turns it off
    assert str(ROLES) in str(seen["roles_path"])
    # only the lab opts out, for its own (local) hosts
    assert str(seen["host_var_host_key_checking"]) == "False"


def test_the_users_ansible_config_wins(
    clean_user: Path, lab_inventory: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_cfg = tmp_path / "user.cfg"
    user_roles = tmp_path / "my-roles"
    user_roles.mkdir()
    user_cfg.write_text(
        f"[defaults]\nforks = 3\ngathering = smart\nroles_path = {user_roles}\nhost_key_checking = False\n"
    )
    monkeypatch.setenv("ANSIBLE_CONFIG", str(user_cfg))
    env = ansible_env()
    assert env["ANSIBLE_CONFIG"] == str(user_cfg.resolve())
    assert "ANSIBLE_FORKS" not in env and "ANSIBLE_GATHERING" not in env
    seen = _settings(lab_inventory, tmp_path)
    assert int(seen["forks"]) == 3 and seen["gathering"] == "smart"
    assert str(seen["host_key_checking"]) == "False"  # the user's choice, not drillbook's
    # the user's roles first, drillbook's own still found
    assert str(seen["roles_path"]).index(str(user_roles)) < str(seen["roles_path"]).index(str(ROLES))


def test_an_ansible_cfg_in_the_working_directory_is_the_users(
    clean_user: Path, lab_inventory: Inventory, tmp_path: Path
) -> None:
    """ansible-runner starts ansible-playbook elsewhere: the ./ansible.cfg found here is passed on."""
    (clean_user / "ansible.cfg").write_text("[defaults]\nforks = 7\n")
    seen = _settings(lab_inventory, tmp_path)
    assert int(seen["forks"]) == 7
    assert seen["gathering"] == "explicit"  # not set by the user: drillbook's default fills the gap


def test_an_ansible_environment_variable_wins_over_both(
    clean_user: Path, lab_inventory: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_user / "ansible.cfg").write_text("[defaults]\nforks = 7\n")
    monkeypatch.setenv("ANSIBLE_FORKS", "4")
    monkeypatch.setenv("ANSIBLE_GATHERING", "implicit")
    seen = _settings(lab_inventory, tmp_path)
    assert int(seen["forks"]) == 4 and seen["gathering"] == "implicit"


def test_drillbook_never_disables_host_key_checking_for_a_fleet() -> None:
    """Neither the shipped ansible.cfg nor the example fleet turns host key checking off."""
    from drillbook.core.paths import ANSIBLE_CFG, REPO_ROOT

    assert "host_key_checking" not in ANSIBLE_CFG.read_text().split("[ssh_connection]")[0].replace(
        "# Host key checking", ""
    ).lower().replace("host key checking stays on", "")
    staging = "\n".join(p.read_text() for p in (REPO_ROOT / "inventory" / "example-staging").rglob("*.yml"))
    assert "host_key_checking: false" not in staging.lower()
    assert "StrictHostKeyChecking=no" not in staging
