"""`mailbag serve --workers 2`: several server processes on one store.

Real processes and sockets: the sessions below land on both workers (each
test checks which process holds which connection through /proc), and what
one worker's sessions do must reach the other's.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.config import PROTOCOLS
from mailbag.testing.process import ServeProcess, mailbag_command

PW = "s3cret-pass"


def children(server: ServeProcess) -> list[int]:
    assert server.proc is not None
    path = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    return [int(p) for p in path.read_text().split()]


def socket_inodes(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def serving_pid(server: ServeProcess, sock: socket.socket) -> int:
    """The worker holding the server side of a client's connection."""
    client_port = sock.getsockname()[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == client_port:
                inode = int(fields[9])
    assert inode is not None
    for pid in children(server):
        if inode in socket_inodes(pid):
            return pid
    raise AssertionError("no worker holds the connection")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    srv = ServeProcess(tmp_path / "d", extra_args=["--workers", "2"]).start()
    try:
        srv.add_user("alice", PW)
        yield srv
    finally:
        srv.stop()


def imap_on_both(server: ServeProcess, n: int = 12) -> list[imaplib.IMAP4]:
    """At least `n` logged-in IMAP sessions, some on each worker. Which
    worker accepts a connection is the kernel's choice (the one that calls
    accept() first), so a run of them may land on one."""
    sessions: list[imaplib.IMAP4] = []
    pids: set[int] = set()
    while len(sessions) < n or len(pids) < 2:
        assert len(sessions) < 200, f"every session landed on one worker: {pids}"
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        imap.login("alice", PW)
        sessions.append(imap)
        pids.add(serving_pid(server, imap.sock))
    return sessions


def deliver(server: ServeProcess, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("bob@example.org", ["alice@localhost"], f"Subject: {subject}\r\n\r\nhi\r\n")


def test_workers_are_processes_of_their_own(server: ServeProcess) -> None:
    pids = children(server)
    assert len(pids) == 2
    assert server.proc is not None and server.proc.pid not in pids
    # The listening lines come from the parent, once for each port.
    assert sum("imap listening on" in line for line in server.stdout_lines) == 1


def test_idle_sessions_on_every_worker_see_new_mail_at_once(server: ServeProcess) -> None:
    sessions = imap_on_both(server)
    for imap in sessions:
        imap.select("INBOX")
        imap.send(imap._new_tag() + b" IDLE\r\n")
        assert imap.readline().startswith(b"+ ")
    for n in range(1, 4):
        deliver(server, f"m{n}")
        started = time.monotonic()
        for imap in sessions:
            assert imap.readline() == b"* %d EXISTS\r\n" % n
            assert imap.readline().endswith(b" RECENT\r\n")  # imaplib speaks rev1
        # The other worker hears of it through its doorbell, not its 0.5 s
        # polling; a generous bound for a loaded machine.
        assert time.monotonic() - started < 2.0
    for imap in sessions:
        imap.send(b"DONE\r\n")
        imap.readline()
        imap.logout()


def test_flags_and_expunges_cross_workers(server: ServeProcess) -> None:
    deliver(server, "one")
    deliver(server, "two")
    sessions = imap_on_both(server, 8)
    for imap in sessions:
        imap.select("INBOX")
    writer = sessions[0]
    writer.store("1", "+FLAGS", "(\\Flagged $Todo)")
    writer.store("2", "+FLAGS", "(\\Deleted)")
    writer.expunge()
    deadline = time.monotonic() + 5
    for imap in sessions[1:]:
        while True:
            imap.untagged_responses.clear()
            typ, _ = imap.noop()
            assert typ == "OK"
            fetched = b" ".join(imap.untagged_responses.get("FETCH", []))  # type: ignore[arg-type]
            if b"\\Flagged" in fetched and imap.untagged_responses.get("EXPUNGE") == [b"2"]:
                break
            # Records may arrive between two NOOPs; each must come once.
            assert time.monotonic() < deadline, imap.untagged_responses
            time.sleep(0.05)
    for imap in sessions:
        imap.logout()


def test_recent_goes_to_one_session_of_all_workers(server: ServeProcess) -> None:
    """RFC 3501 §2.3.2: one session, whichever worker runs it, sees a new
    message as \\Recent."""
    sessions = imap_on_both(server, 10)
    for round in range(1, 4):
        deliver(server, f"new {round}")
        # Every SELECT sent before any answer is read: the workers decide
        # their claims at the same time.
        tags = []
        for imap in sessions:
            tags.append(imap._new_tag())
            imap.send(tags[-1] + b" SELECT INBOX\r\n")
        recent = []
        for imap, tag in zip(sessions, tags, strict=True):
            while not (line := imap.readline()).startswith(tag + b" OK"):
                assert not line.startswith(tag), line
                if line.endswith(b" RECENT\r\n"):
                    recent.append(int(line.split()[1]))
        assert sorted(recent) == [0] * (len(sessions) - 1) + [1]
    for imap in sessions:
        imap.logout()


def test_pop3_maildrop_lock_holds_across_workers_and_dies_with_its_worker(
    server: ServeProcess,
) -> None:
    deliver(server, "for pop")
    holder = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    holder.user("alice")
    holder.pass_(PW)
    holder_pid = serving_pid(server, holder.sock)
    refused_on = set()
    tries = 0
    while len(refused_on) < 2:  # refused by both workers, the holder's too
        tries += 1
        assert tries < 200, refused_on
        other = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        other.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            other.pass_(PW)
        refused_on.add(serving_pid(server, other.sock))
        other.close()
    # The worker dies with the session: the lock goes with it, and the
    # parent starts a new worker in its place.
    os.kill(holder_pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        pids = children(server)
        if len(pids) == 2 and holder_pid not in pids:
            break
        assert time.monotonic() < deadline, pids
        time.sleep(0.1)
    for _ in range(12):
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        pop.user("alice")
        pop.pass_(PW)  # not locked any more, whichever worker answers
        assert pop.stat()[0] == 1
        pop.quit()
    holder.close()


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # an orphan's zombie, when nobody reaps it here


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path / "d", extra_args=["--workers", "2"]).start()
    pids = children(srv)
    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait(10)
    deadline = time.monotonic() + 20
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, [p for p in pids if not gone(p)]
        time.sleep(0.1)
    srv.proc = None  # nothing left to stop


def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path / "d", extra_args=["--workers", "2"]).start()
    pids = children(srv)
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    assert all(gone(pid) for pid in pids)
    assert srv.stdout_lines[-1] == "mailbag: stopped"


def test_taken_port_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = ServeProcess(tmp_path / "d", extra_args=["--workers", "2"], ports={"imap": str(port)})
        with pytest.raises(RuntimeError, match="already in use"):
            srv.start()


def test_worker_log_lines_name_their_worker(server: ServeProcess) -> None:
    deliver(server, "logged")
    deadline = time.monotonic() + 10
    while "[w0]" not in server.log() and "[w1]" not in server.log():
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.1)


def test_bad_certificate_is_one_config_error(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    cfg = tmp_path / "mailbag.toml"
    cfg.write_text(f'[tls]\ncert = "{tmp_path}/cert.pem"\nkey = "{tmp_path}/key.pem"\n')
    r = subprocess.run(
        [*mailbag_command(), "serve", "--workers", "2", "--config", str(cfg)]
        + ["--data-dir", str(tmp_path / "d")]
        + [arg for proto in PROTOCOLS for arg in (f"--{proto}-port", "0")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 78, r.stderr
    assert r.stderr.count(b"cannot load certificate") == 1, r.stderr
