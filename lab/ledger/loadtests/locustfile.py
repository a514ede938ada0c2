"""A small mix for the ledger (lab/ledger): the user's own locustfile, named by its profile.

The ledger wants a bearer token on every /api/v1 route, so each Locust process
logs in once at test start (plain HTTP, not counted) with the credentials from
LEDGER_USERNAME / LEDGER_PASSWORD (the lab's defaults otherwise), then:

    60  GET    /api/v1/entries/[id]     read an entry this run wrote; its memo must be what was sent
    20  GET    /api/v1/entries?limit=20 the newest page
    15  POST   /api/v1/entries          write an entry; the answer must echo it
     5  GET    /livez                   what a load balancer's check costs

Pacing is not set here: ``inv load.run`` replaces ``wait_time`` with its arrival schedule.
"""

from __future__ import annotations

import json
import logging
import os
import random
import urllib.request
import uuid
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

SEED_ENTRIES = 20
log = logging.getLogger("locustfile")

#: Entries this process wrote: id -> memo. And the bearer header of the process's login.
KNOWN: dict[str, str] = {}
AUTH: dict[str, str] = {}


def _post(host: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    req = urllib.request.Request(
        host.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@events.test_start.add_listener
def login_and_seed(environment: Any, **_kw: Any) -> None:
    """Log in once per process, then write the entries reads will ask for (not on a master)."""
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner) or not environment.host:
        return
    try:
        token = _post(
            environment.host,
            "/api/v1/auth/login",
            {
                "username": os.environ.get("LEDGER_USERNAME", "drill"),
                "password": os.environ.get("LEDGER_PASSWORD", "ledger-lab-password"),
            },
            {},
        )["access_token"]
        AUTH["Authorization"] = f"Bearer {token}"
        for _ in range(SEED_ENTRIES):
            memo = uuid.uuid4().hex
            entry = _post(
                environment.host,
                "/api/v1/entries",
                {"account": "loadtest-seed", "amount_cents": 1, "memo": memo},
                AUTH,
            )
            KNOWN[str(entry["id"])] = memo
    except (OSError, ValueError, KeyError) as exc:
        log.warning("login or seeding failed: %s", exc)


class LedgerUser(FastHttpUser):
    """A client of the ledger API."""

    wait_time = between(0.5, 1.5)  # replaced by the arrival schedule under inv load.run
    network_timeout = 5.0
    connection_timeout = 2.0

    @task(60)
    def read_entry(self) -> None:
        if not KNOWN:
            self.write_entry()
            return
        entry_id, memo = random.choice(list(KNOWN.items()))
        with self.client.get(
            f"/api/v1/entries/{entry_id}", headers=AUTH, name="/api/v1/entries/[id]", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
            elif _field(resp, "memo") != memo:
                resp.failure("entry does not hold the memo it was written with")

    @task(20)
    def list_entries(self) -> None:
        with self.client.get(
            "/api/v1/entries?limit=20", headers=AUTH, name="/api/v1/entries", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
            elif not isinstance(_field(resp, "entries"), list):
                resp.failure("not a page of entries")

    @task(15)
    def write_entry(self) -> None:
        memo = uuid.uuid4().hex
        with self.client.post(
            "/api/v1/entries",
            json={"account": "loadtest", "amount_cents": 1, "memo": memo},
            headers=AUTH,
            name="/api/v1/entries",
            catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"status {resp.status_code}")
            elif _field(resp, "memo") != memo:
                resp.failure("written entry does not echo what was sent")
            else:
                KNOWN[str(_field(resp, "id"))] = memo

    @task(5)
    def live(self) -> None:
        self.client.get("/livez", name="/livez")


def _field(resp: Any, key: str) -> Any:
    try:
        return resp.json().get(key)
    except (ValueError, AttributeError):
        return None
