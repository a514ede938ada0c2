"""The Ansible inventory is drillbook's one configuration.

Hosts, addresses and the thresholds every drill is judged against live in the
inventory's group_vars. The Python side reads the very same files through
Ansible's own inventory API and templating, so a value such as
``postgres_port: "{{ lab_port_base | int + 32 }}"`` means the same thing to a
playbook and to a probe. Capabilities describe their thresholds as pydantic
models and load them with :meth:`Inventory.settings`, which turns a wrong value
into one :class:`ConfigError` line naming the variable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drillbook.core.errors import ConfigError
from drillbook.core.paths import default_inventory, export_project_root

M = TypeVar("M", bound=BaseModel)

# Ansible must be told to fail on an inventory it cannot parse (it only warns by default).
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true")
# ANSIBLE_CONFIG is left alone: the user's own ansible.cfg applies (see drillbook.core.ansible).
os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")


#: Per host, what says where it is (the fleet id hashes these).
_FLEET_HOST_VARS = (
    "ansible_host",
    "ansible_port",
    "postgres_port",
    "redis_port",
    "app_port",
    "haproxy_frontend_port",
    "haproxy_stats_port",
)
#: Inventory-wide endpoints of the service (credentials stripped before hashing).
_FLEET_ENDPOINTS = ("lb_url", "postgres_dsn", "redis_url", "haproxy_admin_socket", "haproxy_stats_url")
_CREDENTIALS = re.compile(r"//[^/@]*@")


def _without_credentials(value: Any) -> Any:
    """``postgresql://u:pw@h:5432/db`` -> ``postgresql://h:5432/db``: a new password is the same fleet."""
    return _CREDENTIALS.sub("//", value) if isinstance(value, str) else value


@dataclass(frozen=True)
class AppInstance:
    """One instance of the service: the inventory host it runs on, its name and its base URL."""

    host: str
    name: str
    url: str


@dataclass(frozen=True)
class Topology:
    """Where the pieces of the service answer, as seen from the control machine."""

    lb_url: str
    postgres_dsn: str
    postgres_admin_dsn: str
    redis_url: str | None
    app_instances: tuple[AppInstance, ...]
    haproxy_socket: str | None
    haproxy_backend: str
    haproxy_stats_url: str | None

    def instance(self, name_or_index: str | int) -> AppInstance:
        """An instance by name (``app-2``) or 1-based index."""
        for i, inst in enumerate(self.app_instances, start=1):
            if name_or_index in (inst.name, inst.host, i, str(i)):
                return inst
        known = ", ".join(i.name for i in self.app_instances)
        raise ConfigError(f"no app instance {name_or_index!r} (known: {known})")


def _plain(value: Any) -> Any:
    """Strip Ansible's data tags: plain str/int/float/bool/list/dict for the rest of the code."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


VAULT_HINT = (
    "a vault-encrypted value needs its password: set ANSIBLE_VAULT_PASSWORD_FILE "
    "(or vault_password_file / vault_identity_list in ansible.cfg)"
)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "undecryptable" in line or "Decryption failed" in line or "VaultSecretsContext" in line:
        return VAULT_HINT
    return line


@contextlib.contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """Keep Ansible's per-plugin parse warnings off the terminal; return their reasons for one error line."""
    from ansible.inventory import manager

    reasons: list[str] = []
    display = manager.display

    def as_warning(msg: str = "", exception: BaseException | None = None, **_: Any) -> None:
        cause = exception if exception is not None else msg
        text = str(getattr(cause, "message", None) or cause)
        origin = getattr(getattr(cause, "obj", None), "origin", None) or ""
        line = text.strip().splitlines()[0] if text.strip() else str(msg)
        reasons.append(f"{line} ({origin})" if origin else line)

    def warning(msg: str, *_: Any, **__: Any) -> None:
        reasons.append(str(msg))

    saved = display.__dict__.get("error_as_warning"), display.__dict__.get("warning")
    display.error_as_warning, display.warning = as_warning, warning
    try:
        yield reasons
    finally:
        for name, value in zip(("error_as_warning", "warning"), saved, strict=True):
            if value is None:
                display.__dict__.pop(name, None)
            else:
                setattr(display, name, value)


@functools.cache
def _init_ansible_plugins(init: Any) -> None:
    """Ansible's plugin loader may be initialised once per process (it warns on a second call)."""
    init()


def _vault_secrets(loader: Any) -> list[Any]:
    """The vault secrets Ansible itself would use, so ``!vault`` values and encrypted files decrypt.

    Read from Ansible's usual settings (``ANSIBLE_VAULT_PASSWORD_FILE``,
    ``ANSIBLE_VAULT_IDENTITY_LIST``, ``vault_password_file`` / ``vault_identity_list`` in
    ansible.cfg), never prompted for: a drill runs unattended. The playbooks drillbook runs
    inherit the same environment, so both sides see the same secrets.
    """
    from ansible import constants as C
    from ansible.cli import CLI
    from ansible.errors import AnsibleError

    identities = list(C.DEFAULT_VAULT_IDENTITY_LIST or [])
    password_file = C.DEFAULT_VAULT_PASSWORD_FILE
    if not identities and not password_file:
        return []
    try:
        return list(
            CLI.setup_vault_secrets(
                loader,
                vault_ids=identities,
                vault_password_files=[password_file] if password_file else [],
                ask_vault_pass=False,
                auto_prompt=False,
            )
        )
    except AnsibleError as exc:
        raise ConfigError(f"vault password: {_first_line(exc)}") from exc


class Inventory:
    """A loaded inventory: host patterns, templated variables, typed settings, the topology."""

    def __init__(self, path: Path) -> None:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.vars.manager import VariableManager

        self.path = path.resolve()
        if not self.path.exists():
            raise ConfigError(f"inventory {path} does not exist")
        _init_ansible_plugins(init_plugin_loader)
        self._loader = DataLoader()
        self._loader.set_vault_secrets(_vault_secrets(self._loader))
        with _collected_warnings() as reasons:
            try:
                self._inv = InventoryManager(loader=self._loader, sources=[str(self.path)])
                self._vm = VariableManager(loader=self._loader, inventory=self._inv)
            except AnsibleError as exc:
                why = reasons[0] if reasons else _first_line(exc)
                raise ConfigError(f"inventory {path} does not parse: {why}") from exc
        if not self._inv.list_hosts("all"):
            raise ConfigError(f"inventory {path} has no hosts")
        self._hostvars: dict[str, Any] = {}

    # -- hosts -------------------------------------------------------------
    @property
    def name(self) -> str:
        """A short name for messages and journals: the path relative to the working directory."""
        try:
            return str(self.path.relative_to(Path.cwd()))
        except ValueError:
            return str(self.path)

    def hosts(self, pattern: str) -> list[str]:
        """Host names matching an Ansible pattern (``app``, ``db[0]``, ``lab-app-1``), inventory order."""
        return [h.name for h in self._inv.list_hosts(pattern)]

    def has_group(self, group: str) -> bool:
        """True only when the group exists *and* has hosts (an empty ``cache:`` group means no Redis)."""
        return group in self._inv.groups and bool(self._inv.groups[group].get_hosts())

    # -- variables ---------------------------------------------------------
    def _raw_vars(self, host: str) -> Any:
        if host not in self._hostvars:
            from ansible.errors import AnsibleError

            h = self._inv.get_host(host)
            if h is None:
                raise ConfigError(f"inventory {self.name} has no host {host!r}")
            try:
                from ansible.vars.hostvars import HostVars

                variables = dict(self._vm.get_vars(host=h))
                variables.setdefault("hostvars", HostVars(self._inv, self._vm, self._loader))
                self._hostvars[host] = variables
            except AnsibleError as exc:
                raise ConfigError(f"inventory {self.name}: {_first_line(exc)}") from exc
        return self._hostvars[host]

    def var(
        self, name: str, default: Any = None, *, host: str | None = None, extra: dict[str, Any] | None = None
    ) -> Any:
        """A variable templated as Ansible would for ``host`` (default: the inventory's first host).

        ``extra`` outranks the inventory, as ``-e`` does (``{"app_version": "2.0.0"}`` gives
        the release source of another version).
        """
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        host = host or self.hosts("all")[0]
        variables = {**self._raw_vars(host), **(extra or {})}
        if name not in variables:
            return default
        try:
            return _plain(Templar(loader=self._loader, variables=variables).template(variables[name]))
        except AnsibleError as exc:
            raise ConfigError(
                f"inventory {self.name}: variable {name} on host {host}: {_first_line(exc)}"
            ) from exc

    def require(self, name: str, *, host: str | None = None) -> Any:
        """The variable's value; :class:`ConfigError` naming it when it is unset or empty."""
        value = self.var(name, host=host)
        if value is None or value == "":
            raise ConfigError(f"inventory {self.name}: variable {name} is not set (host {host or 'all'})")
        return value

    def settings(self, model: type[M], prefix: str = "") -> M:
        """Validate every ``<prefix><field>`` variable into ``model``; unset ones keep the model's default."""
        values = {}
        for field in model.model_fields:
            value = self.var(prefix + field)
            if value is not None:
                values[field] = value
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            given = values.get(str(err["loc"][0])) if err["loc"] else None
            raise ConfigError(
                f"inventory {self.name}: variable {prefix}{field}={given!r}: {err['msg']}"
            ) from exc

    # -- derived facts -----------------------------------------------------
    @property
    def environment(self) -> str:
        """``drillbook_environment`` (lab, staging, production): production turns on the guards."""
        return str(self.var("drillbook_environment", "unknown"))

    @property
    def is_production(self) -> bool:
        """``drillbook_environment: production``: changes are then refused without ``--allow-production``."""
        return self.environment == "production"

    @functools.cached_property
    def fleet_id(self) -> str:
        """What this inventory points at, the same for every path to (or copy of) it.

        ``drillbook_fleet_id`` when the inventory sets one (``drillbook_lock_scope`` is
        its older name); otherwise a stable hash of the sorted hosts' addresses
        (``ansible_host``, ``ansible_port``) and the service's endpoints (database,
        cache, app and load-balancer ports and URLs, credentials left out). Two
        inventories of one fleet, however named or placed, get the same id; the
        journal and the lock name the path, the id names the fleet.
        """
        explicit = self.var("drillbook_fleet_id") or self.var("drillbook_lock_scope")
        if explicit:
            return f"fleet:{explicit}"
        hosts = []
        for host in sorted(self.hosts("all"), key=lambda h: str(self._safe_var("ansible_host", h) or h)):
            address = {name: self._safe_var(name, host) for name in _FLEET_HOST_VARS}
            address["ansible_host"] = address["ansible_host"] or host
            hosts.append(address)
        endpoints = {name: _without_credentials(self._safe_var(name)) for name in _FLEET_ENDPOINTS}
        blob = json.dumps({"hosts": sorted(hosts, key=json.dumps), "endpoints": endpoints}, sort_keys=True)
        return "hosts:" + hashlib.sha256(blob.encode()).hexdigest()[:24]

    @property
    def lock_scope(self) -> str:
        """What one lock covers: the fleet (:attr:`fleet_id`), not the inventory's path."""
        return self.fleet_id

    def _safe_var(self, name: str, host: str | None = None) -> Any:
        try:
            return self.var(name, host=host)
        except ConfigError:
            return "<unresolved>"

    @functools.cached_property
    def topology(self) -> Topology:
        """Where every piece is, read once and cached; raises :class:`ConfigError` for a missing address.

        Reading it also registers the inventory's secrets with the redactor, so
        anything journaled afterwards has them masked.
        """
        from drillbook.core.redact import remember_inventory

        remember_inventory(self)  # every drill reads the topology: its secrets are masked from here on
        instances = tuple(
            AppInstance(
                host=h,
                name=str(self.var("app_instance", h, host=h)),
                url=str(self.require("app_url", host=h)).rstrip("/"),
            )
            for h in self.hosts("app")
        )
        lb_hosts = self.hosts("lb")
        lb_host = lb_hosts[0] if lb_hosts else None
        dsn = str(self.require("postgres_dsn"))
        return Topology(
            lb_url=str(self.require("lb_url")).rstrip("/"),
            postgres_dsn=dsn,
            postgres_admin_dsn=str(self.var("postgres_admin_dsn") or dsn),
            redis_url=self.var("redis_url") if self.has_group("cache") else None,
            app_instances=instances,
            # haproxy_control_socket: the runtime API as the control machine reaches it (an
            # SSH-forwarded unix socket on a fleet); else the load balancer's own address (the lab).
            haproxy_socket=(
                self.var("haproxy_control_socket", host=lb_host)
                or self.var("haproxy_admin_socket", host=lb_host)
            )
            if lb_host
            else None,
            haproxy_backend=str(self.var("haproxy_backend", "app")),
            haproxy_stats_url=self.var("haproxy_stats_url", host=lb_host) if lb_host else None,
        )


def load_inventory(path: str | Path | None = None) -> Inventory:
    """Load ``path``, or ``$DRILLBOOK_INVENTORY``, or the lab; tell playbooks where the project is."""
    export_project_root()
    return Inventory(Path(path) if path else default_inventory())
