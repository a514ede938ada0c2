"""Which release an instance runs, as the service profile says (``service_identity``).

The canary, ``deploy.status`` and the doctor all ask an instance "which release do
you run?", and only through this module, so a service with ``/version``, one that
names its release in a response header, and one that needs a command on the host
are drilled alike. Exactly one way per profile (:class:`~drillbook.core.profile.Identity`):

* ``path`` (+ ``json_pointer``): a GET whose JSON body holds the release there, or
  whose whole body is the release;
* ``header``: a response header of a GET to ``header_path``;
* ``command``: run on the instance's host through Ansible (its first output line).

A profile without identity is valid: :func:`ask` then answers ``None`` and the
caller says where it takes the release from instead (the canary: its rollout
record, what drillbook itself deployed). Nothing here raises on a bad answer: a
refused connection or a missing header is an :class:`Answer` without a version
and a one-line ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from drillbook.core.profile import Identity

if TYPE_CHECKING:
    from drillbook.core.inventory import AppInstance, Inventory

#: What the witness strings say when the profile names no identity.
RECORD = "the rollout record (the profile has no service_identity)"


@dataclass(frozen=True)
class Answer:
    """One instance's answer: the release (None when it could not be read), where it was asked, why not."""

    version: str | None
    where: str
    status: int | None = None
    error: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.version is not None


def describe(identity: Identity | None) -> str:
    """How the release is asked, for witness strings and reports (``X-Release header of GET /livez``)."""
    if identity is None:
        return RECORD
    if identity.path is not None:
        return f"GET {identity.path}" + (f" (JSON {identity.json_pointer})" if identity.json_pointer else "")
    if identity.header is not None:
        return f"{identity.header} header of GET {identity.header_path}"
    return f"`{identity.command}` on the host"


def from_response(identity: Identity, resp: httpx.Response) -> tuple[str | None, str]:
    """The release a response names (``path`` or ``header`` identity), and why not when it names none."""
    if identity.header is not None:
        named = resp.headers.get(identity.header)
        return (named.strip(), "") if named else (None, f"no {identity.header} header ({resp.status_code})")
    if resp.status_code >= 400:
        return None, f"{identity.path} {resp.status_code}"
    if identity.json_pointer is None:
        text = resp.text.strip().splitlines()
        return (text[0].strip(), "") if text else (None, f"{identity.path}: empty body")
    import jsonpointer  # type: ignore[import-untyped]  # ships no type information

    try:
        value: Any = jsonpointer.resolve_pointer(json.loads(resp.text), identity.json_pointer)
    except (ValueError, jsonpointer.JsonPointerException, TypeError):
        return None, f"{identity.path}: no {identity.json_pointer} in the body"
    return (str(value), "") if value is not None else (None, f"{identity.path}: {identity.json_pointer} null")


def ask(client: httpx.Client, base_url: str, identity: Identity) -> Answer:
    """The release the instance at ``base_url`` names over HTTP (``path`` or ``header`` identity)."""
    path = identity.path if identity.path is not None else identity.header_path
    url = base_url.rstrip("/") + path
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return Answer(None, url, error=type(exc).__name__, detail=f"{path}: {type(exc).__name__}")
    version, why = from_response(identity, resp)
    return Answer(version, url, status=resp.status_code, detail=why)


def ask_all(
    inv: Inventory, instances: Sequence[AppInstance], identity: Identity | None, timeout_s: float = 2.0
) -> dict[str, Answer]:
    """Every instance's release at once, by host (a fleet of 50 answers in one timeout, not 50).

    ``identity`` None: every answer is ``None`` "(no service_identity)". A ``command``
    runs once over all the hosts through Ansible (forks), never per instance in a loop.
    """
    if identity is None:
        return {i.host: Answer(None, RECORD, detail="no service_identity") for i in instances}
    if identity.command is not None:
        return _by_command(inv, instances, identity.command)
    transport = httpx.HTTPTransport(retries=0)
    with (
        httpx.Client(timeout=timeout_s, transport=transport, headers={"User-Agent": "drillbook"}) as client,
        ThreadPoolExecutor(max_workers=min(32, max(1, len(instances)))) as pool,
    ):
        answers = list(pool.map(lambda inst: ask(client, inst.url, identity), instances))
    return {inst.host: a for inst, a in zip(instances, answers, strict=True)}


def _by_command(inv: Inventory, instances: Sequence[AppInstance], command: str) -> dict[str, Answer]:
    """``command`` on each instance's host (Ansible's command module, ad hoc); its first output line."""
    import shutil
    import tempfile

    import ansible_runner

    from drillbook.core.ansible import ansible_env

    hosts = sorted({i.host for i in instances})
    private = tempfile.mkdtemp(prefix="drillbook-identity-")
    out: dict[str, tuple[str | None, str]] = {}
    try:
        runner = ansible_runner.run(
            private_data_dir=private,
            host_pattern=",".join(hosts),
            module="ansible.builtin.command",
            module_args=command,
            inventory=str(inv.path),
            envvars=ansible_env(),
            quiet=True,
            settings={"suppress_ansible_output": True},
        )
        for event in runner.events:
            data = event.get("event_data", {})
            host, res = data.get("host"), data.get("res") or {}
            if host not in hosts:
                continue
            if event.get("event") == "runner_on_ok":
                lines = str(res.get("stdout", "")).strip().splitlines()
                out[host] = (lines[0].strip(), "") if lines else (None, "the command printed nothing")
            elif event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                msg = str(res.get("msg") or res.get("stderr") or "failed").strip().splitlines()
                out[host] = (None, msg[0] if msg else "failed")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    where = f"`{command}` on the host"
    answers = {}
    for inst in instances:
        version, why = out.get(inst.host, (None, "no answer from Ansible"))
        answers[inst.host] = Answer(version, where, detail=why)
    return answers
