"""Bearer tokens: ``POST /api/v1/auth/login`` trades the account's password for one.

A token is ``<payload>.<signature>``: the payload (user and expiry, base64url
JSON) signed with HMAC-SHA256 under ``LEDGER_TOKEN_SECRET``. Every instance
sharing the secret accepts every instance's tokens; nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.settings import settings

_bearer = HTTPBearer(auto_error=False)


def _sign(payload: bytes) -> str:
    mac = hmac.new(settings().token_secret.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(username: str, password: str) -> str:
    """A token for the configured account, or 401 (an unset password logs nobody in)."""
    s = settings()
    ok_user = hmac.compare_digest(username.encode(), s.username.encode())
    ok_password = hmac.compare_digest(password.encode(), s.password.encode())
    if not (s.password and ok_user and ok_password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    claims = {"sub": username, "exp": int(time.time()) + s.token_ttl_s}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(payload.encode())}"


def _verify(token: str) -> str:
    payload, _, signature = token.partition(".")
    if not signature or not hmac.compare_digest(signature, _sign(payload.encode())):
        raise ValueError("bad signature")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims["exp"] < time.time():
        raise ValueError("expired")
    return str(claims["sub"])


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The user of a valid bearer token; 401 otherwise."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "not authenticated", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    try:
        return _verify(credentials.credentials)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise unauthorized from exc


User = Annotated[str, Depends(current_user)]
