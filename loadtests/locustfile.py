"""A realistic mix for the lab's reference service (lab/refservice), one request per task.

Weights (out of 100 requests), chosen to look like a read-heavy API behind a cache:

    55  GET    /items/[id]              read a known item; the body must carry a value it was given
    15  GET    /items?limit=20[&cursor] page through the list (keyset pagination, next_cursor)
    12  POST   /items                   create an item; the answer must echo what was sent
     8  PUT    /items/[id]              change a known item's value
     3  DELETE /items/[id]              delete a known item (then reads expect 404 for it)
     5  GET    /health/live             what a load balancer's check costs
     2  GET    /health/ready            readiness, which touches PostgreSQL and Redis

Every response is judged with ``catch_response``: a 200 with the wrong body is a
failure (a stale cache, a page that skips or repeats rows), not a success.
Parametrised URLs are grouped with ``name=`` so the report has one row per endpoint.

Pacing is *not* set here: ``inv load.run`` loads drillbook's plugin first, which
replaces ``wait_time`` with an arrival schedule (see drillbook/load/shape.py). Run
alone (``locust -f loadtests/locustfile.py``), the users are closed-loop with a
short think time. Items to read are created once per process at test start
(plain HTTP, not counted in the statistics), then grow with the run's own writes.
"""

from __future__ import annotations

import json
import logging
import random
import urllib.request
import uuid
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

#: Items created per Locust process before the run, so reads have something to read.
SEED_ITEMS = 50
PAGE = 20

log = logging.getLogger("locustfile")


class Known:
    """Items this process created (deleted ones too): id -> every value it was given.

    Every value, not only the last: concurrent PUTs commit in any order, and a
    read racing a write (or a cache-aside refill racing an invalidation) may
    legitimately return an earlier one. A value never given is always wrong.
    """

    def __init__(self) -> None:
        self.values: dict[int, set[str]] = {}
        self.deleted: set[int] = set()
        # The ids again as a list, and each id's place in it: picking is O(1) however
        # many items the run created (a list built per pick costs the generator more
        # than the request once thousands exist).
        self.ids: list[int] = []
        self.place: dict[int, int] = {}

    def add(self, item_id: int, value: str) -> None:
        if item_id not in self.values:
            self.place[item_id] = len(self.ids)
            self.ids.append(item_id)
        self.values.setdefault(item_id, set()).add(value)

    def pick(self) -> int | None:
        return random.choice(self.ids) if self.ids else None

    def forget(self, item_id: int) -> None:
        # Its values stay known: a read sent before the delete may still answer 200 after it.
        self.deleted.add(item_id)
        index = self.place.pop(item_id, None)
        if index is not None:  # swap the last id into the hole
            last = self.ids.pop()
            if last != item_id:
                self.ids[index] = last
                self.place[last] = index

    def plausible(self, item_id: int, value: Any) -> bool:
        return value in self.values.get(item_id, ())


KNOWN = Known()


@events.test_start.add_listener
def seed(environment: Any, **_kw: Any) -> None:
    """Create the items reads will ask for (not on a master: it sends no requests)."""
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner) or not environment.host:
        return
    for _ in range(SEED_ITEMS):
        value = uuid.uuid4().hex
        body = json.dumps({"name": "loadtest-seed", "value": value}).encode()
        req = urllib.request.Request(
            environment.host.rstrip("/") + "/items",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                KNOWN.add(int(json.loads(resp.read())["id"]), value)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("seeding items failed: %s", exc)
            return


class ServiceUser(FastHttpUser):
    """A client of the items API (FastHttpUser: several times the throughput of HttpUser)."""

    wait_time = between(0.5, 1.5)  # replaced by the arrival schedule under inv load.run
    network_timeout = 5.0
    connection_timeout = 2.0

    def on_start(self) -> None:
        self.cursor: str | None = None
        self.last_id = 0

    @task(55)
    def read_item(self) -> None:
        item_id = KNOWN.pick()
        if item_id is None:
            self.create_item()
            return
        with self.client.get(f"/items/{item_id}", name="/items/[id]", catch_response=True) as resp:
            if resp.status_code == 404 and item_id in KNOWN.deleted:
                resp.success()
            elif resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
            elif not KNOWN.plausible(item_id, _field(resp, "value")):
                resp.failure("body does not hold a value this item was given (stale or wrong item)")

    @task(15)
    def list_page(self) -> None:
        if self.cursor:
            url, name = f"/items?limit={PAGE}&cursor={self.cursor}", f"/items?limit={PAGE}&cursor=[c]"
        else:
            url, name, self.last_id = f"/items?limit={PAGE}", f"/items?limit={PAGE}", 0
        with self.client.get(url, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                self.cursor = None
                return
            try:
                page = resp.json()
                ids = [int(item["id"]) for item in page["items"]]
                cursor = page["next_cursor"]
            except (ValueError, KeyError, TypeError) as exc:
                resp.failure(f"not a page: {exc}")
                self.cursor = None
                return
            if len(ids) > PAGE or ids != sorted(set(ids)) or (ids and ids[0] <= self.last_id):
                resp.failure("page out of order, repeated rows, or overlapping the previous page")
            self.last_id = ids[-1] if ids else self.last_id
            self.cursor = cursor if isinstance(cursor, str) and cursor else None

    @task(12)
    def create_item(self) -> None:
        value = uuid.uuid4().hex
        with self.client.post(
            "/items", json={"name": "loadtest", "value": value}, name="/items", catch_response=True
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"status {resp.status_code}")
                return
            item_id = _field(resp, "id")
            if _field(resp, "value") != value or not isinstance(item_id, int):
                resp.failure("created item does not echo what was sent")
                return
            KNOWN.add(item_id, value)

    @task(8)
    def update_item(self) -> None:
        item_id = KNOWN.pick()
        if item_id is None:
            self.create_item()
            return
        value = uuid.uuid4().hex
        KNOWN.add(item_id, value)  # before sending: a concurrent read may already see it
        with self.client.put(
            f"/items/{item_id}",
            json={"name": "loadtest", "value": value},
            name="/items/[id]",
            catch_response=True,
        ) as resp:
            if resp.status_code == 404 and item_id in KNOWN.deleted:
                resp.success()
            elif resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
            elif _field(resp, "value") != value:
                resp.failure("updated item does not hold the new value")

    @task(3)
    def delete_item(self) -> None:
        item_id = KNOWN.pick()
        if item_id is None or len(KNOWN.ids) < SEED_ITEMS // 2:
            self.create_item()  # keep enough items to read
            return
        KNOWN.forget(item_id)  # before sending: reads from now on expect 404
        with self.client.delete(f"/items/{item_id}", name="/items/[id]", catch_response=True) as resp:
            if resp.status_code != 204:
                resp.failure(f"status {resp.status_code}")

    @task(5)
    def live(self) -> None:
        with self.client.get("/health/live", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")

    @task(2)
    def ready(self) -> None:
        with self.client.get("/health/ready", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"not ready: status {resp.status_code}")


def _field(resp: Any, key: str) -> Any:
    try:
        return resp.json().get(key)
    except (ValueError, AttributeError):
        return None
