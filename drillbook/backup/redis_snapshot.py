"""Redis snapshot: BGSAVE over the protocol, then fetch the RDB file from the cache host.

Redis writes its snapshot on its own host, so the copy goes through Ansible
(``playbooks/backup-redis.yml``); asking for the save and waiting for it is a
protocol conversation, done here with redis-py. The snapshot is taken after
the PostgreSQL dump and is not synchronised with it: a cache is rebuilt from
the database, this file only shortens the warm-up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from drillbook.backup.errors import BackupFailed
from drillbook.backup.manifest import RedisEntry, sha256_file
from drillbook.core.ansible import ProgressFn, run_playbook
from drillbook.core.errors import TargetUnreachable
from drillbook.core.inventory import Inventory


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True)


def _bgsave_and_wait(client: Any, timeout_s: float) -> dict[str, Any]:
    """Start a BGSAVE (or join one already running) and wait until a save completes."""
    import redis

    before = client.info("persistence")
    saves_before = before.get("rdb_saves")
    try:
        client.bgsave()
    except redis.ResponseError as exc:
        if "in progress" not in str(exc).lower():
            raise BackupFailed(f"Redis BGSAVE refused: {exc}") from exc

    def done(info: dict[str, Any]) -> bool:
        if info.get("rdb_bgsave_in_progress"):
            return False
        return saves_before is None or int(info.get("rdb_saves", 0)) > int(saves_before)

    try:
        info: dict[str, Any] = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.1),
            retry=retry_if_result(lambda i: not done(i)),
        )(client.info, "persistence")
    except RetryError:
        raise BackupFailed(f"Redis BGSAVE did not finish within {timeout_s:.0f}s") from None
    if info.get("rdb_last_bgsave_status") != "ok":
        raise BackupFailed(
            f"Redis BGSAVE failed (rdb_last_bgsave_status={info.get('rdb_last_bgsave_status')})"
        )
    return info


def _rdb_path(client: Any, inv: Inventory, host: str) -> str:
    """Where the RDB file lives: asked of Redis (CONFIG GET), else from the inventory."""
    import redis

    try:
        directory = client.config_get("dir").get("dir")
        filename = client.config_get("dbfilename").get("dbfilename")
    except redis.ResponseError:  # CONFIG renamed or disabled, common in production
        directory = inv.var("redis_dir", host=host)
        filename = inv.var("redis_dbfilename", "dump.rdb", host=host)
    if not directory or not filename:
        raise BackupFailed("cannot tell where Redis keeps its RDB file (set redis_dir for the cache host)")
    return str(Path(str(directory)) / str(filename))


def snapshot_redis(
    inv: Inventory,
    dest: Path,
    *,
    tag: str,
    timeout_s: float = 300,
    progress: ProgressFn | None = None,
) -> RedisEntry:
    """BGSAVE on the inventory's Redis, fetch the file to ``dest``, check it arrived intact."""
    import redis

    url = inv.topology.redis_url
    host = inv.hosts("cache")[0]
    if not url:
        raise BackupFailed("the inventory has a cache group but no redis_url")
    client = _client(url)
    try:
        info = _bgsave_and_wait(client, timeout_s)
        keys = sum(int(v.get("keys", 0)) for v in client.info("keyspace").values() if isinstance(v, dict))
        version = str(client.info("server").get("redis_version", "?"))
        path = _rdb_path(client, inv, host)
    except redis.ConnectionError as exc:
        raise TargetUnreachable(f"Redis {url}: {exc}") from exc
    finally:
        client.close()
    if progress:
        progress(f"fetching {path} from {host}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    result = run_playbook(
        inv,
        "backup-redis.yml",
        limit=host,
        extravars={"backup_rdb_path": path, "backup_rdb_dest": str(dest), "backup_rdb_tag": tag},
        progress=progress,
    )
    stats = result.for_task("size and SHA-256")
    remote = stats[0].res.get("stat", {}) if stats else {}
    if not dest.exists():
        raise BackupFailed(f"the Redis snapshot {path} did not arrive at {dest}")
    local = sha256_file(dest)
    if remote.get("checksum") and remote["checksum"] != local:
        raise BackupFailed(
            f"the Redis snapshot changed in transit: sha256 {local} here, {remote['checksum']} on {host}"
        )
    saved = datetime.fromtimestamp(int(info.get("rdb_last_save_time", 0)), UTC)
    return RedisEntry(
        file="",  # set by the caller, relative to the backup root
        saved_at=saved.isoformat().replace("+00:00", "Z"),
        keys=keys,
        redis_version=version,
        host=host,
    )
