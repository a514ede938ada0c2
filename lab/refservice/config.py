"""Configuration: environment variables for the process, release.json for the build.

The lab starts each instance with environment variables only, so everything the
service needs is read here, validated once at import time, and frozen. A bad
value fails the start with a message naming the variable, rather than a drill
finding out half-way through.

release.json travels with the release directory and describes *the build*: its
version and the deliberate faults drills inject (error rate, latency, and
misconfigurations an audit is expected to catch).
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Misconfigurations a release can ask for; each breaks exactly one safeguard.
MISCONFIGURATIONS = frozenset({"cors", "headers", "ratelimit", "ready-ignores-db", "body-limit"})

DEFAULT_RELEASE_FILE = Path(__file__).resolve().parent.parent / "release.json"

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*(?:burst\s+(\d+))?\s*$")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class RateLimit:
    """Token bucket parameters: `rate` tokens per second, at most `burst` saved."""

    rate: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse "5/s burst 10", "5/s" or "5" (burst defaults to twice the rate)."""
        match = _RATE_RE.match(text)
        if not match:
            raise ConfigError(f"REFSVC_AUTH_RATE: expected like '5/s burst 10', got {text!r}")
        rate = float(match.group(1))
        burst = int(match.group(2)) if match.group(2) else max(1, int(rate * 2))
        if rate <= 0 or burst < 1:
            raise ConfigError(f"REFSVC_AUTH_RATE: rate and burst must be positive, got {text!r}")
        return cls(rate=rate, burst=burst)


@dataclass(frozen=True)
class Settings:
    """Process configuration, from REFSVC_* environment variables."""

    database_url: str = "postgresql://app:app@127.0.0.1:5432/app"
    redis_url: str = "redis://127.0.0.1:6379/0"
    instance: str = field(default_factory=socket.gethostname)
    release_file: Path = DEFAULT_RELEASE_FILE
    sentinel_interval_s: float = 1.0
    sentinel_retention_s: float = 3600.0
    cors_origins: tuple[str, ...] = ("https://app.example.com",)
    auth_rate: RateLimit = RateLimit(rate=5.0, burst=10)
    max_body_bytes: int = 65536
    access_log: bool = True
    cache_ttl_s: int = 30
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_timeout_s: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); unset means default."""
        env = os.environ if env is None else env
        base = cls()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        return cls(
            database_url=get("REFSVC_DATABASE_URL") or base.database_url,
            redis_url=get("REFSVC_REDIS_URL") or base.redis_url,
            instance=get("REFSVC_INSTANCE") or base.instance,
            release_file=Path(get("REFSVC_RELEASE_FILE") or base.release_file),
            sentinel_interval_s=_number(env, "REFSVC_SENTINEL_INTERVAL_S", base.sentinel_interval_s),
            sentinel_retention_s=_number(env, "REFSVC_SENTINEL_RETENTION_S", base.sentinel_retention_s),
            cors_origins=tuple(
                origin.strip().rstrip("/")
                for origin in (get("REFSVC_CORS_ORIGINS") or ",".join(base.cors_origins)).split(",")
                if origin.strip()
            ),
            auth_rate=RateLimit.parse(get("REFSVC_AUTH_RATE") or "5/s burst 10"),
            max_body_bytes=int(_number(env, "REFSVC_MAX_BODY_BYTES", base.max_body_bytes, minimum=1)),
            access_log=(get("REFSVC_ACCESS_LOG") or "1").lower() not in {"0", "false", "no", "off"},
            cache_ttl_s=int(_number(env, "REFSVC_CACHE_TTL_S", base.cache_ttl_s, minimum=1)),
            db_pool_min=int(_number(env, "REFSVC_DB_POOL_MIN", base.db_pool_min, minimum=1)),
            db_pool_max=int(_number(env, "REFSVC_DB_POOL_MAX", base.db_pool_max, minimum=1)),
            db_timeout_s=_number(env, "REFSVC_DB_TIMEOUT_S", base.db_timeout_s, minimum=0.1),
        )


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum:g}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Release:
    """What this build is and which faults it carries (release.json)."""

    version: str = "dev"
    error_rate: float = 0.0
    latency_ms: int = 0
    misconfigure: frozenset[str] = frozenset()
    #: Share of /items requests that get latency_ms (1: every one; less: a slow tail).
    latency_share: float = 1.0

    def broken(self, what: str) -> bool:
        """True when the release deliberately breaks safeguard `what`."""
        return what in self.misconfigure

    @classmethod
    def load(cls, path: Path) -> Release:
        """Read release.json; a missing file is a development build without faults."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"release file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"release file {path}: expected a JSON object")
        misconfigure = data.get("misconfigure") or []
        if not isinstance(misconfigure, list) or not all(isinstance(m, str) for m in misconfigure):
            raise ConfigError(f"release file {path}: misconfigure must be a list of strings")
        unknown = set(misconfigure) - MISCONFIGURATIONS
        if unknown:
            raise ConfigError(
                f"release file {path}: unknown misconfigure {sorted(unknown)};"
                f" known: {sorted(MISCONFIGURATIONS)}"
            )
        try:
            error_rate = float(data.get("error_rate", 0.0))
            latency_ms = int(data.get("latency_ms", 0))
            latency_share = float(data.get("latency_share", 1.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"release file {path}: {exc}") from exc
        if not 0.0 <= error_rate <= 1.0 or latency_ms < 0 or not 0.0 < latency_share <= 1.0:
            raise ConfigError(
                f"release file {path}: error_rate must be in [0, 1], latency_ms >= 0, latency_share in (0, 1]"
            )
        return cls(
            version=str(data.get("version", "dev")),
            error_rate=error_rate,
            latency_ms=latency_ms,
            misconfigure=frozenset(misconfigure),
            latency_share=latency_share,
        )
