"""One redaction function for everything drillbook writes or prints.

Reports travel: CI keeps JUnit files and summaries, people paste console output
into tickets, the Prometheus export and ``lab.status --json`` feed other tools.
None of them may carry a password, a token or a secret key, whichever drill
produced it, so redaction lives here once and every writer calls it
(:mod:`drillbook.core.journal`, :mod:`drillbook.core.junit`, the ansible-runner
wrapper, the lab status) instead of each drill remembering to.

Three rules, applied together:

1. **Connection strings** keep who and where, lose the password:
   ``postgresql://app:s3cret@db:5432/app`` becomes ``postgresql://app@db:5432/app``
   (``redis://:pw@h:6379/0`` becomes ``redis://h:6379/0``); ``password=...`` in a
   key=value DSN, a query string or a command line becomes ``password=***``.
2. **Keys named like a secret** (``password``, ``passwd``, ``secret``, ``token``,
   ``api_key``, ``private_key``, ``authorization``, ``*_auth``...) have their
   value replaced by ``***`` wherever they appear in a mapping.
3. **Known secret values** are masked wherever they appear, even in free text
   (a command's stderr, an exception message). Values are learned from
   inventories (:func:`remember_inventory`: every variable whose name looks like
   a secret) or registered directly (:func:`remember`). Values shorter than
   :data:`MIN_SECRET_LEN` characters are not learned: masking ``app`` everywhere
   would destroy every report, and so short a password protects nothing anyway.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from drillbook.core.inventory import Inventory

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "SECRET_KEY",
    "forget_all",
    "is_secret_key",
    "known_secrets",
    "redact",
    "redact_dsn",
    "redact_text",
    "remember",
    "remember_inventory",
]

MASK = "***"
MIN_SECRET_LEN = 4

#: Names whose value is a secret: the whole word or a ``_``/``-`` separated part of it.
SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:password|passwd|passphrase|pwd|secret|token|api[_\-]?key|private[_\-]?key|"
    r"secret[_\-]?key|access[_\-]?key|authorization|auth|requirepass)(?:$|[_\-.])"
    r"|^(?:pgpassword|rediscli_auth)$",
    re.IGNORECASE,
)

# scheme://user:password@host -> scheme://user@host (also user-less :password@).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/?#@\s'\"]*):(?P<pw>[^@/\s'\"]*)@"
)
# password=value / "token": "value" / PGPASSWORD=value in free text and key=value DSNs.
_ASSIGNMENT = re.compile(
    r"(?P<key>\b[\w.\-]*(?:password|passwd|passphrase|secret|token|api[_\-]?key|private[_\-]?key|"
    r"access[_\-]?key|requirepass|rediscli_auth)[\w.\-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)(?P<value>(?!\*\*\*)[^\s\"'&,;)}\]]+)",
    re.IGNORECASE,
)
# Authorization: Basic/Bearer <credentials>
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:basic|bearer|token)\s+)(?P<value>[A-Za-z0-9+/=._\-]{8,})", re.IGNORECASE
)

_lock = threading.Lock()
_known: set[str] = set()
_inventories_seen: set[str] = set()


def is_secret_key(name: object) -> bool:
    """True for a mapping key or variable name that holds a secret (``postgres_db_password``, ``token``)."""
    return isinstance(name, str) and bool(SECRET_KEY.search(name))


def remember(*values: object) -> None:
    """Mask these values from now on, wherever they appear (strings of MIN_SECRET_LEN characters or more)."""
    with _lock:
        for value in values:
            if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LEN and value.strip() != MASK:
                _known.add(value.strip())


def forget_all() -> None:
    """Drop every learned value (tests)."""
    with _lock:
        _known.clear()
        _inventories_seen.clear()


def known_secrets() -> frozenset[str]:
    """A snapshot of the values learned so far (thread-safe); later additions do not change it."""
    with _lock:
        return frozenset(_known)


def remember_inventory(inv: Inventory) -> None:
    """Learn every secret-named variable of ``inv`` (as templated for each group's first host).

    Cheap after the first call per inventory. A variable that does not template
    (an unset environment lookup on a fleet inventory) is skipped: it cannot
    leak what it does not have.
    """
    key = str(inv.path)
    with _lock:
        if key in _inventories_seen:
            return
        _inventories_seen.add(key)
    from drillbook.core.errors import DrillbookError

    hosts: list[str] = []
    for group in ("all", "db", "cache", "app", "lb", "loadgen"):
        first = inv.hosts(group)[:1]
        hosts += [h for h in first if h not in hosts]
    for host in hosts:
        try:
            names = [n for n in inv._raw_vars(host) if is_secret_key(n)]
        except DrillbookError:
            continue
        for name in names:
            try:
                value = inv.var(name, host=host)
            except DrillbookError:
                continue
            if isinstance(value, str):
                # as written, and as it appears inside a URL (redis://:p%40ss@host)
                remember(value, quote(value, safe=""))
                # user:password pairs (haproxy_stats_auth) leak through their password part too.
                if ":" in value:
                    remember(value.split(":", 1)[1])
            elif isinstance(value, Mapping):
                remember(*[v for v in value.values() if isinstance(v, str)])


def redact_dsn(dsn: str) -> str:
    """``postgresql://app:pw@db:5432/app`` -> ``postgresql://app@db:5432/app``; ``password=`` -> ``***``."""
    return redact_text(dsn)


def _userinfo(match: re.Match[str]) -> str:
    user = match.group("user")
    return f"{match.group('scheme')}{user}@" if user else match.group("scheme")


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` without DSN passwords, ``password=...`` values, auth headers and known secret values."""
    if not text:
        return text
    out = _URL_USERINFO.sub(_userinfo, text)
    out = _ASSIGNMENT.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group('head')}{MASK}", out)
    secrets = sorted(
        {*known_secrets(), *(e for e in extra if len(e) >= MIN_SECRET_LEN)}, key=len, reverse=True
    )
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def _masked(value: Any) -> Any:
    """A secret-named key's value: scalars masked, containers walked (``auth: {path, password}``)."""
    if isinstance(value, (Mapping, list, tuple)):
        return redact(value)
    return value if value in (None, "", False) else MASK


def redact(value: Any, extra: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like data) safe to write: secret keys masked, every string redacted."""
    extra = tuple(extra)
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, Mapping):
        return {k: _masked(v) if is_secret_key(k) else redact(v, extra) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, extra) for v in value]
    return value
