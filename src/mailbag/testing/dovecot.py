"""A private Dovecot instance on loopback, the reference for benchmarks and
differential tests. Never the system service: own config, own directories,
own ports, stopped by PID.

Needs Debian's dovecot-imapd, dovecot-pop3d, dovecot-lmtpd. Running as root,
mail processes run as `nobody` and login processes as `dovenull` (Dovecot
refuses root for both).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateDovecot:
    def __init__(self, root: Path | None, users: dict[str, str]) -> None:
        # Mail processes run as `nobody` when we are root, so every directory on
        # the way to the mail store must be traversable by it; pytest's and
        # TemporaryDirectory's folders are 0700. Use our own folder under /tmp.
        self._own_root = root is None or os.geteuid() == 0
        if self._own_root:
            root = Path(tempfile.mkdtemp(prefix="mailbag-dovecot-"))
            root.chmod(0o755)
        assert root is not None
        self.root = root
        self.users = users
        self.ports = {"imap": free_port(), "pop3": free_port(), "lmtp": free_port()}
        self.binary = dovecot_binary()
        if self.binary is None:
            raise RuntimeError("dovecot is not installed")

    def _ids(self) -> tuple[int, int, str, str, str]:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid, "dovecot", "dovenull", "dovecot"
        me = pwd.getpwuid(os.geteuid())
        return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name, str(me.pw_gid)

    def config_text(self) -> str:
        uid, gid, internal_user, login_user, internal_group = self._ids()
        r = self.root
        return f"""
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{r}/mail/%u
first_valid_uid = 1
mail_uid = {uid}
mail_gid = {gid}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={r}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.ports["imap"]}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 2
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.ports["lmtp"]}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@localhost
}}
"""

    def start(self, timeout: float = 20) -> PrivateDovecot:
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        uid, gid, *_ = self._ids()
        for sub in ("mail", "home"):
            os.chown(self.root / sub, uid, gid)
        (self.root / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items())
        )
        conf = self.root / "dovecot.conf"
        conf.write_text(self.config_text())
        assert self.binary is not None
        subprocess.run([self.binary, "-c", str(conf)], check=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for port in self.ports.values():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dovecot did not start: {self.log()[-2000:]}")

    def pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def child_pids(self) -> list[int]:
        """The master and every process under it (for memory measurements)."""
        master = self.pid()
        if master is None:
            return []
        out = [master]
        frontier = [master]
        while frontier:
            parent = frontier.pop()
            try:
                children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            except OSError:
                continue
            for c in children:
                out.append(int(c))
                frontier.append(int(c))
        return out

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> PrivateDovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
