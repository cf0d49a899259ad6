"""Logs: one line per connection event at INFO; DEBUG traces never show passwords
(issue 2 §8)."""

from __future__ import annotations

import base64
import imaplib
import poplib
import smtplib
from pathlib import Path

from mailbag.testing.process import ServeProcess

SECRET = "Very-Secret-Pa55"


def test_debug_log_has_events_but_no_passwords(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", extra_args=["--log-level", "DEBUG"]).start()
    try:
        server.add_user("alice", SECRET)
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        imap.login("alice", SECRET)
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        imap.authenticate("PLAIN", lambda _: f"\0alice\0{SECRET}".encode())
        imap.logout()
        bad = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        try:
            bad.login("alice", SECRET + "-wrong")
        except imaplib.IMAP4.error:
            pass
        bad.logout()
        pop = poplib.POP3("127.0.0.1", server.port("pop3"))
        pop.user("alice")
        pop.pass_(SECRET)
        pop.quit()
        pop = poplib.POP3("127.0.0.1", server.port("pop3"))
        pop._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0alice\0{SECRET}".encode()).decode())
        pop.quit()
        with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
            smtp.sendmail("a@example.net", ["alice@localhost"], b"Subject: x\r\n\r\nbody\r\n")
    finally:
        assert server.stop() == 0
    log = server.log()
    assert SECRET not in log
    assert base64.b64encode(f"\0alice\0{SECRET}".encode()).decode() not in log
    for proto in ("imap", "pop3", "smtp"):
        assert f"connect proto={proto}" in log
        assert f"disconnect proto={proto}" in log
    assert "in=" in log and "out=" in log  # byte counts at disconnect
    assert "imap login ok user=alice@localhost" in log
    assert "imap login failed" in log
    assert "login ok" in log.split("proto=pop3", 1)[1]
