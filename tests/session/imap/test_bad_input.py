"""Hostile and broken input over a real socket (issue 3, "Bad input"): each gets
BAD/NO, the connection stays usable where the RFC allows, and the server's
memory does not grow with what the client announces."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import imap_support


def usable(client: imap_support.Client) -> None:
    lines = client.command("z9 NOOP")
    assert lines[-1].startswith("z9 OK"), lines


def test_oversized_literal_announcement(tmp_path: Path) -> None:
    """RFC 7888 §4 / RFC 9051 §7.1: a literal above the limit is refused before
    it is sent; `{4294967295}` reserves nothing."""
    with imap_support.server(tmp_path, max_message_size=1_000_000) as srv:
        c = imap_support.connect(srv)
        lines = c.command("a1 APPEND INBOX {4294967295}")
        assert lines[-1].startswith("a1 NO [TOOBIG]") or lines[-1].startswith("a1 BAD"), lines
        usable(c)
        # a non-synchronising one the client sends anyway is swallowed, not stored
        c.send(b"a2 APPEND INBOX {2000000+}\r\n" + b"x" * 2_000_000 + b"\r\n")
        line = c.line()
        assert line.startswith("a2 BAD") or line.startswith("a2 NO"), line
        usable(c)
        assert imap_support.store_messages(srv, "alice", "INBOX") == []


def test_literal_that_never_arrives_then_disconnect(tmp_path: Path) -> None:
    """The server waits (with the command timeout) and keeps serving others."""
    with imap_support.server(tmp_path, command_timeout=1.0) as srv:
        c = imap_support.connect(srv)
        c.send(b"a1 APPEND INBOX {100}\r\n")
        assert c.line().startswith("+ ")
        c.send(b"only a few bytes")
        other = imap_support.connect(srv)
        usable(other)
        # RFC 9051 §5.4-style timeout for a command that never completes
        deadline = time.monotonic() + 10
        while not c.closed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.closed()
        assert imap_support.store_messages(srv, "alice", "INBOX") == []


def test_deep_nesting_and_huge_sequence_sets(tmp_path: Path) -> None:
    with imap_support.server(tmp_path) as srv:
        c = imap_support.connect(srv)
        c.command("s1 SELECT INBOX")
        lines = c.command("a1 SEARCH " + "(" * 10_000 + "ALL" + ")" * 10_000)
        assert lines[-1].startswith("a1 BAD"), lines[-1][:200]
        usable(c)
        ranges = ",".join(f"{i}:{i}" for i in range(1, 1_000_001, 1))
        lines = c.command("a2 UID FETCH " + ranges + " FLAGS")
        assert lines[-1].startswith("a2 BAD"), lines[-1][:200]
        usable(c)


def test_invalid_modified_utf7_and_wrong_state(tmp_path: Path) -> None:
    with imap_support.server(tmp_path) as srv:
        c = imap_support.connect(srv, login=False)
        # RFC 9051 §6: commands only valid after login
        assert c.command("a1 SELECT INBOX")[-1].startswith("a1 BAD")
        assert c.command("a2 FETCH 1 FLAGS")[-1].startswith("a2 BAD")
        assert c.command("a3 LOGIN alice pw")[-1].startswith("a3 OK")
        # RFC 3501 §5.1.3: "&" must start a valid base64 run
        assert c.command("a4 CREATE &Jjo")[-1].startswith("a4 BAD")
        assert c.command("a5 CREATE &AGE-")[-1].startswith("a5 BAD")  # "a" must not be encoded
        # selected-state commands without a selected mailbox
        assert c.command("a6 FETCH 1 FLAGS")[-1].startswith("a6 BAD")
        assert c.command("a7 LOGIN alice pw")[-1].startswith("a7 BAD")  # already logged in
        usable(c)


def test_junk_nul_and_overlong_lines(tmp_path: Path) -> None:
    with imap_support.server(tmp_path) as srv:
        c = imap_support.connect(srv)
        assert c.command("a1 FROBNICATE")[-1].startswith("a1 BAD")
        c.send(b"a2 NOOP \x00\r\n")
        assert c.line().startswith("a2 BAD")
        c.send(b"a3 NOOP " + b"x" * 200_000 + b"\r\n")
        assert c.line().split()[1] == "BAD"
        c.send(b"\xff\xfe garbage\r\n")
        assert c.line().startswith("* BAD") or c.line().startswith("\xff")
        usable(c)


def test_memory_bounded_under_junk(tmp_path: Path) -> None:
    """A flood of overlong lines and refused literals leaves the server's peak
    memory where it was (same process: ServerThread)."""
    with imap_support.server(tmp_path) as srv:
        c = imap_support.connect(srv)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(20):
            c.send(b"j%d NOOP " % i + b"y" * 1_000_000 + b"\r\n")
            assert c.line().split()[1] == "BAD"
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        usable(c)
        # 20 MB went through; the server never held more than a bounded buffer.
        assert after - before < 15_000, (before, after)  # KB


def test_idle_outlives_command_timeout(tmp_path: Path) -> None:
    """RFC 2177 §3 / RFC 9051 §5.4: an IDLE client may stay silent until the
    autologout timer, not only for one command's time."""
    with imap_support.server(tmp_path, command_timeout=0.5, imap_idle_timeout=3.0) as srv:
        c = imap_support.connect(srv)
        c.command("s SELECT INBOX")
        c.send(b"i IDLE\r\n")
        assert c.line().startswith("+ ")
        c.nothing(wait=1.5)  # three command timeouts, still connected
        c.send(b"DONE\r\n")
        assert c.line().startswith("i OK")
        c.send(b"j IDLE\r\n")
        assert c.line().startswith("+ ")
        deadline = time.monotonic() + 10
        line = c.line()
        assert line.startswith("* BYE"), line
        assert time.monotonic() < deadline
