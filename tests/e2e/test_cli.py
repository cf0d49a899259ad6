"""The `mailbag` command as a person uses it (issue 2 §7)."""

from __future__ import annotations

import email
import os
import poplib
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from mailbag.testing.process import ServeProcess, mailbag_command, run_cli

PW = b"s3cret-pass\n"


def test_user_add_list_passwd_delete(tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = run_cli(["user", "add", "alice", "--password-stdin"], data, input=PW)
    assert r.returncode == 0, r.stderr
    assert b"alice@localhost" in r.stdout  # a bare local part means the default domain
    r = run_cli(["user", "add", "Alice@LOCALHOST", "--password-stdin"], data, input=PW)
    assert r.returncode != 0 and b"exists already" in r.stderr
    r = run_cli(["user", "add", "carol@example.org", "--password-stdin"], data, input=PW)
    assert r.returncode == 0
    assert b"not a local domain" in r.stderr
    r = run_cli(["user", "list"], data)
    assert r.stdout.decode().split() == ["alice@localhost", "carol@example.org"]
    r = run_cli(["user", "passwd", "alice", "--password-stdin"], data, input=b"new\n")
    assert r.returncode == 0
    r = run_cli(["user", "passwd", "nobody", "--password-stdin"], data, input=b"new\n")
    assert r.returncode == 67
    r = run_cli(["user", "delete", "carol@example.org", "--yes"], data)
    assert r.returncode == 0
    assert run_cli(["user", "list"], data).stdout.decode().split() == ["alice@localhost"]
    assert run_cli(["user", "delete", "carol@example.org", "--yes"], data).returncode == 67


def test_password_never_in_output_or_files(tmp_path: Path) -> None:
    data = tmp_path / "d"
    secret = b"Unguessable-Pa55word"
    r = run_cli(["user", "add", "alice", "--password-stdin"], data, input=secret + b"\n")
    assert secret not in r.stdout + r.stderr
    for path in data.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_serve_prints_listeners_and_hint_then_stops_on_sigterm(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "d").start()
    try:
        lines = server.stdout_lines
        for proto in ("smtp", "lmtp", "pop3", "pop3s"):
            assert any(
                line == f"mailbag: {proto} listening on 127.0.0.1:{server.port(proto)}"
                for line in lines
            ), lines
        assert any("fingerprint" in line for line in lines)
        assert (tmp_path / "d" / "tls" / "cert.pem").exists()
        key = tmp_path / "d" / "tls" / "key.pem"
        assert key.stat().st_mode & 0o777 == 0o600
    finally:
        assert server.stop() == 0
    assert any("mailbag user add" in line for line in server.stdout_lines)


def test_sigint_also_stops_cleanly_and_says_goodbye(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "d").start()
    server.add_user("alice", "pw")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    # The idle POP3 client is told goodbye before the process exits.
    line = pop.file.readline()
    assert line.startswith(b"-ERR"), line
    assert server.proc.wait(20) == 0


def test_port_off_and_taken_port(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "d", ports={"lmtp": "off", "pop3s": "off"}).start()
    try:
        assert "lmtp" not in server.ports and "pop3s" not in server.ports
        taken = server.port("smtp")
        r = subprocess.run(
            [
                *mailbag_command(),
                "serve",
                "--data-dir",
                str(tmp_path / "d2"),
                "--smtp-port",
                str(taken),
                "--lmtp-port",
                "0",
                "--pop3-port",
                "0",
                "--pop3s-port",
                "0",
                "--imap-port",
                "0",
                "--imaps-port",
                "0",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert r.returncode != 0
        assert f"port {taken}".encode() in r.stderr and b"already in use" in r.stderr
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[listeners]\nsmtp = 'abc'\n", b"[listeners] smtp: expected a port number"),
        ("[limits]\nmax_message_size = -1\n", b"[limits] max_message_size"),
        ("[pop3]\ndelete_mode = 'sometimes'\n", b"[pop3] delete_mode: expected one of"),
        ("[server]\nevent_loop = 'trio'\n", b"[server] event_loop: expected one of"),
        ("[server]\nworkers = 0\n", b"[server] workers: expected 1 to 64 processes"),
        ("[server]\nworkers = 'two'\n", b"[server] workers: expected a number of processes"),
        ("[server]\nfoo = 1\n", b"[server] foo: unknown key"),
        ("[nosuch]\n", b"unknown section [nosuch]"),
        ("[tls]\ncert = '/x.pem'\n", b"cert and key must be given together"),
        ("not toml at all [", b"not valid TOML"),
    ],
)
def test_bad_config_file_names_key_and_problem(tmp_path: Path, toml: str, expected: bytes) -> None:
    cfg = tmp_path / "mailbag.toml"
    cfg.write_text(toml)
    r = subprocess.run(
        [*mailbag_command(), "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 78
    assert str(cfg).encode() in r.stderr
    assert expected in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; use a file instead")
def test_unwritable_data_dir_non_root(tmp_path: Path) -> None:  # pragma: no cover - CI is root
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    r = run_cli(["user", "list"], ro / "sub")
    assert r.returncode == 73


def test_unusable_data_dir(tmp_path: Path) -> None:
    # A regular file where the data dir should be is unusable even for root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run(
        [*mailbag_command(), "serve", "--data-dir", str(blocker / "data")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 73
    assert b"data dir" in r.stderr and b"not usable" in r.stderr


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env_dir = tmp_path / "from-env"
    r = run_cli(["user", "add", "dave", "--password-stdin"], env_dir, input=PW)
    assert r.returncode == 0
    assert (env_dir / "mailbag.db").exists()


def test_deliver_exit_codes_and_bytes(tmp_path: Path) -> None:
    data = tmp_path / "d"
    run_cli(["user", "add", "alice", "--password-stdin"], data, input=PW)
    run_cli(["user", "add", "bob", "--password-stdin"], data, input=PW)
    msg = b"From: x@example.net\nSubject: via deliver\n\nhello\n.dot line\n"
    r = run_cli(["deliver", "-f", "x@example.net", "alice", "bob@localhost"], data, input=msg)
    assert r.returncode == 0, r.stderr
    r = run_cli(["deliver", "nobody@localhost"], data, input=msg)
    assert r.returncode == 67
    r = run_cli(["deliver", "alice", "nobody"], data, input=msg)
    assert r.returncode == 67  # not durable for every recipient
    r = run_cli(["deliver", "someone@elsewhere.example"], data, input=msg)
    assert r.returncode == 67
    # The message reads back over POP3 with CRLF line ends and trace headers.
    with ServeProcess(data) as server:
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        pop.user("bob")
        pop.pass_(PW.decode().strip())
        count, _ = pop.stat()
        assert count == 1
        _, lines, _ = pop.retr(1)
        raw = b"\r\n".join(lines) + b"\r\n"
        assert raw.startswith(b"Return-Path: <x@example.net>\r\nReceived: ")
        assert raw.endswith(msg.replace(b"\n", b"\r\n"))
        parsed = email.message_from_bytes(raw)
        assert parsed["Subject"] == "via deliver"
        pop.quit()


def test_deliver_reaches_sessions_of_the_running_server(tmp_path: Path) -> None:
    """`mailbag deliver` run by an MTA is another process than the server:
    the server's sessions must still hear of its mail, as of mail over LMTP
    (an IDLE session at once, RFC 2177 §3; another at its next NOOP)."""
    import imaplib
    import time

    data = tmp_path / "d"
    run_cli(["user", "add", "alice", "--password-stdin"], data, input=PW)
    with ServeProcess(data) as server:
        idler = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        idler.login("alice", PW.decode().strip())
        idler.select("INBOX")
        other = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        other.login("alice", PW.decode().strip())
        other.select("INBOX")
        tag = idler._new_tag()
        idler.send(tag + b" IDLE\r\n")
        assert idler.readline().startswith(b"+ ")
        r = run_cli(["deliver", "alice"], data, input=b"Subject: from the MTA\n\nhi\n")
        assert r.returncode == 0, r.stderr
        started = time.monotonic()
        assert idler.readline() == b"* 1 EXISTS\r\n"
        # follow.py looks every 50 ms; a generous bound for a loaded machine.
        assert time.monotonic() - started < 5
        idler.send(b"DONE\r\n")
        while not idler.readline().startswith(tag):
            pass
        typ, fetched = idler.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: from the MTA" in fetched[0][1]  # type: ignore[index]
        other.untagged_responses.clear()  # SELECT's EXISTS 0
        typ, _ = other.noop()
        assert typ == "OK" and other.untagged_responses.get("EXISTS") == [b"1"]
        for imap in (idler, other):
            imap.logout()


def test_serve_refuses_to_start_twice_on_same_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = ServeProcess(tmp_path / "d", ports={"pop3": str(port)})
        with pytest.raises(RuntimeError, match="already in use"):
            server.start()


def test_serve_on_uvloop(tmp_path: Path) -> None:
    """The optional uvloop event loop (issue 4 measures on both loops): every
    protocol works on it, STARTTLS and IDLE included, and it stops cleanly."""
    import imaplib
    import smtplib
    import ssl

    pytest.importorskip("uvloop")
    server = ServeProcess(tmp_path / "d", extra_args=["--event-loop", "uvloop"]).start()
    try:
        server.add_user("alice", PW.decode().strip())
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
            smtp.sendmail(
                "bob@example.org", ["alice@localhost"], b"Subject: on uvloop\r\n\r\nhi\r\n"
            )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        imap.starttls(context)
        imap.login("alice", PW.decode().strip())
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: on uvloop" in data[0][1]  # type: ignore[index]
        imap.logout()
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        pop.user("alice")
        pop.pass_(PW.decode().strip())
        assert pop.stat()[0] == 1
        pop.quit()
    finally:
        assert server.stop() == 0, server.log()[-2000:]
