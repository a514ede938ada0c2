"""Inventory loading: templated variables, typed settings, the topology, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import LAB_INVENTORY

DATA = Path(__file__).parent / "data" / "inventory"


class Sample(BaseModel):
    limit_s: float = Field(default=5.0, gt=0)
    count: int = 1
    missing: str = "default"


def test_settings_are_templated_and_typed() -> None:
    inv = load_inventory(DATA)
    s = inv.settings(Sample, prefix="sample_")
    assert s.limit_s == 2.5 and s.count == 5 and s.missing == "default"


def test_bad_threshold_names_the_variable(tmp_path: Path) -> None:
    inv_dir = tmp_path / "inv"
    (inv_dir / "group_vars").mkdir(parents=True)
    (inv_dir / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    (inv_dir / "group_vars" / "all.yml").write_text("sample_limit_s: -1\n")
    with pytest.raises(ConfigError, match=r"sample_limit_s=-1.*greater than 0"):
        load_inventory(inv_dir).settings(Sample, prefix="sample_")


def test_unparsable_inventory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  hosts: [\n")
    with pytest.raises(ConfigError, match="does not parse"):
        load_inventory(tmp_path)


def test_missing_inventory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_inventory(tmp_path / "nope")


def test_lab_topology_follows_port_base(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRILLBOOK_LAB_PORT_BASE", "21000")
    monkeypatch.setenv("DRILLBOOK_LAB_DIR", str(tmp_path / "lab"))
    inv = load_inventory(LAB_INVENTORY)
    topo = inv.topology
    assert topo.lb_url == "http://127.0.0.1:21080"
    assert [i.url for i in topo.app_instances] == [f"http://127.0.0.1:2100{n}" for n in (1, 2, 3)]
    assert [i.name for i in topo.app_instances] == ["app-1", "app-2", "app-3"]
    assert ":21032/" in topo.postgres_dsn and topo.redis_url == "redis://127.0.0.1:21079/0"
    assert topo.haproxy_socket == str(tmp_path / "lab" / "haproxy" / "admin.sock")
    assert inv.environment == "lab" and not inv.is_production
    assert inv.hosts("canary") == ["lab-app-1"]
    assert topo.instance(2).name == "app-2" and topo.instance("app-3").host == "lab-app-3"
    with pytest.raises(ConfigError, match="no app instance"):
        topo.instance(7)


def test_example_fleet_inventory_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_PASSWORD", "from-env")
    inv = load_inventory(Path(__file__).parents[1] / "inventory" / "example-staging")
    topo = inv.topology
    assert len(topo.app_instances) == 6 and inv.hosts("canary") == ["app-1.staging.example.internal"]
    assert topo.postgres_dsn == "postgresql://app:from-env@10.20.1.10:5432/app"
    # the runtime API: a unix socket on the lb, reached from here through an SSH-forwarded socket
    assert topo.haproxy_socket and topo.haproxy_socket.endswith("/drillbook-haproxy.sock")
    assert (
        inv.var("haproxy_admin_socket", host="lb-1.staging.example.internal") == "/var/lib/haproxy/admin.sock"
    )
    assert inv.has_group("loadgen")


def test_example_fleet_redis_url_carries_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILLBOOK_REDIS_PASSWORD", "p@ss/word")
    inv = load_inventory(Path(__file__).parents[1] / "inventory" / "example-staging")
    assert inv.topology.redis_url == "redis://:p%40ss%2Fword@10.20.1.20:6379/0"
    assert inv.var("redis_bind", host="cache-1.staging.example.internal") == "10.20.1.20"
