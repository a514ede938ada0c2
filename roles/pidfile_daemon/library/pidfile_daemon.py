#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: drillbook contributors
# Apache License 2.0 (see the repository's LICENSE)
"""Manage a daemon through its pid file, for hosts without systemd.

Why a module and not a few shell tasks: starting a daemon correctly (detach
from Ansible's pipes, drop privileges, refuse a busy port, notice a crash at
start-up) and stopping it correctly (signal, wait, escalate, cope with a stale
pid file) is the same dozen steps for every service, and drills need the kill
to be instantaneous and time-stamped. Written once here, the roles stay short.
"""

DOCUMENTATION = r"""
---
module: pidfile_daemon
short_description: Start, stop, kill, restart or reload a daemon tracked by a pid file
description:
  - Manages a long-running process on hosts where systemd is not available
    (containers, CI boxes, labs). The pid file is the source of truth; the
    service is running when the pid it names exists in C(/proc) and is not a
    zombie (and, with O(match), its command line contains that text).
  - A stale pid file (dead pid) means "not running"; starting again is safe.
  - With O(daemonize=true) the module double-forks, starts a new session, writes
    the pid file and execs O(command), with stdout and stderr appended to O(log).
  - With O(daemonize=false) the command detaches by itself and writes its own pid
    file (C(redis-server) with C(daemonize yes), C(haproxy -D -p), C(pg_ctl start)).
    The module runs it, waits for it to return and then for the pid file to name
    a live process.
  - Before a start, when O(port) is set and the service is not running, the
    port must be free on O(host), else the module fails with one clear line.
  - After a start, when O(port) is set and O(wait_for_port=true), the module
    waits until the port accepts connections (or the process dies, in which
    case the tail of O(log) is in the failure message).
version_added: "1.0.0"
author:
  - drillbook contributors
options:
  name:
    description: Service name, used in messages only.
    type: str
    required: true
  command:
    description:
      - The program and its arguments (argv, no shell). Required for
        O(state=started), O(state=restarted) and O(state=reloaded).
      - The program is looked up in the PATH of the daemon's environment.
    type: list
    elements: str
  pidfile:
    description: Path of the pid file (first line holds the pid).
    type: path
    required: true
  state:
    description:
      - V(started) starts the daemon unless it is running (idempotent).
      - V(stopped) sends O(signal), waits up to O(timeout) seconds, then sends SIGKILL.
      - V(killed) sends SIGKILL to the pid at once and returns without waiting
        (chaos drills); it reports the pid and the time of the kill.
      - V(restarted) stops (if running) then starts.
      - V(reloaded) sends O(reload_signal) when running, else starts.
    type: str
    choices: [started, stopped, killed, restarted, reloaded]
    default: started
  chdir:
    description: Working directory of the daemon.
    type: path
    default: /
  env:
    description:
      - Environment variables for the daemon (values are turned into strings).
      - Secrets in it never appear in the task's result (its C(invocation)
        included) or in its messages - the values of variables whose name
        looks like a secret (C(*PASSWORD*), C(*SECRET*), C(*TOKEN*), C(*API_KEY*),
        C(*AUTH*)...) and the password part of any C(scheme://user:password@host)
        value are masked as no_log values. The other values stay visible, so
        a failure still says which release and paths were used (a blanket
        C(no_log) on the whole dict would mask short values such as C(1)
        everywhere in the result, pids included).
    type: dict
    default: {}
  inherit_env:
    description:
      - Start from the module's own environment. By default the daemon gets a
        clean one (PATH, LANG, TZ, HOME/USER/LOGNAME of O(user)) plus O(env),
        so nothing of the Ansible run leaks into a long-lived process.
    type: bool
    default: false
  user:
    description:
      - Run the daemon as this user (initgroups, setgid, setuid before exec).
        With O(daemonize=false) the command itself runs as this user.
    type: str
  group:
    description: Primary group for O(user) (default is the user's own primary group).
    type: str
  log:
    description:
      - File that receives stdout and stderr (appended, created with mode 0640,
        owned by O(user) when set). Without it output goes to /dev/null (when
        O(daemonize=true)) or is only kept for error messages.
    type: path
  port:
    description: TCP port the daemon listens on (preflight check and start-up wait).
    type: int
  host:
    description: Address of O(port). C(0.0.0.0) is checked as such and waited for on 127.0.0.1.
    type: str
    default: 127.0.0.1
  wait_for_port:
    description: With O(port), a start returns only once the port accepts connections.
    type: bool
    default: true
  daemonize:
    description:
      - V(true) the module detaches the command and writes O(pidfile).
      - V(false) the command detaches itself and writes O(pidfile).
    type: bool
    default: true
  signal:
    description: Signal for a graceful stop (name with or without C(SIG), or number).
    type: str
    default: TERM
  reload_signal:
    description: Signal sent by O(state=reloaded).
    type: str
    default: HUP
  timeout:
    description:
      - Seconds to wait for a graceful stop before SIGKILL, and for a start to
        produce its pid file and open its port.
    type: float
    default: 30
  grace:
    description:
      - Seconds a freshly started daemon must stay alive to count as started,
        when there is no port to wait for (catches a crash at start-up, such as
        a configuration error).
    type: float
    default: 0.5
  match:
    description:
      - Text that must appear in the process's command line for the pid to count
        as this service. Guards against a stale pid file whose pid was reused by
        an unrelated process after a crash.
    type: str
  umask:
    description: Umask of the daemon (octal string).
    type: str
    default: "0022"
notes:
  - Supports check mode; nothing is started, signalled or written then, but the
    busy-port preflight still runs so a check run reports it.
  - The killed state does not remove the pid file, exactly like a real crash.
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Start the reference service as an unprivileged user
  pidfile_daemon:
    name: refservice
    command: [/opt/refservice/venv/bin/uvicorn, refservice.main:app, --port, "8000"]
    chdir: /opt/refservice/current
    env:
      PYTHONPATH: /opt/refservice/current
    user: refservice
    pidfile: /opt/refservice/refservice.pid
    log: /opt/refservice/refservice.log
    port: 8000

- name: Start redis, which daemonizes itself
  pidfile_daemon:
    name: redis
    command: [redis-server, /srv/redis/redis.conf]
    daemonize: false
    user: redis
    pidfile: /srv/redis/redis.pid
    match: redis-server
    port: 6379

- name: Stop PostgreSQL with a fast shutdown (SIGINT), SIGKILL after 60 s
  pidfile_daemon:
    name: postgres
    pidfile: /srv/pg/data/postmaster.pid
    state: stopped
    signal: INT
    timeout: 60

- name: Crash the service on purpose (chaos drill)
  pidfile_daemon:
    name: refservice
    pidfile: /opt/refservice/refservice.pid
    state: killed
  register: killed

- name: Show when it died
  ansible.builtin.debug:
    msg: "pid {{ killed.pid }} killed at {{ killed.killed_at }}"
"""

RETURN = r"""
pid:
  description: Pid of the running daemon after the task (for V(killed) the pid that was killed); null when none.
  returned: always
  type: int
  sample: 4242
previous_pid:
  description: Pid that was running before the task, if any.
  returned: always
  type: int
  sample: 4100
running:
  description: Whether the daemon runs after the task.
  returned: always
  type: bool
  sample: true
killed_at:
  description: Unix time (time.time()) at which SIGKILL was sent; null when nothing was killed.
  returned: when state is killed
  type: float
  sample: 1767225600.123
forced:
  description: Whether a stop had to escalate to SIGKILL after the timeout.
  returned: when a stop happened
  type: bool
  sample: false
msg:
  description: What happened, in one line.
  returned: always
  type: str
  sample: refservice started (pid 4242)
"""

import errno
import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

POLL_S = 0.05
LOG_TAIL_BYTES = 2000


def read_pid(pidfile):
    """Return the pid named by the first line of ``pidfile``, or None."""
    try:
        with open(pidfile) as handle:
            first = handle.readline().strip()
    except (IOError, OSError):
        return None
    try:
        pid = int(first)
    except ValueError:
        return None
    return pid if pid > 0 else None


def is_alive(pid, match=None):
    """True when ``pid`` exists, is not a zombie and (optionally) matches."""
    if pid is None:
        return False
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except (IOError, OSError):
        return False
    # The state letter follows the command name, which is in parentheses and
    # may itself contain spaces or parentheses.
    state = stat[stat.rfind(")") + 2:stat.rfind(")") + 3]
    if state in ("Z", "X", "x"):
        return False
    if match:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (IOError, OSError):
            return False
        if match not in cmdline:
            return False
    return True


def parse_signal(value):
    """Turn 'TERM', 'SIGTERM' or '15' into a signal number."""
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    number = getattr(signal, text, None)
    if not isinstance(number, int):
        raise ValueError("unknown signal %r" % value)
    return int(number)


def port_in_use(host, port):
    """True when something already listens on host:port (a bind attempt fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR so that TIME_WAIT leftovers of a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return True
        raise
    finally:
        sock.close()
    return False


def port_accepts(host, port):
    """True when a TCP connection to host:port succeeds."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect((host, port))
    except (OSError, socket.timeout):
        return False
    finally:
        sock.close()
    return True


def log_tail(path):
    """Last lines of a log file, for failure messages."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


class Daemon(object):
    """One managed daemon, built from the module parameters."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.name = params["name"]
        self.command = params["command"]
        self.pidfile = params["pidfile"]
        self.chdir = params["chdir"]
        self.log = params["log"]
        self.port = params["port"]
        self.host = params["host"]
        self.daemonize = params["daemonize"]
        self.timeout = params["timeout"]
        self.match = params["match"]
        self.wait_for_port = params["wait_for_port"]
        self.grace = params["grace"]
        try:
            self.stop_signal = parse_signal(params["signal"])
            self.reload_signal = parse_signal(params["reload_signal"])
            self.umask = int(params["umask"], 8)
        except ValueError as exc:
            module.fail_json(msg="%s: %s" % (self.name, exc))
        self.uid, self.gid, self.home = self._resolve_user(params["user"], params["group"])
        self.env = self._build_env(params["env"], params["inherit_env"], params["user"])

    # -- set-up ------------------------------------------------------------
    def _resolve_user(self, user, group):
        if not user:
            return None, None, None
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            self.module.fail_json(msg="%s: user %r does not exist" % (self.name, user))
        gid = entry.pw_gid
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                self.module.fail_json(msg="%s: group %r does not exist" % (self.name, group))
        return entry.pw_uid, gid, entry.pw_dir

    def _build_env(self, extra, inherit, user):
        if inherit:
            env = dict(os.environ)
        else:
            env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
            for key in ("LANG", "LC_ALL", "TZ"):
                if key in os.environ:
                    env[key] = os.environ[key]
        if user:
            env.update({"HOME": self.home or "/", "USER": user, "LOGNAME": user})
        for key, value in (extra or {}).items():
            env[str(key)] = "" if value is None else str(value)
        return env

    # -- observation ---------------------------------------------------------
    def running_pid(self):
        pid = read_pid(self.pidfile)
        return pid if is_alive(pid, self.match) else None

    def _fail(self, msg, **extra):
        tail = log_tail(self.log)
        if tail:
            msg = "%s; last log lines:\n%s" % (msg, tail)
        self.module.fail_json(msg=msg, **extra)

    # -- start -----------------------------------------------------------------
    def preflight_port(self):
        if self.port is None:
            return
        try:
            busy = port_in_use(self.host, self.port)
        except OSError as exc:
            self.module.fail_json(
                msg="cannot check port %s on %s for %s: %s" % (self.port, self.host, self.name, exc))
        if busy:
            self.module.fail_json(
                msg="port %s on %s is already in use; cannot start %s" % (self.port, self.host, self.name))

    def start(self):
        if not self.command:
            self.module.fail_json(msg="%s: command is required to start it" % self.name)
        if self.chdir and not os.path.isdir(self.chdir):
            self.module.fail_json(msg="%s: chdir %s is not a directory" % (self.name, self.chdir))
        if self.log and not os.path.isdir(os.path.dirname(self.log) or "."):
            self.module.fail_json(msg="%s: log directory of %s does not exist" % (self.name, self.log))
        if self.daemonize:
            pid = self._spawn_detached()
        else:
            pid = self._run_self_detaching()
        self._wait_started(pid)
        return self.running_pid() or pid

    def _open_log(self):
        """Open the log for appending, owned by the daemon's user."""
        if not self.log:
            return os.open(os.devnull, os.O_WRONLY)
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        if self.uid is not None:
            os.fchown(fd, self.uid, self.gid)
        return fd

    def _drop_privileges(self):
        if self.uid is None:
            return
        user = pwd.getpwuid(self.uid).pw_name
        os.initgroups(user, self.gid)
        os.setgid(self.gid)
        os.setuid(self.uid)

    @staticmethod
    def _reset_signals():
        # Python ignores SIGPIPE (and Ansible may ignore others); an exec'd
        # daemon must start with the default dispositions.
        for name in ("SIGPIPE", "SIGXFSZ", "SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGCHLD"):
            number = getattr(signal, name, None)
            if number is not None:
                signal.signal(number, signal.SIG_DFL)

    def _spawn_detached(self):
        """Double-fork, setsid, write the pid file, exec; report exec errors back."""
        read_end, write_end = os.pipe()  # both close-on-exec
        child = os.fork()
        if child == 0:  # first child: new session, fork again, exit
            try:
                os.close(read_end)
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                self._exec_daemon(write_end)
            except BaseException as exc:  # report anything to the parent, then die
                try:
                    os.write(write_end, ("ERR %s\n" % exc).encode("utf-8", "replace"))
                finally:
                    os._exit(127)
            os._exit(127)
        os.close(write_end)
        os.waitpid(child, 0)
        chunks = []
        while True:
            data = os.read(read_end, 4096)
            if not data:
                break
            chunks.append(data)
        os.close(read_end)
        pid = None
        error = None
        for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
            if line.startswith("PID "):
                pid = int(line[4:])
            elif line.startswith("ERR "):
                error = line[4:]
        if error or pid is None:
            self._fail("%s failed to start: %s" % (self.name, error or "no pid reported"))
        return pid

    def _exec_daemon(self, report_fd):
        """Runs in the grandchild: become the daemon, then exec the command."""
        os.chdir(self.chdir or "/")
        os.umask(self.umask)
        os.setpgid(0, 0)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        log_fd = self._open_log()
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in (null_fd, log_fd):
            if fd > 2:
                os.close(fd)
        # Nothing of Ansible's (its pipes above all) may stay open in a daemon,
        # or the task would wait for the daemon to exit.
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, 65536)
        pid = os.getpid()
        tmp = "%s.%d.tmp" % (self.pidfile, pid)
        with open(tmp, "w") as handle:
            handle.write("%d\n" % pid)
        os.rename(tmp, self.pidfile)
        os.write(report_fd, ("PID %d\n" % pid).encode("ascii"))
        self._drop_privileges()
        self._reset_signals()
        os.execvpe(self.command[0], self.command, self.env)

    def _run_self_detaching(self):
        """Run a command that daemonizes itself; return the pid it wrote."""
        if self.log:
            out = os.fdopen(self._open_log(), "ab")
        else:
            out = tempfile.TemporaryFile()

        def before_exec():
            os.umask(self.umask)
            self._drop_privileges()

        try:
            proc = subprocess.Popen(
                self.command, cwd=self.chdir or "/", env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True,
                preexec_fn=before_exec)
        except OSError as exc:
            out.close()
            self.module.fail_json(msg="%s failed to start: %s: %s" % (self.name, self.command[0], exc))
        try:
            rc = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        if self.log:
            out.close()
            output = log_tail(self.log)
        else:
            out.seek(0)
            output = out.read().decode("utf-8", "replace")[-LOG_TAIL_BYTES:]
            out.close()
        if rc != 0:
            what = "timed out after %ss" % self.timeout if rc is None else "exited with %s" % rc
            self.module.fail_json(msg="%s failed to start: %s %s; output:\n%s"
                                  % (self.name, " ".join(self.command), what, output))
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            pid = self.running_pid()
            if pid:
                return pid
            time.sleep(POLL_S)
        self._fail("%s started but %s names no live process after %ss"
                   % (self.name, self.pidfile, self.timeout))
        return None

    def _wait_started(self, pid):
        """Catch a daemon that dies at once, and wait for its port (or the grace time)."""
        started = time.time()
        deadline = started + self.timeout
        waiting_port = self.port is not None and self.wait_for_port
        while True:
            time.sleep(POLL_S)
            if not is_alive(pid) and not self.running_pid():
                self._fail("%s exited right after it started (pid %s)" % (self.name, pid))
            if waiting_port:
                if port_accepts(self.host, self.port):
                    return
            elif time.time() - started >= self.grace:
                return
            if time.time() >= deadline:
                self._fail("%s (pid %s) did not open port %s on %s within %ss"
                           % (self.name, pid, self.port, self.host, self.timeout))

    # -- stop ------------------------------------------------------------------
    def stop(self, pid):
        """Signal, wait up to the timeout, then SIGKILL. Returns True if forced."""
        self._signal(pid, self.stop_signal)
        if self._wait_gone(pid, self.timeout):
            self._forget_pidfile()
            return False
        self._signal(pid, signal.SIGKILL, group=self.daemonize)
        if not self._wait_gone(pid, 10):
            self.module.fail_json(msg="%s (pid %s) survived SIGKILL" % (self.name, pid))
        self._forget_pidfile()
        return True

    def _signal(self, pid, number, group=False):
        try:
            if group and os.getpgid(pid) == pid:
                os.killpg(pid, number)
            else:
                os.kill(pid, number)
        except ProcessLookupError:
            pass
        except OSError as exc:
            self.module.fail_json(msg="cannot signal %s (pid %s): %s" % (self.name, pid, exc))

    @staticmethod
    def _wait_gone(pid, timeout):
        deadline = time.time() + timeout
        while is_alive(pid):
            if time.time() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def _forget_pidfile(self):
        # Our own pid file goes; a daemon that writes its own removes it itself
        # (and PostgreSQL's must never be removed by anyone else).
        if self.daemonize:
            try:
                os.unlink(self.pidfile)
            except OSError:
                pass

    def kill(self, pid):
        killed_at = time.time()
        self._signal(pid, signal.SIGKILL)
        return killed_at


_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|AUTH|CREDENTIAL)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@/\s]+)@")


def secret_env_values(env):
    """Values of ``env`` that must never be shown: secret-named variables, passwords inside URLs."""
    secrets = set()
    for name, value in (env or {}).items():
        text = "%s" % (value,)
        if not text:
            continue
        if _SECRET_NAME.search(name):
            secrets.add(text)
        for password in _URL_PASSWORD.findall(text):
            secrets.add(password)
            secrets.add(text)
    return secrets


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str"),
            pidfile=dict(type="path", required=True),
            state=dict(type="str", default="started",
                       choices=["started", "stopped", "killed", "restarted", "reloaded"]),
            chdir=dict(type="path", default="/"),
            env=dict(type="dict", default={}),
            inherit_env=dict(type="bool", default=False),
            user=dict(type="str"),
            group=dict(type="str"),
            log=dict(type="path"),
            port=dict(type="int"),
            host=dict(type="str", default="127.0.0.1"),
            wait_for_port=dict(type="bool", default=True),
            daemonize=dict(type="bool", default=True),
            signal=dict(type="str", default="TERM"),
            reload_signal=dict(type="str", default="HUP"),
            timeout=dict(type="float", default=30.0),
            match=dict(type="str"),
            grace=dict(type="float", default=0.5),
            umask=dict(type="str", default="0022"),
        ),
        required_if=[
            ("state", "started", ("command",)),
            ("state", "restarted", ("command",)),
            ("state", "reloaded", ("command",)),
        ],
        supports_check_mode=True,
    )
    # Before anything can fail or exit: exit_json/fail_json mask these everywhere.
    module.no_log_values.update(secret_env_values(module.params["env"]))
    state = module.params["state"]
    daemon = Daemon(module)
    before = daemon.running_pid()
    result = dict(changed=False, previous_pid=before, pid=before, running=before is not None)
    name = daemon.name

    if state == "started":
        if before:
            module.exit_json(msg="%s is running (pid %s)" % (name, before), **result)
        daemon.preflight_port()
        if module.check_mode:
            module.exit_json(msg="%s would be started" % name, **dict(result, changed=True))
        pid = daemon.start()
        module.exit_json(msg="%s started (pid %s)" % (name, pid),
                         **dict(result, changed=True, pid=pid, running=True))

    if state == "stopped":
        if not before:
            module.exit_json(msg="%s is not running" % name, **result)
        if module.check_mode:
            module.exit_json(msg="%s would be stopped" % name, **dict(result, changed=True))
        forced = daemon.stop(before)
        module.exit_json(msg="%s stopped (pid %s%s)" % (name, before, ", forced with SIGKILL" if forced else ""),
                         **dict(result, changed=True, pid=None, running=False, forced=forced))

    if state == "killed":
        if not before:
            module.exit_json(msg="%s is not running; nothing to kill" % name,
                             **dict(result, killed_at=None))
        if module.check_mode:
            module.exit_json(msg="%s (pid %s) would be killed" % (name, before),
                             **dict(result, changed=True, killed_at=None))
        killed_at = daemon.kill(before)
        module.exit_json(msg="%s (pid %s) killed with SIGKILL" % (name, before),
                         **dict(result, changed=True, pid=before, running=False, killed_at=killed_at))

    if state == "restarted":
        if module.check_mode:
            module.exit_json(msg="%s would be restarted" % name, **dict(result, changed=True))
        forced = daemon.stop(before) if before else False
        daemon.preflight_port()
        pid = daemon.start()
        module.exit_json(msg="%s restarted (pid %s)" % (name, pid),
                         **dict(result, changed=True, pid=pid, running=True, forced=forced))

    if state == "reloaded":
        if module.check_mode:
            module.exit_json(msg="%s would be reloaded" % name, **dict(result, changed=True))
        if before:
            daemon._signal(before, daemon.reload_signal)
            module.exit_json(msg="%s (pid %s) reloaded" % (name, before), **dict(result, changed=True))
        daemon.preflight_port()
        pid = daemon.start()
        module.exit_json(msg="%s was not running; started (pid %s)" % (name, pid),
                         **dict(result, changed=True, pid=pid, running=True))


if __name__ == "__main__":
    main()
