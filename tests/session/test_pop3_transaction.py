"""POP3 TRANSACTION and UPDATE states over real sockets: STAT, LIST, UIDL, RETR,
TOP, DELE, RSET, NOOP, QUIT, the snapshot, pipelining, timeouts, shutdown."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pop3_helpers import ADDRESS, POP3Env, pop3_server

from mailbag.session.pop3.session import READ_CHUNK
from mailbag.store.models import SEEN

M1 = b"From: a@example.net\r\nSubject: one\r\n\r\nFirst message.\r\n"
# Lines starting with "." must be byte-stuffed on the wire (RFC 1939 §3).
M2 = (
    b"From: b@example.net\r\nSubject: two\r\n\r\n"
    b".leading dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"middle.\r\n"
    b"line 5\r\nline 6\r\n"
)
M3 = b"Subject: three\r\n\r\nThird.\r\n"
TOTAL = len(M1) + len(M2) + len(M3)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[POP3Env]:
    with pop3_server(tmp_path) as e:
        e.add(M1, M2, M3)
        yield e


def uidl(env: POP3Env, uid: int) -> str:
    return f"{uid:08X}{env.uidvalidity():08X}"


def test_stat_list_uidl(env: POP3Env) -> None:
    """RFC 1939 §5 STAT, LIST; §7 UIDL; with and without a message number."""
    total = len(M1) + len(M2) + len(M3)
    with env.connect() as c:
        c.login()
        c.transcript(f"""
            C: STAT
            S: +OK 3 {total}
            C: LIST
            S: +OK 3 messages ({total} octets)
            S: 1 {len(M1)}
            S: 2 {len(M2)}
            S: 3 {len(M3)}
            S: .
            C: LIST 2
            S: +OK 2 {len(M2)}
            C: UIDL
            S: +OK
            S: 1 {uidl(env, 1)}
            S: 2 {uidl(env, 2)}
            S: 3 {uidl(env, 3)}
            S: .
            C: UIDL 3
            S: +OK 3 {uidl(env, 3)}
            C: NOOP
            S: +OK
        """)


def test_no_such_message(env: POP3Env) -> None:
    """RFC 1939 §5: -ERR for a message number that does not exist."""
    with env.connect() as c:
        c.login()
        c.transcript(f"""
            C: LIST 4
            S: -ERR There's no message 4
            C: LIST 0
            S: -ERR There's no message 0
            C: RETR 99999999999
            S: -ERR Invalid message number: 99999999999
            C: UIDL x
            S: -ERR Invalid message number: x
            C: TOP 1 -1
            S: -ERR Invalid number of lines: -1
            C: TOP 1
            S: -ERR Wrong number of arguments for TOP
            C: DELE -1
            S: -ERR Invalid message number: -1
            C: RETR
            S: -ERR Wrong number of arguments for RETR
            C: LIST 1 2
            S: -ERR Wrong number of arguments for LIST
            C: STAT
            S: +OK 3 {TOTAL}
        """)


def test_empty_maildrop(tmp_path: Path) -> None:
    """RFC 1939 §5: an empty maildrop has a STAT of 0 0 and an empty LIST."""
    with pop3_server(tmp_path) as env, env.connect() as c:
        c.login()
        c.transcript("""
            C: STAT
            S: +OK 0 0
            C: LIST
            S: +OK 0 messages (0 octets)
            S: .
            C: UIDL
            S: +OK
            S: .
            C: RETR 1
            S: -ERR There's no message 1
        """)


def test_retr_bytes_and_list_size(env: POP3Env) -> None:
    """RFC 1939 §5 RETR and §11: the wire carries the message byte-stuffed; after
    un-stuffing it is the stored message exactly, and its length is LIST's size
    (the stuffed dots are not counted, §11)."""
    with env.connect() as c:
        c.login()
        list_size = int(c.cmd("LIST 2").split()[2])
        assert c.cmd("RETR 2") == f"+OK {len(M2)} octets"
        wire = c.raw_until_terminator()
    assert wire == (
        b"From: b@example.net\r\nSubject: two\r\n\r\n"
        b"..leading dot\r\n"
        b"...two dots\r\n"
        b"..\r\n"
        b"middle.\r\n"
        b"line 5\r\nline 6\r\n"
        b".\r\n"
    )
    body = wire[: -len(b".\r\n")]
    unstuffed = body.replace(b"\r\n.", b"\r\n").removeprefix(b".")
    assert unstuffed == M2
    assert list_size == len(M2) == len(unstuffed)
    # the stuffed octets before ".CRLF": the size plus one per line starting with "."
    assert len(body) == list_size + 3


def test_top(env: POP3Env) -> None:
    """RFC 1939 §7 TOP msg n: the header, the blank line, n body lines (stuffed)."""
    with env.connect() as c:
        c.login()
        c.transcript("""
            C: TOP 2 0
            S: +OK
            S: From: b@example.net
            S: Subject: two
            S:\x20
            S: .
            C: TOP 2 3
            S: +OK
            S: From: b@example.net
            S: Subject: two
            S:\x20
            S: ..leading dot
            S: ...two dots
            S: ..
            S: .
            C: TOP 1 100
            S: +OK
            S: From: a@example.net
            S: Subject: one
            S:\x20
            S: First message.
            S: .
        """)


def test_dele_rset_and_quit_removes(env: POP3Env) -> None:
    """RFC 1939 §5 DELE marks, RSET unmarks, §6 QUIT removes what is marked; a
    deleted message may not be referred to."""
    with env.connect() as c:
        c.login()
        c.transcript(f"""
            C: DELE 1
            S: +OK Message 1 deleted.
            C: DELE 1
            S: -ERR Message 1 already deleted
            C: RETR 1
            S: -ERR Message 1 already deleted
            C: LIST 1
            S: -ERR Message 1 already deleted
            C: STAT
            S: +OK 2 {len(M2) + len(M3)}
            C: LIST
            S: +OK 2 messages ({len(M2) + len(M3)} octets)
            S: 2 {len(M2)}
            S: 3 {len(M3)}
            S: .
            C: RSET
            S: +OK maildrop has 3 messages ({len(M1) + len(M2) + len(M3)} octets)
            C: RETR 1
            S: +OK {len(M1)} octets
        """)
        c.raw_until_terminator()
        c.transcript("""
            C: DELE 1
            S: +OK Message 1 deleted.
            C: DELE 3
            S: +OK Message 3 deleted.
            C: QUIT
            S: +OK Logging out, 1 messages left.
        """)
        c.assert_closed()
    assert [m.uid for m in env.messages()] == [2]
    # the survivor keeps its UIDL and becomes message 1
    with env.connect() as c:
        c.login()
        assert c.cmd("UIDL 1") == f"+OK 1 {uidl(env, 2)}"


def test_dropped_connection_changes_nothing(env: POP3Env) -> None:
    """RFC 1939 §6: without QUIT there is no UPDATE: nothing removed, no \\Seen."""
    with env.connect() as c:
        c.login()
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.cmd("RETR 2").startswith("+OK")
        c.raw_until_terminator()
    time.sleep(0.2)  # let the server notice the close
    messages = env.messages()
    assert [m.uid for m in messages] == [1, 2, 3]
    assert all(SEEN not in m.flags for m in messages)


def test_retr_marks_seen_at_quit_but_top_does_not(env: POP3Env) -> None:
    """Dovecot's default (pop3_no_flag_updates = no): messages downloaded whole by
    RETR get \\Seen in UPDATE (RFC 1939 §6); TOP does not mark them."""
    with env.connect() as c:
        c.login()
        assert c.cmd("RETR 1").startswith("+OK")
        c.raw_until_terminator()
        assert c.cmd("TOP 2 1").startswith("+OK")
        c.raw_until_terminator()
        assert c.cmd("QUIT").startswith("+OK")
    flags = {m.uid: m.flags for m in env.messages()}
    assert SEEN in flags[1]
    assert SEEN not in flags[2] and SEEN not in flags[3]


def test_keep_seen_mode(tmp_path: Path) -> None:
    """pop3_delete_mode = "keep-seen": QUIT keeps DELE'd messages and flags them
    \\Seen instead of removing them (RFC 1939 §6 leaves UPDATE to the server)."""
    with pop3_server(tmp_path, pop3_delete_mode="keep-seen") as env:
        env.add(M1, M2, M3)
        with env.connect() as c:
            c.login()
            c.transcript("""
                C: DELE 2
                S: +OK Message 2 deleted.
                C: QUIT
                S: +OK Logging out, 3 messages left.
            """)
        messages = env.messages()
        assert [m.uid for m in messages] == [1, 2, 3]
        assert [SEEN in m.flags for m in messages] == [False, True, False]
        assert "$POP3Deleted" in messages[1].flags
        # Like Dovecot's pop3_deleted_flag: the next POP3 session no longer lists it.
        with env.connect() as c:
            c.login()
            c.transcript(
                f"""
                C: STAT
                S: +OK 2 {len(M1) + len(M3)}
                C: UIDL
                S: +OK
                S: 1 {uidl(env, 1)}
                S: 2 {uidl(env, 3)}
                S: .
            """
            )


def test_uidl_stable_across_sessions(env: POP3Env) -> None:
    """RFC 1939 §7 UIDL: the same message keeps its unique-id across sessions,
    also when other messages were removed or added in between."""
    with env.connect() as c:
        c.login()
        assert c.cmd("UIDL") == "+OK"
        first = dict(line.split() for line in c.multiline())
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    env.add(b"Subject: four\r\n\r\n4\r\n")
    with env.connect() as c:
        c.login()
        assert c.cmd("UIDL") == "+OK"
        second = dict(line.split() for line in c.multiline())
    assert second["1"] == first["2"] and second["2"] == first["3"]
    assert second["3"] not in first.values()
    assert all(len(u) == 16 and int(u, 16) >= 0 for u in second.values())


def test_snapshot_is_fixed_for_the_session(env: POP3Env) -> None:
    """RFC 1939 §4/§5: message numbers are fixed for the session; mail that arrives
    meanwhile is seen by the next session."""
    with env.connect() as c:
        c.login()
        env.add(b"Subject: late\r\n\r\nlate\r\n")
        assert c.cmd("STAT").startswith("+OK 3 ")
        assert c.cmd("RETR 4") == "-ERR There's no message 4"
        assert c.cmd("QUIT").startswith("+OK")
    with env.connect() as c:
        c.login()
        assert c.cmd("STAT").startswith("+OK 4 ")


def test_message_expunged_by_another_session(env: POP3Env) -> None:
    """A message expunged elsewhere (IMAP) keeps its number here; RETR and TOP
    fail with [SYS/TEMP] (RFC 3206 §4) and the session carries on."""
    with env.connect() as c:
        c.login()
        env.server.run(env.server.store.expunge(env.inbox_id, [2], require_deleted=False))
        c.transcript("""
            C: RETR 2
            S: -ERR [SYS/TEMP] Message 2 was expunged by another session
            C: TOP 2 0
            S: -ERR [SYS/TEMP] Message 2 was expunged by another session
            C: DELE 2
            S: +OK Message 2 deleted.
            C: RETR 3
            S: +OK 26 octets
            S: Subject: three
            S:\x20
            S: Third.
            S: .
            C: QUIT
            S: +OK Logging out, 2 messages left.
        """)
    assert [m.uid for m in env.messages()] == [1, 3]


def test_update_failure_reports_sys_temp(env: POP3Env) -> None:
    """RFC 1939 §6: if UPDATE fails the server answers -ERR (here [SYS/TEMP]);
    the connection closes and the lock is released anyway."""
    with env.connect() as c:
        c.login()
        assert c.cmd("DELE 1").startswith("+OK")
        account = env.server.run(env.server.store.get_account(ADDRESS))
        assert account is not None
        env.server.run(env.server.store.delete_account(account.id))
        assert c.cmd("QUIT") == (
            "-ERR [SYS/TEMP] Some deleted messages were not removed, try again later"
        )
        c.assert_closed()


def test_pipelined_commands(env: POP3Env) -> None:
    """RFC 2449 §6.6 PIPELINING: commands sent in one packet are answered in order."""
    with env.connect() as c:
        c.send(
            b"USER alice\r\nPASS secret pw\r\nSTAT\r\nLIST 1\r\nRETR 1\r\n"
            b"DELE 1\r\nUIDL 2\r\nNOOP\r\nRSET\r\nQUIT\r\n"
        )
        assert c.line() == "+OK"
        assert c.line().startswith("+OK Logged in")
        assert c.line() == f"+OK 3 {TOTAL}"
        assert c.line() == f"+OK 1 {len(M1)}"
        assert c.line() == f"+OK {len(M1)} octets"
        assert c.multiline() == M1.decode().split("\r\n")[:-1]
        assert c.line() == "+OK Message 1 deleted."
        assert c.line() == f"+OK 2 {uidl(env, 2)}"
        assert c.line() == "+OK"
        assert c.line() == f"+OK maildrop has 3 messages ({TOTAL} octets)"
        assert c.line() == "+OK Logging out, 3 messages left."
        c.assert_closed()


def test_large_message_streamed_across_chunks(tmp_path: Path) -> None:
    """RETR of a multi-megabyte message is read in chunks; dot-stuffing and CRLF
    are right at the chunk boundaries too."""
    head = b"Subject: big\r\n\r\n"
    line = b"x" * 98 + b"\r\n"
    body = bytearray(head)
    while len(body) < READ_CHUNK:
        body += line
    del body[READ_CHUNK:]
    body[-1:] = b"\r"  # the CRLF straddles the first chunk boundary...
    body += b"\n.and a dot-line follows it\r\n"
    while len(body) < 2 * READ_CHUNK:
        body += line
    del body[2 * READ_CHUNK :]
    body[-2:] = b"\r\n"
    # a line starting with "." begins exactly at the second chunk
    body += b".dot right after the second boundary\r\n" + line * 5000
    data = bytes(body)
    assert data[READ_CHUNK - 1 : READ_CHUNK + 1] == b"\r\n"
    assert data[2 * READ_CHUNK] == ord(".")
    with pop3_server(tmp_path) as env:
        env.add(data)
        with env.connect() as c:
            c.login()
            assert c.cmd("LIST 1") == f"+OK 1 {len(data)}"
            assert c.cmd("RETR 1") == f"+OK {len(data)} octets"
            wire = c.raw_until_terminator()
    assert wire == data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def test_idle_timeout(tmp_path: Path) -> None:
    """RFC 1939 §3: the autologout timer ends the session WITHOUT entering UPDATE."""
    with pop3_server(tmp_path, pop3_idle_timeout=0.5) as env:
        env.add(M1)
        with env.connect() as c:
            c.login()
            assert c.cmd("DELE 1").startswith("+OK")
            assert c.line() == "-ERR Disconnected for inactivity"
            c.assert_closed()
        assert [m.uid for m in env.messages()] == [1]
        with env.connect() as c:  # and the lock is free again
            c.login()


def test_shutdown_says_goodbye(tmp_path: Path) -> None:
    """A stopping server tells connected clients, without UPDATE."""
    with pop3_server(tmp_path) as env:
        env.add(M1)
        with env.connect() as c:
            c.login()
            assert c.cmd("DELE 1").startswith("+OK")
            env.server.stop()
            assert c.line() == "-ERR [SYS/TEMP] Server shutting down"
            c.assert_closed()


def test_message_expunged_while_being_sent(tmp_path: Path) -> None:
    """Once RETR's +OK is out, an error cannot be reported as -ERR (it would be
    read as message text): the server closes the connection mid-response, the
    client sees no terminator, and the next session works."""
    line = b"y" * 1022 + b"\r\n"
    data = b"Subject: huge\r\n\r\n" + line * (max(12 * READ_CHUNK, 12 << 20) // len(line))
    with pop3_server(tmp_path) as env:
        env.add(data)
        c = env.connect()
        # We do not read while expunging: the server soon blocks on its writes
        # (kernel buffers hold a few MB at most) long before the end.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.login()
        assert c.cmd("RETR 1") == f"+OK {len(data)} octets"
        env.server.run(env.server.store.expunge(env.inbox_id, [1], require_deleted=False))
        parts = [c.pending]
        while chunk := c.sock.recv(1 << 20):
            parts.append(chunk)
        received = b"".join(parts)
        c.close()
        assert len(received) < len(data)
        assert not received.endswith(b"\r\n.\r\n")
        assert env.messages() == []
        with env.connect() as again:
            again.login()
            assert again.cmd("STAT") == "+OK 0 0"
