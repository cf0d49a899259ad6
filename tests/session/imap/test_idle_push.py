"""New-mail push to idling IMAP sessions (RFC 2177, RFC 9051 §6.3.13, §7.4.1).

New messages reach a session in IDLE through a fast path (the change feed
writes `* n EXISTS` straight to its connection); every other change, and new
mail while anything else is due or the client is behind, is queued and sent by
a task started for it (no task waits while the session idles). These
transcripts pin what each session sees, byte for byte, with several sessions
idling at once and deliveries interleaved with expunges, flag changes, other
mailboxes, sessions leaving and re-entering IDLE, a client that does not read,
and LMTP deliveries into the SQLite store.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_support import (
    Client,
    add_messages,
    add_user,
    connect,
    fresh_user,
    make_message,
    server,
    transcript,
)

from mailbag.net.connection import Connection
from mailbag.proto.imap.responses import ExistsResponse, RecentResponse
from mailbag.session.imap.selected import Exists, Expunge, Recent, SelectedMailbox
from mailbag.store.changes import ChangeHub, MessagesAdded, MessagesExpunged
from mailbag.store.models import (
    UID,
    AccountID,
    AppendRequest,
    Mailbox,
    MailboxID,
    ModSeq,
    UIDValidity,
    canonical_mailbox_name,
)
from mailbag.testing.server import ServerThread


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with server(tmp_path_factory.mktemp("idle_push"), users={}) as s:
        yield s


@pytest.fixture
def user(srv: ServerThread) -> str:
    return fresh_user(srv)


def session(srv: ServerThread, user: str, rev2: bool = False, command: str = "SELECT") -> Client:
    c = connect(srv, user, rev2=rev2)
    lines = c.command(f"s {command} INBOX")
    assert lines[-1].startswith("s OK"), lines
    return c


def idle(c: Client) -> None:
    c.send("i IDLE\r\n")
    assert c.line() == "+ idling"


def done(c: Client) -> None:
    """DONE must be answered by the tagged OK and nothing else before it."""
    c.send("DONE\r\n")
    assert c.line() == "i OK Idle completed."


def append(c: Client, tag: str, mailbox: str = "INBOX", count: int = 1) -> None:
    literals = " ".join("{5+}\r\nhello" for _ in range(count))  # RFC 3502 MULTIAPPEND
    lines = c.command(f"{tag} APPEND {mailbox} {literals}")
    assert lines[-1].startswith(f"{tag} OK"), lines


def test_pushed_lines_are_the_serialised_responses() -> None:
    """RFC 9051 §7.4.1, RFC 3501 §7.3.2: the fast path's pre-formatted lines are
    exactly what the response classes serialise."""
    from mailbag.session.imap.selected import _exists_line

    for n in (0, 1, 99, 10001, 4294967295):
        assert [_exists_line(n)] == ExistsResponse(n).pieces()
        assert [b"* %d RECENT\r\n" % n] == RecentResponse(n).pieces()


def test_every_idle_session_sees_each_delivery_once(srv: ServerThread, user: str) -> None:
    """RFC 2177 §3, RFC 9051 §7.4.1: six sessions idle on INBOX (IMAP4rev1 and
    rev2, SELECT and EXAMINE); each APPEND by a seventh is announced to every one
    at once with the new EXISTS (and, for IMAP4rev1 SELECT, RECENT per RFC 3501
    §7.3.2); a MULTIAPPEND as one EXISTS. DONE is answered alone."""
    add_messages(srv, user, "INBOX", [make_message("m1"), make_message("m2")])
    c0 = connect(srv, user)
    r1 = session(srv, user)  # claims the two messages as \Recent
    r1b = session(srv, user)
    r2 = session(srv, user, rev2=True)
    r2b = session(srv, user, rev2=True)
    e1 = session(srv, user, command="EXAMINE")
    e2 = session(srv, user, rev2=True, command="EXAMINE")
    idlers = {"C1": r1, "C2": r1b, "C3": r2, "C4": r2b, "C5": e1, "C6": e2}
    try:
        for c in idlers.values():
            idle(c)
        for n in (3, 4):
            append(c0, f"a{n}")
            transcript(
                idlers,
                f"""
                S1: * {n} EXISTS
                S1: * {n} RECENT
                S2: * {n} EXISTS
                S2: * {n - 2} RECENT
                S3: * {n} EXISTS
                S4: * {n} EXISTS
                S5: * {n} EXISTS
                S6: * {n} EXISTS
                """,
            )
        append(c0, "m", count=2)
        transcript(
            idlers,
            """
            S1: * 6 EXISTS
            S1: * 6 RECENT
            S2: * 6 EXISTS
            S2: * 4 RECENT
            S3: * 6 EXISTS
            S4: * 6 EXISTS
            S5: * 6 EXISTS
            S6: * 6 EXISTS
            """,
        )
        for c in idlers.values():
            c.nothing(0.1)
            done(c)
        for c in idlers.values():
            lines = c.command("n NOOP")
            assert lines == ["n OK NOOP completed."], lines
    finally:
        for c in (c0, *idlers.values()):
            c.close()


def test_new_mail_interleaved_with_other_changes(srv: ServerThread, user: str) -> None:
    """RFC 2177 §3, RFC 9051 §7.4.1, §7.5.1: while idling, flag changes (FETCH),
    expunges (EXPUNGE, then EXISTS counts down) and new mail (EXISTS) are each
    announced at once and in the order they happened; the counts always agree."""
    add_messages(srv, user, "INBOX", [make_message(f"m{i}") for i in range(3)])
    add_messages(srv, user, "Archive", [make_message("arch")])
    c1 = connect(srv, user, rev2=True)
    assert c1.command("s SELECT INBOX")[-1].startswith("s OK")
    c2 = session(srv, user, rev2=True)
    c3 = session(srv, user)
    try:
        transcript(
            {"C1": c1, "C2": c2, "C3": c3},
            """
            C2: i IDLE
            S2: + idling
            C3: i IDLE
            S3: + idling
            C1: a APPEND INBOX {5+}
            C1: hello
            S1: * 4 EXISTS
            S1~ a OK \\[APPENDUID \\d+ 4\\] Append completed.
            S2: * 4 EXISTS
            S3: * 4 EXISTS
            S3: * 4 RECENT
            C1: b STORE 2 +FLAGS.SILENT (\\Flagged)
            S1: b OK Store completed.
            S2: * 2 FETCH (FLAGS (\\Flagged) UID 2)
            S3: * 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2)
            C1: c APPEND INBOX {5+}
            C1: hello
            S1: * 5 EXISTS
            S1~ c OK \\[APPENDUID \\d+ 5\\] Append completed.
            S2: * 5 EXISTS
            S3: * 5 EXISTS
            S3: * 5 RECENT
            C1: d STORE 1 +FLAGS.SILENT (\\Deleted)
            S1: d OK Store completed.
            S2: * 1 FETCH (FLAGS (\\Deleted) UID 1)
            S3: * 1 FETCH (FLAGS (\\Deleted \\Recent) UID 1)
            C1: e EXPUNGE
            S1: * 1 EXPUNGE
            S1: e OK Expunge completed.
            S2: * 1 EXPUNGE
            S3: * 1 EXPUNGE
            # COPY into INBOX is new mail too.
            C1: f COPY 1 INBOX
            S1: * 5 EXISTS
            S1~ f OK \\[COPYUID \\d+ 2 6\\] Copy completed.
            S2: * 5 EXISTS
            S3: * 5 EXISTS
            S3: * 5 RECENT
            C1: g MOVE 5 Archive
            S1~ \\* OK \\[COPYUID \\d+ 6 2\\] Moved UIDs\\.
            S1: * 5 EXPUNGE
            S1: g OK Move completed.
            S2: * 5 EXPUNGE
            S3: * 5 EXPUNGE
            C1: h APPEND INBOX {5+}
            C1: hello
            S1: * 5 EXISTS
            S1~ h OK \\[APPENDUID \\d+ 7\\] Append completed.
            S2: * 5 EXISTS
            S3: * 5 EXISTS
            S3: * 5 RECENT
            C2: DONE
            S2: i OK Idle completed.
            C3: DONE
            S3: i OK Idle completed.
            C2: n FETCH 1:* (UID)
            S2: * 1 FETCH (UID 2)
            S2: * 2 FETCH (UID 3)
            S2: * 3 FETCH (UID 4)
            S2: * 4 FETCH (UID 5)
            S2: * 5 FETCH (UID 7)
            S2: n OK Fetch completed.
            """,
        )
    finally:
        for c in (c1, c2, c3):
            c.close()


def test_mail_to_another_mailbox_is_not_announced(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.4.1: EXISTS concerns the selected mailbox only; new mail in
    another mailbox of the account is not announced to the idling session."""
    c1 = connect(srv, user)
    c2 = session(srv, user, rev2=True)
    try:
        transcript(
            {"C1": c1, "C2": c2},
            """
            C2: i IDLE
            S2: + idling
            C1: a APPEND Archive {5+}
            C1: hello
            S1~ a OK \\[APPENDUID \\d+ 1\\] Append completed.
            S2: <nothing>
            C1: b APPEND INBOX {5+}
            C1: hello
            S1~ b OK \\[APPENDUID \\d+ 1\\] Append completed.
            S2: * 1 EXISTS
            S2: <nothing>
            C2: DONE
            S2: i OK Idle completed.
            """,
        )
    finally:
        c1.close()
        c2.close()


def test_mail_between_idles_is_announced_once(srv: ServerThread, user: str) -> None:
    """RFC 2177 §3, RFC 9051 §7.4.1: mail that arrives while the session is not
    idling comes with its next command (NOOP), or, at IDLE, before the
    continuation; a message is never announced twice and none is missed."""
    c1 = connect(srv, user)
    c2 = session(srv, user)
    try:
        transcript(
            {"C1": c1, "C2": c2},
            """
            C2: i IDLE
            S2: + idling
            C1: a APPEND INBOX {5+}
            C1: hello
            S1~ a OK .*
            S2: * 1 EXISTS
            S2: * 1 RECENT
            C2: DONE
            S2: i OK Idle completed.
            C1: b APPEND INBOX {5+}
            C1: hello
            S1~ b OK .*
            C2: n NOOP
            S2: * 2 EXISTS
            S2: * 2 RECENT
            S2: n OK NOOP completed.
            C1: c APPEND INBOX {5+}
            C1: hello
            S1~ c OK .*
            C2: j IDLE
            S2: * 3 EXISTS
            S2: * 3 RECENT
            S2: + idling
            C1: d APPEND INBOX {5+}
            C1: hello
            S1~ d OK .*
            S2: * 4 EXISTS
            S2: * 4 RECENT
            C2: DONE
            S2: j OK Idle completed.
            C2: n NOOP
            S2: n OK NOOP completed.
            """,
        )
    finally:
        c1.close()
        c2.close()


def test_done_right_after_new_mail(srv: ServerThread, user: str) -> None:
    """RFC 2177 §3: EXISTS written while the server reads DONE comes before the
    tagged OK, once; appends racing with DONE, repeated, keep the count exact."""
    c1 = connect(srv, user)
    c2 = session(srv, user, rev2=True)
    try:
        exists = 0
        for n in range(1, 21):
            idle(c2)
            append(c1, f"a{n}")
            c2.send("DONE\r\n")
            lines = [c2.line()]
            while not lines[-1].startswith("i "):
                lines.append(c2.line())
            assert lines == [f"* {n} EXISTS", "i OK Idle completed."], lines
            exists = n
        assert c2.command("n NOOP") == ["n OK NOOP completed."]
        assert exists == 20
    finally:
        c1.close()
        c2.close()


def test_many_deliveries_while_the_client_does_not_read(srv: ServerThread, user: str) -> None:
    """RFC 2177 §3, RFC 9051 §7.4.1: a session idling while its client reads
    nothing gets 3,000 deliveries in a burst; it later reads strictly growing
    EXISTS counts, each with its RECENT, ending at the true count, then DONE."""
    c1 = connect(srv, user)
    c2 = Client.__new__(Client)
    c2.timeout, c2.buf = 10.0, b""
    # A small receive window (set before connecting), so the server's side fills.
    c2.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c2.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    c2.sock.settimeout(c2.timeout)
    c2.sock.connect(("127.0.0.1", srv.port("imap")))
    try:
        assert c2.line().startswith("* OK")
        assert c2.command(f"L LOGIN {user} pw")[-1].startswith("L OK")
        assert c2.command("s SELECT INBOX")[-1].startswith("s OK")
        idle(c2)
        total = 3000

        async def burst() -> None:
            account = await srv.store.get_account(f"{user}@localhost")
            assert account is not None
            box = await srv.store.get_mailbox(account.id, canonical_mailbox_name("INBOX"))
            assert box is not None
            for _ in range(total):
                await srv.store.append(box.id, [AppendRequest(data=make_message("burst"))])

        srv.run(burst(), timeout=60)
        counts: list[int] = []
        while not counts or counts[-1] < total:
            m = re.fullmatch(r"\* (\d+) EXISTS", c2.line())
            assert m is not None
            n = int(m.group(1))
            assert c2.line() == f"* {n} RECENT"
            counts.append(n)
        assert counts == sorted(set(counts)), "EXISTS went back or repeated"
        assert counts[-1] == total
        done(c2)
        assert c2.command("n NOOP") == ["n OK NOOP completed."]
        assert c1.command("t STATUS INBOX (MESSAGES)")[0] == f"* STATUS INBOX (MESSAGES {total})"
    finally:
        c1.close()
        c2.close()


async def _paused_connection(high: int = 64 * 1024) -> tuple[Connection, socket.socket]:
    """A Connection on a real socket pair whose peer has not read a 4 MiB write,
    so the transport is above its high-water mark (asyncio paused writing)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    conn = Connection()
    transport, _ = await loop.connect_accepted_socket(lambda: conn, ours)
    transport.set_write_buffer_limits(high=high)
    transport.write(b"x" * (4 * 1024 * 1024))
    assert transport.get_write_buffer_size() > high
    return conn, theirs


async def _read_until(sock: socket.socket, conn: Connection, end: bytes) -> bytes:
    received = bytearray()
    while not received.endswith(end):
        try:
            received += sock.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0)
    return bytes(received)


def test_refused_push_is_announced_by_the_queue_once() -> None:
    """RFC 9051 §7.4.1: when the connection cannot take the EXISTS now (the client
    is behind), the new mail is queued instead; the queued records that follow
    it stay behind it, and poll() (the IDLE task) announces the final count
    once, never twice. Once the client caught up, new mail goes straight out."""

    async def run() -> None:
        hub = ChangeHub()
        sub = hub.subscribe(AccountID(1))
        box = Mailbox(
            MailboxID(7), AccountID(1), "INBOX", UIDValidity(1), UID(3), ModSeq(1), True, None
        )
        view = SelectedMailbox(box, [1, 2], False, sub, recent_from=UID(2))
        conn, peer = await _paused_connection()
        woken: list[int] = []
        view.watch(
            lambda change: view.push_added(change, True, conn.write_nowait),
            lambda: woken.append(len(woken)),
        )

        hub.publish(MessagesAdded(AccountID(1), MailboxID(7), (UID(3),), ModSeq(2)))
        # The publisher never waits for the push: it happens in a later iteration.
        assert sub.has_pending() and woken == []
        await hub.pushed()
        assert sub.has_pending() and woken == [0]  # refused: queued, the waiter called
        hub.publish(MessagesAdded(AccountID(1), MailboxID(7), (UID(4),), ModSeq(3)))
        assert view.poll(allow_expunge=True) == [Exists(4), Recent(3)]
        assert view.poll(allow_expunge=True) == []

        # The client reads everything: writing resumes, mail goes out at once.
        drained = asyncio.ensure_future(conn.write(b"-\r\n"))
        await _read_until(peer, conn, b"-\r\n")
        await drained
        hub.publish(MessagesAdded(AccountID(1), MailboxID(7), (UID(5), UID(6)), ModSeq(4)))
        await hub.pushed()
        assert not sub.has_pending()
        assert await _read_until(peer, conn, b"RECENT\r\n") == b"* 6 EXISTS\r\n* 5 RECENT\r\n"
        assert view.poll(allow_expunge=True) == []
        # Mail for another mailbox of the account: nothing to say, nothing queued.
        hub.publish(MessagesAdded(AccountID(1), MailboxID(8), (UID(1),), ModSeq(1)))
        await hub.pushed()
        assert not sub.has_pending() and view.poll(allow_expunge=True) == []
        # Something else queued first: new mail waits behind it, in order.
        hub.publish(MessagesExpunged(AccountID(1), MailboxID(7), (UID(1),), ModSeq(5)))
        hub.publish(MessagesAdded(AccountID(1), MailboxID(7), (UID(7),), ModSeq(6)))
        await hub.pushed()
        assert view.poll(allow_expunge=True) == [Expunge(1, UID(1)), Exists(6), Recent(6)]
        view.close()
        conn.close()
        peer.close()

    asyncio.run(run())


def test_failing_callbacks_do_not_stop_the_feed(caplog: pytest.LogCaptureFixture) -> None:
    """DESIGN.md §2.6: a subscriber whose callbacks raise still gets the record
    (queued) and every other subscriber gets it too; the error is logged."""
    hub = ChangeHub()
    bad, good = hub.subscribe(AccountID(1)), hub.subscribe(AccountID(1))
    taken: list[MessagesAdded] = []

    def broken_added(change: MessagesAdded) -> bool:
        raise RuntimeError("bug")

    def broken_pending() -> None:
        raise RuntimeError("bug")

    def take(change: MessagesAdded) -> bool:
        taken.append(change)
        return True

    bad.on_added, bad.on_pending = broken_added, broken_pending
    good.on_added = take
    added = MessagesAdded(AccountID(1), MailboxID(1), (UID(1),), ModSeq(1))
    hub.publish(added)
    assert bad.drain() == [added] and bad.on_pending is None
    assert taken == [added] and not good.has_pending()
    assert "on_added callback failed" in caplog.text
    assert "on_pending callback failed" in caplog.text


def test_write_nowait_refuses_while_the_client_is_behind() -> None:
    """The non-waiting write the fast path uses takes bytes only while the
    transport is below its high-water mark and open, and never reorders them."""

    async def run() -> bytes:
        conn, peer = await _paused_connection()
        assert not conn.write_nowait(b"refused\r\n")
        drained = asyncio.ensure_future(conn.write(b"last\r\n"))
        received = await _read_until(peer, conn, b"last\r\n")
        await drained
        assert conn.write_nowait(b"again\r\n")
        received += await _read_until(peer, conn, b"again\r\n")
        conn.close()
        await asyncio.sleep(0)
        assert not conn.write_nowait(b"closed\r\n")
        peer.close()
        return received

    data = asyncio.run(run())
    assert data == b"x" * (4 * 1024 * 1024) + b"last\r\nagain\r\n"


@pytest.mark.slow
def test_lmtp_delivery_to_many_idle_sessions(tmp_path: Path) -> None:
    """RFC 2033 §4.2 then RFC 2177 §3: each LMTP delivery into the SQLite store
    reaches all 40 idling sessions (IMAP4rev1 and rev2) as one EXISTS each (with
    RECENT for IMAP4rev1), in order, none twice; DONE ends each session's IDLE."""
    srv = ServerThread(tmp_path).start()
    try:
        add_user(srv, "alice", "pw")
        sessions = [session(srv, "alice", rev2=bool(i % 2)) for i in range(40)]
        try:
            for c in sessions:
                idle(c)
            with smtplib.LMTP("127.0.0.1", srv.port("lmtp"), timeout=10) as lmtp:
                for n in range(1, 4):
                    msg = make_message(f"push {n}")
                    refused = lmtp.sendmail("bob@example.org", ["alice@localhost"], msg)
                    assert refused == {}
                    for i, c in enumerate(sessions):
                        assert c.line() == f"* {n} EXISTS"
                        if not i % 2:
                            assert c.line() == f"* {n} RECENT"
            for c in sessions:
                c.nothing(0.05)
                done(c)
        finally:
            for c in sessions:
                c.close()
    finally:
        srv.stop()
