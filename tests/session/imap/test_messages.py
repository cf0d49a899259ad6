"""IMAP message commands over real sockets: APPEND (MULTIAPPEND, BINARY
literal8), STORE, EXPUNGE, UID EXPUNGE, COPY, MOVE, in IMAP4rev1 and after
ENABLE IMAP4rev2; how other sessions see the changes (NOOP and IDLE), when
EXPUNGE may not be sent; and an imaplib end-to-end run.

One server is shared by the module; every test logs in as a fresh user.
"""

from __future__ import annotations

import datetime as dt
import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_support import (
    Client,
    add_messages,
    connect,
    fresh_user,
    mailbox_names,
    make_message,
    server,
    store_messages,
    stored_bytes,
    transcript,
)

from mailbag.store.models import AppendRequest
from mailbag.testing.server import ServerThread


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with server(tmp_path_factory.mktemp("messages"), users={}) as s:
        yield s


@pytest.fixture
def user(srv: ServerThread) -> str:
    return fresh_user(srv)


@pytest.fixture(params=["rev1", "rev2"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The system flags as FLAGS and PERMANENTFLAGS list them.
SYSTEM = "\\Seen \\Answered \\Flagged \\Deleted \\Draft"


def login(srv: ServerThread, user: str, rev2: bool = False) -> Client:
    return connect(srv, user, rev2=rev2)


def select(c: Client, mailbox: str = "INBOX", command: str = "SELECT") -> list[str]:
    lines = c.command(f"s {command} {mailbox}")
    assert lines[-1].startswith("s OK"), lines
    return lines


def with_messages(srv: ServerThread, user: str, count: int, mailbox: str = "INBOX") -> None:
    add_messages(srv, user, mailbox, [make_message(f"m{i}", f"body {i}") for i in range(count)])


def flags_of(srv: ServerThread, user: str, mailbox: str = "INBOX") -> dict[int, set[str]]:
    return {int(m.uid): set(m.flags) for m in store_messages(srv, user, mailbox)}


# ---- APPEND -------------------------------------------------------------------------------


def test_append_with_flags_and_date(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.12: APPEND with flags and an internal date; RFC 4315 §3:
    the OK carries APPENDUID <uidvalidity> <uid>."""
    with login(srv, user, rev2=mode == "rev2") as c:
        caps = transcript(
            c,
            """
            C: v STATUS Sent (UIDVALIDITY)
            S~ \\* STATUS Sent \\(UIDVALIDITY (?P<uv>\\d+)\\)
            S: v OK Status completed.
            C: a APPEND Sent (\\Seen $Forwarded) "05-Mar-2021 14:30:00 +0100" {12}
            S: + Ready for literal data
            C: Subject: x
            C:
            S: a OK [APPENDUID ${uv} 1] Append completed.
            C: b APPEND sent {3+}
            C: abc
            S: b NO [TRYCREATE] Mailbox doesn't exist: sent
            """,
        )
    assert caps["uv"]
    [msg] = store_messages(srv, user, "Sent")
    assert msg.flags == {"\\Seen", "$Forwarded"}
    assert msg.internal_date == dt.datetime(
        2021, 3, 5, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert stored_bytes(srv, user, "Sent") == [b"Subject: x\r\n"]


def test_append_to_selected_mailbox(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.12: appending to the selected mailbox announces the new
    message with EXISTS before the tagged OK (RECENT too in IMAP4rev1, RFC 3501
    §7.3.2; RFC 9051 has no \\Recent)."""
    with_messages(srv, user, 1)
    with login(srv, user, rev2=mode == "rev2") as c:
        select(c)
        recent = "" if mode == "rev2" else "S: * 2 RECENT"
        transcript(
            c,
            f"""
            C: a APPEND INBOX {{5+}}
            C: hello
            S: * 2 EXISTS
            {recent}
            S~ a OK \\[APPENDUID \\d+ 2\\] Append completed.
            C: n NOOP
            S: n OK NOOP completed.
            """,
        )


def test_append_converts_bare_lf(srv: ServerThread, user: str) -> None:
    """Stored messages have CRLF line ends (RFC 5322 §2.3); APPEND turns bare
    LFs into CRLF like the SMTP receiver does, keeps CRLF and bare CR."""
    with login(srv, user) as c:
        data = b"Subject: x\nA\r\nB\rC\n\nbody"
        c.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(data), data))
        assert c.line().startswith("a OK [APPENDUID ")
    assert stored_bytes(srv, user, "INBOX") == [b"Subject: x\r\nA\r\nB\rC\r\n\r\nbody"]


def test_append_binary_literal8(srv: ServerThread, user: str) -> None:
    """RFC 3516 §4.4: APPEND data as literal8 may hold NUL and is stored as
    given; RFC 9051 §9: an ordinary literal may not carry NUL (BAD)."""
    data = b"Subject: bin\r\n\r\n\x00\x01\n\xff"
    with login(srv, user) as c:
        c.send(b"a APPEND INBOX ~{%d+}\r\n" % len(data) + data + b"\r\n")
        assert c.line().startswith("a OK [APPENDUID ")
        c.send(b"b APPEND INBOX {5+}\r\nab\x00cd\r\n")
        assert c.line() == "b BAD NUL in message data (send it as literal8 ~{n})"
    assert stored_bytes(srv, user, "INBOX") == [data]


def test_multiappend(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 3502 §6.3.11: several messages in one APPEND; RFC 4315 §3:
    APPENDUID carries the UID set."""
    with_messages(srv, user, 2, "Drafts")
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a APPEND Drafts (\\Draft) {3+}
            C: one (\\Seen) "01-Jan-2020 10:00:00 +0000" {3+}
            C: two {5+}
            C: three
            S~ a OK \\[APPENDUID \\d+ 3:5\\] Append completed.
            """,
        )
    messages = store_messages(srv, user, "Drafts")
    assert [(int(m.uid), set(m.flags)) for m in messages[2:]] == [
        (3, {"\\Draft"}),
        (4, {"\\Seen"}),
        (5, set()),
    ]
    assert messages[3].internal_date == dt.datetime(2020, 1, 1, 10, tzinfo=dt.UTC)
    assert stored_bytes(srv, user, "Drafts")[2:] == [b"one", b"two", b"three"]


def test_multiappend_is_atomic(srv: ServerThread, user: str) -> None:
    """RFC 3502 §6.3.11: either all messages are appended or none: a bad
    second message (\\Recent cannot be set, RFC 3501 §2.3.2; an empty message)
    leaves the mailbox unchanged."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a APPEND INBOX {3+}
            C: one (\\Recent) {3+}
            C: two
            S: a BAD Invalid system flag \\RECENT
            C: b APPEND INBOX {3+}
            C: one {0+}
            C:
            S: b NO Can't save a zero byte message
            C: c STATUS INBOX (MESSAGES UIDNEXT)
            S: * STATUS INBOX (MESSAGES 0 UIDNEXT 1)
            S: c OK Status completed.
            """,
        )


def test_append_errors(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.12: a missing mailbox gets NO [TRYCREATE]; unknown system
    flags and \\Recent are BAD (as Dovecot); an empty message is refused (as
    Dovecot); keywords may look like NIL."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a APPEND nothere {1+}
            C: x
            S: a NO [TRYCREATE] Mailbox doesn't exist: nothere
            C: b APPEND INBOX (\\Bogus) {1+}
            C: x
            S: b BAD Invalid system flag \\BOGUS
            C: c APPEND INBOX {0+}
            C:
            S: c NO Can't save a zero byte message
            C: d APPEND INBOX (NIL \\SEEN) {1+}
            C: x
            S~ d OK \\[APPENDUID \\d+ 1\\] Append completed.
            """,
        )
    assert flags_of(srv, user) == {1: {"NIL", "\\Seen"}}


def test_append_size_limit(tmp_path: Path) -> None:
    """RFC 9051 §7.1 TOOBIG: a message over the configured size is refused,
    whether the literal announces it (the receiver) or it only grows past the
    limit when bare LFs become CRLF."""
    with server(tmp_path, max_message_size=100) as s, connect(s) as c:
        transcript(
            c,
            """
            C: a APPEND INBOX {101}
            S: a NO [TOOBIG] Message larger than 100 octets
            """,
        )
        # 50 bare LFs: 100 octets sent, 150 after the CRLF conversion.
        c.send(b"b APPEND INBOX {100+}\r\n" + b"x\n" * 50 + b"\r\n")
        assert c.line() == "b NO [TOOBIG] Message too large"
        c.send(b"c APPEND INBOX {100+}\r\n" + b"x\r\n" * 33 + b"x\r\n")
        assert c.line().startswith("c OK [APPENDUID ")


# ---- STORE -------------------------------------------------------------------------------


def test_store_modes(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.4.6: FLAGS replaces, +FLAGS adds, -FLAGS removes; the new
    flags come back for every message of the set, changed or not; .SILENT
    sends nothing; RFC 9051 §6.4.9: UID STORE responses carry the UID. In
    IMAP4rev1 the messages are \\Recent to the first session (RFC 3501 §2.3.2).
    A keyword new to the mailbox sends FLAGS and PERMANENTFLAGS again first
    (RFC 9051 §7.3.5), as Dovecot does."""
    with_messages(srv, user, 3)
    rev2 = mode == "rev2"
    r = "" if rev2 else " \\Recent"
    with login(srv, user, rev2=rev2) as c:
        select(c)
        transcript(
            c,
            f"""
            C: a STORE 1:2 +FLAGS (\\Flagged $Todo)
            S: * FLAGS ({SYSTEM} $Todo)
            S: * OK [PERMANENTFLAGS ({SYSTEM} $Todo \\*)] Flags permitted.
            S: * 1 FETCH (FLAGS (\\Flagged $Todo{r}))
            S: * 2 FETCH (FLAGS (\\Flagged $Todo{r}))
            S: a OK Store completed.
            C: b STORE 1:3 +FLAGS (\\Flagged)
            S: * 1 FETCH (FLAGS (\\Flagged $Todo{r}))
            S: * 2 FETCH (FLAGS (\\Flagged $Todo{r}))
            S: * 3 FETCH (FLAGS (\\Flagged{r}))
            S: b OK Store completed.
            C: c STORE 2 -FLAGS ($Todo \\Flagged)
            S: * 2 FETCH (FLAGS ({r.strip()}))
            S: c OK Store completed.
            C: d STORE 3 FLAGS (\\Seen \\Answered)
            S: * 3 FETCH (FLAGS (\\Answered \\Seen{r}))
            S: d OK Store completed.
            C: e UID STORE 1:* FLAGS (\\Draft)
            S: * 1 FETCH (FLAGS (\\Draft{r}) UID 1)
            S: * 2 FETCH (FLAGS (\\Draft{r}) UID 2)
            S: * 3 FETCH (FLAGS (\\Draft{r}) UID 3)
            S: e OK Store completed.
            C: f STORE 1 +FLAGS.SILENT (\\Deleted)
            S: f OK Store completed.
            C: g UID STORE 2 FLAGS.SILENT ()
            S: g OK Store completed.
            C: h NOOP
            S: h OK NOOP completed.
            C: i STORE * -FLAGS \\Draft
            S: * 3 FETCH (FLAGS ({r.strip()}))
            S: i OK Store completed.
            """,
        )
    assert flags_of(srv, user) == {1: {"\\Draft", "\\Deleted"}, 2: set(), 3: set()}


def test_store_errors(srv: ServerThread, user: str) -> None:
    """RFC 3501 §2.3.2: \\Recent cannot be stored; unknown system flags are
    BAD (Dovecot); a message number above EXISTS is BAD (RFC 9051 §6.4.6 /
    Dovecot "Invalid messageset"); a UID set that names nothing is OK with no
    output; UNCHANGEDSINCE needs CONDSTORE (RFC 7162 §3.1.3), not advertised."""
    with_messages(srv, user, 1)
    with login(srv, user, rev2=True) as c:
        select(c)
        transcript(
            c,
            f"""
            C: a STORE 1 +FLAGS (\\Recent)
            S: a BAD Invalid system flag \\RECENT
            C: b STORE 1 +FLAGS (\\Bogus)
            S: b BAD Invalid system flag \\BOGUS
            C: c STORE 2 +FLAGS (\\Seen)
            S: c BAD Error in IMAP command: Invalid messageset
            C: d UID STORE 5:9 +FLAGS (\\Seen)
            S: d OK Store completed.
            C: e STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)
            S: e BAD UNCHANGEDSINCE needs CONDSTORE, which is not supported
            C: f STORE 1 +FLAGS (NIL)
            S: * FLAGS ({SYSTEM} NIL)
            S: * OK [PERMANENTFLAGS ({SYSTEM} NIL \\*)] Flags permitted.
            S: * 1 FETCH (FLAGS (NIL))
            S: f OK Store completed.
            """,
        )
    assert flags_of(srv, user) == {1: {"NIL"}}


def test_read_only_mailbox(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.3: with EXAMINE no change to the mailbox is permitted:
    STORE, EXPUNGE, UID EXPUNGE and MOVE get NO; COPY out of it works."""
    add_messages(srv, user, "INBOX", [AppendRequest(make_message(), frozenset({"\\Deleted"}))])
    with login(srv, user, rev2=mode == "rev2") as c:
        select(c, command="EXAMINE")
        transcript(
            c,
            """
            C: a STORE 1 +FLAGS (\\Seen)
            S: a NO [CANNOT] Mailbox is read-only (opened with EXAMINE)
            C: b EXPUNGE
            S: b NO [CANNOT] Mailbox is read-only (opened with EXAMINE)
            C: c UID EXPUNGE 1
            S: c NO [CANNOT] Mailbox is read-only (opened with EXAMINE)
            C: d MOVE 1 Trash
            S: d NO [CANNOT] Mailbox is read-only (opened with EXAMINE)
            C: e COPY 1 Trash
            S~ e OK \\[COPYUID \\d+ 1 1\\] Copy completed.
            """,
        )
    assert flags_of(srv, user) == {1: {"\\Deleted"}}
    assert len(store_messages(srv, user, "Trash")) == 1


# ---- EXPUNGE -----------------------------------------------------------------------------


def test_expunge(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.4.3: EXPUNGE removes every \\Deleted message and reports
    each with an untagged EXPUNGE, numbers as they are at that moment."""
    with_messages(srv, user, 4)
    with login(srv, user, rev2=mode == "rev2") as c:
        select(c)
        transcript(
            c,
            """
            C: a STORE 2,4 +FLAGS.SILENT (\\Deleted)
            S: a OK Store completed.
            C: b EXPUNGE
            S: * 2 EXPUNGE
            S: * 3 EXPUNGE
            S: b OK Expunge completed.
            C: c EXPUNGE
            S: c OK Expunge completed.
            C: d STORE 2 +FLAGS.SILENT (\\Deleted)
            S: d OK Store completed.
            C: e STORE 2 -FLAGS.SILENT (\\Deleted)
            S: e OK Store completed.
            C: f EXPUNGE
            S: f OK Expunge completed.
            """,
        )
    assert [int(m.uid) for m in store_messages(srv, user, "INBOX")] == [1, 3]


def test_uid_expunge(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 4315 §2.1 / RFC 9051 §6.4.9: UID EXPUNGE removes only the \\Deleted
    messages inside the UID set; a set naming nothing is OK."""
    with_messages(srv, user, 4)
    with login(srv, user, rev2=mode == "rev2") as c:
        select(c)
        transcript(
            c,
            """
            C: a STORE 1:4 +FLAGS.SILENT (\\Deleted)
            S: a OK Store completed.
            C: b STORE 2 -FLAGS.SILENT (\\Deleted)
            S: b OK Store completed.
            C: c UID EXPUNGE 1:3
            S: * 1 EXPUNGE
            S: * 2 EXPUNGE
            S: c OK Expunge completed.
            C: d UID EXPUNGE 100:200
            S: d OK Expunge completed.
            """,
        )
    assert [int(m.uid) for m in store_messages(srv, user, "INBOX")] == [2, 4]


# ---- COPY / MOVE --------------------------------------------------------------------------


def test_copy(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.4.7: COPY keeps flags and internal date; RFC 4315 §3:
    COPYUID <uidvalidity> <source set> <dest set>; a missing target gets
    [TRYCREATE]; copying into the selected mailbox itself works (EXISTS)."""
    add_messages(
        srv,
        user,
        "INBOX",
        [
            AppendRequest(make_message("a"), frozenset({"\\Seen"})),
            make_message("b"),
            make_message("c"),
        ],
    )
    add_messages(srv, user, "Archive", [make_message("old")])
    rev2 = mode == "rev2"
    with login(srv, user, rev2=rev2) as c:
        select(c)
        caps = transcript(
            c,
            f"""
            C: v STATUS Archive (UIDVALIDITY)
            S~ \\* STATUS Archive \\(UIDVALIDITY (?P<uv>\\d+)\\)
            S: v OK Status completed.
            C: a COPY 1,3 Archive
            S: a OK [COPYUID ${{uv}} 1,3 2:3] Copy completed.
            C: b UID COPY 2 Archive
            S: b OK [COPYUID ${{uv}} 2 4] Copy completed.
            C: c COPY 1 nothere
            S: c NO [TRYCREATE] Mailbox doesn't exist: nothere
            C: d UID COPY 50:60 Archive
            S: d OK No messages found.
            C: e COPY 2:3 INBOX
            S: * 5 EXISTS
            {"" if rev2 else "S: * 5 RECENT"}
            S~ e OK \\[COPYUID (?P<inbox>\\d+) 2:3 4:5\\] Copy completed.
            """,
        )
    assert caps["inbox"] != caps["uv"]
    archive = store_messages(srv, user, "Archive")
    inbox = store_messages(srv, user, "INBOX")
    assert [set(m.flags) for m in archive] == [set(), {"\\Seen"}, set(), set()]
    assert archive[1].internal_date == inbox[0].internal_date
    assert stored_bytes(srv, user, "Archive")[1:] == [
        stored_bytes(srv, user, "INBOX")[i] for i in (0, 2, 1)
    ]


def test_move(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 6851 §3.3, §4.3: MOVE sends COPYUID in an untagged OK, then the
    EXPUNGEs, then the tagged OK (also for the sequence-number form); UID MOVE
    likewise; a missing target gets [TRYCREATE]."""
    with_messages(srv, user, 4)
    rev2 = mode == "rev2"
    with login(srv, user, rev2=rev2) as c:
        select(c)
        transcript(
            c,
            f"""
            C: v STATUS Trash (UIDVALIDITY)
            S~ \\* STATUS Trash \\(UIDVALIDITY (?P<uv>\\d+)\\)
            S: v OK Status completed.
            C: a MOVE 2:3 Trash
            S: * OK [COPYUID ${{uv}} 2:3 1:2] Moved UIDs.
            S: * 2 EXPUNGE
            S: * 2 EXPUNGE
            S: a OK Move completed.
            C: b UID MOVE 4 Trash
            S: * OK [COPYUID ${{uv}} 4 3] Moved UIDs.
            S: * 2 EXPUNGE
            S: b OK Move completed.
            C: c MOVE 1 nothere
            S: c NO [TRYCREATE] Mailbox doesn't exist: nothere
            C: d UID MOVE 2:3 Trash
            S: d OK No messages found.
            C: e MOVE 1 INBOX
            S~ \\* OK \\[COPYUID \\d+ 1 5\\] Moved UIDs\\.
            S: * 1 EXPUNGE
            S: * 1 EXISTS
            {"" if rev2 else "S: * 1 RECENT"}
            S: e OK Move completed.
            """,
        )
    assert [int(m.uid) for m in store_messages(srv, user, "INBOX")] == [5]
    assert [int(m.uid) for m in store_messages(srv, user, "Trash")] == [1, 2, 3]


# ---- two sessions -----------------------------------------------------------------------------


def test_append_seen_by_other_session(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §7.4.1 / §5.2: a message added by another session is announced
    with EXISTS at the next command (NOOP) or at once during IDLE (RFC 2177)."""
    rev2 = mode == "rev2"
    with login(srv, user) as c1, login(srv, user, rev2=rev2) as c2, login(srv, user) as c3:
        select(c2)
        select(c3, command="EXAMINE")
        transcript(
            {"C1": c1, "C2": c2, "C3": c3},
            f"""
            C3: i IDLE
            S3: + idling
            C1: a APPEND INBOX {{5+}}
            C1: hello
            S1~ a OK \\[APPENDUID \\d+ 1\\] Append completed.
            S3: * 1 EXISTS
            C2: n NOOP
            S2: * 1 EXISTS
            {"" if rev2 else "S2: * 1 RECENT"}
            S2: n OK NOOP completed.
            C3: DONE
            S3: i OK Idle completed.
            """,
        )


def test_new_keywords_resend_flags(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.3.5: a client keeps the FLAGS list of SELECT, so keywords
    new to the mailbox send FLAGS (and PERMANENTFLAGS, empty under EXAMINE)
    again, before the FETCH that shows them (as Dovecot does): after this
    session's STORE (.SILENT too), another session's STORE (in IDLE as well)
    and an APPEND into the selected mailbox (in the other session's IDLE too,
    before its EXISTS). Keywords match without regard to case, so $todo
    after $Todo is not new."""
    with_messages(srv, user, 2)
    with login(srv, user, rev2=True) as c1, login(srv, user, rev2=True) as c2:
        select(c1)
        select(c2, command="EXAMINE")
        transcript(
            {"C1": c1, "C2": c2},
            f"""
            C1: a STORE 1 +FLAGS.SILENT ($Todo)
            S1: * FLAGS ({SYSTEM} $Todo)
            S1: * OK [PERMANENTFLAGS ({SYSTEM} $Todo \\*)] Flags permitted.
            S1: a OK Store completed.
            C1: b STORE 2 +FLAGS ($todo)
            S1: * 2 FETCH (FLAGS ($todo))
            S1: b OK Store completed.
            C2: i IDLE
            S2: * FLAGS ({SYSTEM} $Todo)
            S2: * OK [PERMANENTFLAGS ()] Flags permitted.
            S2: * 1 FETCH (FLAGS ($Todo) UID 1)
            S2: * 2 FETCH (FLAGS ($todo) UID 2)
            S2: + idling
            C1: c STORE 1 FLAGS (\\Seen Work)
            S1: * FLAGS ({SYSTEM} $Todo Work)
            S1: * OK [PERMANENTFLAGS ({SYSTEM} $Todo Work \\*)] Flags permitted.
            S1: * 1 FETCH (FLAGS (\\Seen Work))
            S1: c OK Store completed.
            S2: * FLAGS ({SYSTEM} $Todo Work)
            S2: * OK [PERMANENTFLAGS ()] Flags permitted.
            S2: * 1 FETCH (FLAGS (\\Seen Work) UID 1)
            C1: d APPEND INBOX (Later) {{5+}}
            C1: hello
            S1: * FLAGS ({SYSTEM} $Todo Work Later)
            S1: * OK [PERMANENTFLAGS ({SYSTEM} $Todo Work Later \\*)] Flags permitted.
            S1: * 3 EXISTS
            S1~ d OK \\[APPENDUID \\d+ 3\\] Append completed.
            S2: * FLAGS ({SYSTEM} $Todo Work Later)
            S2: * OK [PERMANENTFLAGS ()] Flags permitted.
            S2: * 3 EXISTS
            C2: DONE
            S2: i OK Idle completed.
            """,
        )


def test_copy_and_move_seen_by_other_session(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.4.1, §7.5.1: COPY into another session's mailbox shows up as
    EXISTS there; MOVE out of it shows up as EXPUNGE (in IDLE at once, else
    with the next NOOP; RFC 3501 §7.3.2 RECENT for the IMAP4rev1 session)."""
    with_messages(srv, user, 2, "Archive")
    with login(srv, user) as c1, login(srv, user, rev2=True) as c2, login(srv, user) as c3:
        select(c1, "Archive")
        select(c2, "Archive")
        select(c3, "Archive")
        transcript(
            {"C1": c1, "C2": c2, "C3": c3},
            """
            C2: i IDLE
            S2: + idling
            C1: a COPY 1 Archive
            S1: * 3 EXISTS
            S1: * 3 RECENT
            S1~ a OK \\[COPYUID \\d+ 1 3\\] Copy completed.
            S2: * 3 EXISTS
            C1: b MOVE 2 Trash
            S1~ \\* OK \\[COPYUID \\d+ 2 1\\] Moved UIDs\\.
            S1: * 2 EXPUNGE
            S1: b OK Move completed.
            S2: * 2 EXPUNGE
            C2: DONE
            S2: i OK Idle completed.
            # C3 learns both at its next command: EXPUNGE first, then EXISTS.
            C3: n NOOP
            S3: * 2 EXPUNGE
            S3: * 2 EXISTS
            S3: * 1 RECENT
            S3: n OK NOOP completed.
            """,
        )


def test_expunge_and_store_seen_by_other_session(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.4.1, §7.5.2: flag changes by another session come as FETCH
    (FLAGS) with UID; EXPUNGEs in IDLE at once. A session does not hear its
    own STORE twice."""
    with_messages(srv, user, 3)
    with login(srv, user, rev2=True) as c1, login(srv, user, rev2=True) as c2:
        select(c1)
        select(c2)
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: a STORE 2 +FLAGS (\\Flagged)
            S1: * 2 FETCH (FLAGS (\\Flagged))
            S1: a OK Store completed.
            C1: b NOOP
            S1: b OK NOOP completed.
            C2: n NOOP
            S2: * 2 FETCH (FLAGS (\\Flagged) UID 2)
            S2: n OK NOOP completed.
            C2: i IDLE
            S2: + idling
            C1: c STORE 1 FLAGS.SILENT (\\Deleted)
            S1: c OK Store completed.
            S2: * 1 FETCH (FLAGS (\\Deleted) UID 1)
            C1: d EXPUNGE
            S1: * 1 EXPUNGE
            S1: d OK Expunge completed.
            S2: * 1 EXPUNGE
            C2: DONE
            S2: i OK Idle completed.
            """,
        )


def test_no_expunge_during_store_by_sequence_number(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.5.1 (RFC 3501 §7.4.1): no EXPUNGE may be sent while the
    server answers STORE (or FETCH, SEARCH, COPY) by sequence number, since
    the client's numbers would shift; the UID forms and NOOP may carry them.
    A COPY of a message expunged meanwhile fails with [EXPUNGEISSUED] (RFC 5530)."""
    with_messages(srv, user, 3)
    with login(srv, user, rev2=True) as c1, login(srv, user, rev2=True) as c2:
        select(c1)
        select(c2)
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: a STORE 1 +FLAGS.SILENT (\\Deleted)
            S1: a OK Store completed.
            C1: b EXPUNGE
            S1: * 1 EXPUNGE
            S1: b OK Expunge completed.
            # C2 still numbers the messages 1:3; message 1 is gone.
            C2: c STORE 2 +FLAGS (\\Seen)
            S2: * 2 FETCH (FLAGS (\\Seen))
            S2: c OK Store completed.
            C2: d STORE 1:3 +FLAGS (\\Answered)
            S2: * 2 FETCH (FLAGS (\\Answered \\Seen))
            S2: * 3 FETCH (FLAGS (\\Answered))
            S2: d OK Store completed.
            C2: e COPY 1 Archive
            S2: e NO [EXPUNGEISSUED] Some of the requested messages no longer exist
            C2: f COPY 3 Archive
            S2~ f OK \\[COPYUID \\d+ 3 1\\] Copy completed.
            C2: g UID STORE 3 -FLAGS (\\Answered)
            S2: * 3 FETCH (FLAGS () UID 3)
            S2: * 1 EXPUNGE
            S2: g OK Store completed.
            C2: h STORE 1 +FLAGS.SILENT (\\Deleted)
            S2: h OK Store completed.
            """,
        )
        lines = c1.command("i NOOP")
        # The flags of another session's change come in no fixed order.
        head, _, tail = lines[0].partition("(FLAGS (")
        assert head == "* 1 FETCH " and tail.endswith(") UID 2)"), lines
        assert set(tail[: -len(") UID 2)")].split()) == {"\\Seen", "\\Answered", "\\Deleted"}
        assert lines[1:] == ["* 2 FETCH (FLAGS () UID 3)", "i OK NOOP completed."]


def test_no_expunge_during_store_rev1_then_noop(srv: ServerThread, user: str) -> None:
    """RFC 3501 §7.4.1: the deferred EXPUNGE reaches an IMAP4rev1 client with
    its next NOOP; sequence numbers stay stable until then."""
    with_messages(srv, user, 2)
    with login(srv, user) as c1, login(srv, user) as c2:
        select(c1)
        select(c2)
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: a STORE 1 +FLAGS.SILENT (\\Deleted)
            S1: a OK Store completed.
            C1: b EXPUNGE
            S1: * 1 EXPUNGE
            S1: b OK Expunge completed.
            C2: c STORE 2 +FLAGS (\\Flagged)
            S2: * 2 FETCH (FLAGS (\\Flagged))
            S2: c OK Store completed.
            C2: n NOOP
            S2: * 1 EXPUNGE
            S2: n OK NOOP completed.
            C2: d STORE 1 -FLAGS (\\Flagged)
            S2: * 1 FETCH (FLAGS ())
            S2: d OK Store completed.
            """,
        )


# ---- imaplib end to end ---------------------------------------------------------------------


def test_imaplib_end_to_end(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3-§6.4 through a real client library: create, list,
    append, select, store, copy, move, expunge, status, delete."""
    client = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    try:
        assert client.login(user, "pw")[0] == "OK"
        assert client.create("Projects/2024")[0] == "OK"
        typ, data = client.list('""', "Projects*")
        assert typ == "OK"
        assert data == [b'(\\HasChildren) "/" Projects', b'(\\HasNoChildren) "/" Projects/2024']
        message = make_message("imaplib", "hello from imaplib")
        typ, data = client.append("Projects/2024", "(\\Flagged)", None, message)
        assert typ == "OK" and data[0] is not None and b"APPENDUID" in data[0]
        client.append("Projects/2024", None, None, make_message("second"))
        typ, data = client.select("Projects/2024")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = client.store("1", "+FLAGS", "(\\Seen)")
        assert typ == "OK" and data == [b"1 (FLAGS (\\Flagged \\Seen \\Recent))"]
        typ, data = client.copy("1", "Archive")
        assert typ == "OK"
        typ, data = client.uid("MOVE", "2", "Trash")
        assert typ == "OK"
        assert client.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        typ, data = client.expunge()
        # imaplib also hands back the EXPUNGE that UID MOVE caused earlier.
        assert (typ, data) == ("OK", [b"2", b"1"])
        typ, data = client.status("Archive", "(MESSAGES UNSEEN)")
        assert (typ, data) == ("OK", [b"Archive (MESSAGES 1 UNSEEN 0)"])
        client.close()
        assert client.delete("Projects/2024")[0] == "OK"
        typ, data = client.list('""', "Projects*")
        assert data == [b'(\\HasNoChildren) "/" Projects']
        assert client.rename("Projects", "Old/Projects")[0] == "OK"
        assert client.subscribe("Old/Projects")[0] == "OK"
        typ, data = client.lsub('""', "Old*")
        assert data == [b'() "/" Old/Projects']
    finally:
        client.logout()
    assert "Old/Projects" in mailbox_names(srv, user)
    assert stored_bytes(srv, user, "Archive") == [message]
    assert [set(m.flags) for m in store_messages(srv, user, "Trash")] == [set()]
