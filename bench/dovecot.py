"""A private, throw-away Dovecot instance for comparison benchmarks.

Why private: the benchmark must not depend on (or disturb) a system Dovecot, so the
instance gets its own config file, base_dir, state, log and maildirs inside a temporary
directory, and listens on 127.0.0.1 on free high ports. Why the limits below: a stock
Dovecot refuses the 11th connection per user and IP, caps services at 100 processes, and
-- the trap that would make the comparison unfair -- runs out of inotify instances at
128 per uid, after which IDLE silently falls back to polling every 30 s. We raise
``fs.inotify.max_user_instances`` and count inotify warnings in Dovecot's log so a
polluted run is visible in the figures.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import proctools
from imap_idle_client import wait_for_tls_greeting
from proctools import child_preexec, free_port, kill_snapshot, snapshot_tree, wait_for_greeting

MAIL_USER = "pmbench"
_INOTIFY = Path("/proc/sys/fs/inotify")


def log(message: str) -> None:
    """Progress goes to stderr; stdout is reserved for the one JSON line."""
    proctools.log("dovecot", message)


def ensure_installed() -> str:
    """Install dovecot-imapd and dovecot-lmtpd from Debian if missing; return the version."""
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/lmtp").exists():
        log("installing dovecot-imapd dovecot-lmtpd with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "dovecot-imapd", "dovecot-lmtpd"],
        ):
            subprocess.run(cmd, env=env, check=True, stdout=sys.stderr, timeout=600)
    out = subprocess.run(
        ["dovecot", "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.split()[0]


def raise_inotify_limits(sessions: int) -> tuple[dict[str, object], dict[str, int]]:
    """Raise the per-uid inotify limits so each idling imap process gets its instance.

    Returns the record for the JSON (the value in force, or why it could not be
    raised: the run is still informative, the log-warning count will show polling)
    and the previous values of what was changed, for :func:`restore_inotify_limits`.
    """
    wanted = {"max_user_instances": 2 * sessions + 1024, "max_user_watches": 8 * sessions + 65536}
    record: dict[str, object] = {}
    previous: dict[str, int] = {}
    for name, value in wanted.items():
        path = _INOTIFY / name
        try:
            current = int(path.read_text())
            if current < value:
                path.write_text(f"{value}\n")
                previous[name] = current
            record[name] = int(path.read_text())
        except OSError as exc:
            record[name] = f"not raised: {exc}"
    return record, previous


def restore_inotify_limits(previous: dict[str, int]) -> None:
    """Put back the limits :func:`raise_inotify_limits` changed (best effort)."""
    for name, value in previous.items():
        try:
            (_INOTIFY / name).write_text(f"{value}\n")
        except OSError as exc:
            log(f"could not restore {name}={value}: {exc}")


def ensure_mail_user() -> tuple[str, str]:
    """Create an unprivileged system user to own the maildirs; fall back to root."""
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", MAIL_USER],
            capture_output=True,
            timeout=30,
        )
        if result.returncode != 0:
            log(f"useradd failed ({result.stderr!r}); running mail processes as root")
            return "root", "root"
    return MAIL_USER, MAIL_USER


@dataclass(slots=True)
class DovecotInstance:
    """One private Dovecot: configure with :meth:`write_config`, then start/stop."""

    workdir: Path
    users: list[tuple[str, str]]
    sessions: int
    hibernate_secs: int = 0
    # Dovecot's "high-performance" login mode (imap-login processes serving many
    # clients): what a careful operator picks for connection storms.
    login_processes: int = 0
    # Implicit TLS on imaps_port with ``ssl = required`` (a self-signed EC certificate
    # in workdir); the plaintext listener stays for the readiness probe only.
    tls: bool = False
    # Appended to dovecot.conf as is (e.g. the quota plugin of the QUOTA diff test).
    extra_config: str = ""
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    def write_config(self) -> None:
        """Write passwd file and dovecot.conf into *workdir*."""
        mail_user, mail_group = ensure_mail_user()
        self.workdir.chmod(0o755)  # mkdtemp makes 0700; auth and imap run as other uids
        for sub in ("run", "state", "mail"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.workdir / "mail", mail_user, mail_group)
        passwd = self.workdir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users))
        shutil.chown(passwd, "root", "dovecot")
        passwd.chmod(0o640)
        if self.tls:
            from pushmail.transport.tls import ensure_certificate

            ensure_certificate(self.workdir, "localhost")  # read by doveconf, as root
        self.config_path.write_text(render_config(self, mail_user, mail_group))

    def start(self, timeout: float = 60.0) -> None:
        """Start in the foreground (``-F``) in its own session, wait for both listeners."""
        self.write_config()
        check = subprocess.run(
            ["doveconf", "-c", str(self.config_path), "-n"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        for line in check.stderr.splitlines():
            log(f"doveconf: {line}")
        check.check_returncode()
        self.process = subprocess.Popen(
            ["dovecot", "-c", str(self.config_path), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            start_new_session=True,
            preexec_fn=child_preexec,
        )
        deadline = time.monotonic() + timeout
        for port, greeting in ((self.imap_port, b"* OK"), (self.lmtp_port, b"220")):
            wait_for_greeting(port, greeting, deadline, self.process)
        if self.tls:
            wait_for_tls_greeting(self.imaps_port, deadline, self.process)
        imaps = f" imaps 127.0.0.1:{self.imaps_port}" if self.tls else ""
        log(f"running: imap 127.0.0.1:{self.imap_port}{imaps} lmtp 127.0.0.1:{self.lmtp_port}")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("dovecot is not running")
        return self.process.pid

    def inotify_warnings(self) -> int:
        """Count inotify warnings/errors in the log: each means a process whose IDLE
        fell back to polling (``mailbox_idle_check_interval``, 30 s by default)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        lines = text.lower().splitlines()
        return sum(
            1 for line in lines if "inotify" in line and ("warning" in line or "error" in line)
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the master (it stops its children), then SIGKILL whatever is left."""
        if self.process is None:
            return
        tree = snapshot_tree(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        kill_snapshot(tree)
        if self.process.poll() is None:
            self.process.wait(5)
        self.process = None


def render_config(inst: DovecotInstance, mail_user: str, mail_group: str) -> str:
    """The complete dovecot.conf text (no includes of the system config)."""
    base = inst.workdir
    n = inst.sessions
    procs = n + 200
    clients = 2 * n + 1000
    first_uid = pwd.getpwnam(mail_user).pw_uid
    hibernate = login = ""
    if inst.hibernate_secs > 0:
        # At most 6,000 clients per imap-hibernate process: each may hold only 20,000
        # fds here and a hibernated client holds its socket plus notify fds (at 15,000
        # per process it failed with EMFILE at ~10,000), so Dovecot starts as many
        # hibernate processes as it needs.
        per_proc = min(clients, 6000)
        hibernate = f"""
imap_hibernate_timeout = {inst.hibernate_secs}s
service imap-hibernate {{
  unix_listener imap-hibernate {{
    mode = 0666
  }}
  client_limit = {per_proc}
  process_limit = {-(-clients // per_proc) + 1}
}}
service imap {{
  unix_listener imap-master {{
    mode = 0666
  }}
}}
"""
    if inst.login_processes > 0:
        # A TLS client costs an imap-login process two fds for its whole life (the TCP
        # socket and the socketpair to the imap process it proxies for), so with TLS
        # at most 9,000 per process keeps each under the 20,000-fd limit; Dovecot
        # starts more login processes as they fill.
        per_login = min(clients, 9000 if inst.tls else 15000)
        login = f"""
service imap-login {{
  service_count = 0
  process_min_avail = {inst.login_processes}
  client_limit = {per_login}
}}
"""
    ssl, imaps = "ssl = no", "port = 0"
    if inst.tls:
        ssl = f"ssl = required\nssl_cert = <{base}/tls-cert.pem\nssl_key = <{base}/tls-key.pem"
        imaps = f"address = 127.0.0.1\n    port = {inst.imaps_port}\n    ssl = yes"
    return f"""# Generated by bench/dovecot.py for one benchmark run; safe to delete.
base_dir = {base}/run
state_dir = {base}/state
instance_name = pmbench-{inst.imap_port}
log_path = {inst.log_path}
protocols = imap lmtp
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {first_uid}
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{base}/mail/%u
default_login_user = dovenull
default_internal_user = dovecot
default_process_limit = {procs}
default_client_limit = {clients}
default_vsz_limit = 0
lmtp_save_to_detail_mailbox = no
protocol imap {{
  mail_max_userip_connections = {n + 10}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
  default_fields = uid={mail_user} gid={mail_group} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {inst.imap_port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
service lmtp {{
  idle_kill = 1h  # keep the process the readiness probe started: stable baseline
  process_limit = 64
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {inst.lmtp_port}
  }}
}}
service imap {{
  process_limit = {procs}
}}
service anvil {{
  client_limit = {clients}
}}
service auth {{
  # Dovecot sizes this for every login/lmtp process at its limit at once.
  client_limit = {4 * procs + 1000}
}}
service stats {{
  client_limit = {clients}
}}
{hibernate}{login}{inst.extra_config}"""
