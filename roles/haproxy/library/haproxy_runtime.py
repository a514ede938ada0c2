#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: drillbook contributors
# Apache License 2.0 (see the repository's LICENSE)
"""Send commands to HAProxy's runtime API over its stats socket.

Why a module and not ``socat``: socat is one more package every load balancer
would need (a fresh machine does not have it, and ``inv demo`` failed there at
"Drain the server"); the runtime API is a plain text protocol over a unix or
TCP socket, which Python on the managed host speaks in a dozen lines. The
module also judges HAProxy's answer (an empty answer means a ``set`` command
was applied) and knows which commands only read, so check mode is honest.
"""

DOCUMENTATION = r"""
---
module: haproxy_runtime
short_description: Send commands to HAProxy's runtime API (stats socket) without socat
description:
  - Connects to HAProxy's C(stats socket) (a unix socket path, or C(host:port) for
    a TCP socket), sends each command in HAProxy's non-interactive mode (one
    connection per command) and returns HAProxy's answers.
  - HAProxy answers a successful C(set server), C(set weight), C(enable) or
    C(disable) with an empty line; with O(expect_empty=true) any other answer
    fails the task and is quoted in the message.
  - The socket must be reachable from the host the task runs on; delegate the
    task to the load balancer for a unix socket.
version_added: "1.0.0"
author:
  - drillbook contributors
options:
  address:
    description:
      - The runtime API's address, as in C(stats socket) - an absolute unix
        socket path, or C(host:port) (C(ipv4@) prefix allowed).
    type: str
    required: true
  commands:
    description: Runtime API commands, sent in this order (C(set server app/app-1 state drain)).
    type: list
    elements: str
    required: true
  expect_empty:
    description: Fail when HAProxy answers a command with anything but an empty line (for C(set) commands).
    type: bool
    default: false
  read_only:
    description:
      - The commands only read (C(show stat), C(show servers state), C(get weight)).
        Read-only commands run in check mode too and never report a change.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the connection and for each answer.
    type: float
    default: 5
notes:
  - Supports check mode - commands that change state are not sent, and the task
    reports C(changed); read-only commands are sent.
seealso:
  - name: HAProxy management guide, runtime API
    description: The commands and their answers.
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Drain app-1 on the load balancer
  haproxy_runtime:
    address: /var/lib/drillbook-haproxy/admin.sock
    commands: ["set server app/app-1 state drain"]
    expect_empty: true
  delegate_to: lb-1

- name: Read the servers' state
  haproxy_runtime:
    address: /var/lib/drillbook-haproxy/admin.sock
    commands: ["show servers state app"]
    read_only: true
  register: state
"""

RETURN = r"""
answers:
  description: HAProxy's answer to each command, in order (trailing blank lines removed).
  returned: success
  type: list
  elements: str
  sample: ["", ""]
stdout:
  description: All answers joined with newlines.
  returned: success
  type: str
"""

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


def _connect(address, timeout):
    if address.startswith("ipv4@"):
        address = address[len("ipv4@"):]
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except Exception:
            sock.close()
            raise
        return sock
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError("not an absolute socket path nor host:port")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def send(address, command, timeout):
    """One command on its own connection; HAProxy closes it after the answer (non-interactive mode)."""
    sock = _connect(address, timeout)
    try:
        sock.sendall(to_bytes(command) + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    return to_text(b"".join(chunks), errors="surrogate_or_replace").rstrip("\n")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type="str", required=True),
            commands=dict(type="list", elements="str", required=True),
            expect_empty=dict(type="bool", default=False),
            read_only=dict(type="bool", default=False),
            timeout=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    address = module.params["address"]
    commands = [c.strip() for c in module.params["commands"] if c and c.strip()]
    read_only = module.params["read_only"]
    if not commands:
        module.fail_json(msg="haproxy_runtime: no command given")
    if module.check_mode and not read_only:
        module.exit_json(changed=True, answers=[], stdout="",
                         msg="would send %d command(s) to %s" % (len(commands), address))
    answers = []
    for command in commands:
        try:
            answer = send(address, command, module.params["timeout"])
        except (OSError, ValueError) as exc:
            module.fail_json(msg="cannot reach HAProxy's runtime API at %s: %s" % (address, exc),
                             answers=answers, command=command)
        answers.append(answer)
        if module.params["expect_empty"] and answer.strip():
            module.fail_json(msg="HAProxy refused '%s': %s" % (command, answer.strip().splitlines()[0]),
                             answers=answers, command=command)
    module.exit_json(changed=not read_only, answers=answers, stdout="\n".join(answers))


if __name__ == "__main__":
    main()
