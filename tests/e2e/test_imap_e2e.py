"""IMAP end to end: a real `mailbag serve` process, imaplib, imapclient, smtplib, poplib.

A new user's journey through the IMAP server the way a mail client walks it:
log in, list, select, see mail arrive live (IDLE), read it back byte for byte,
flag it, file it, delete it, append, search; POP3 and IMAP agreeing on one
mailbox; a restart that keeps UIDVALIDITY, UIDs and flags. A few of these
again in IMAP4rev2 mode (`ENABLE IMAP4rev2`, RFC 9051 §6.3.1) over a raw
socket (tests/interop/imap_wire.py), since imaplib and imapclient speak rev1.

Each test makes its own user on the module's server, so tests do not depend
on each other's mailboxes.
"""

from __future__ import annotations

import base64
import imaplib
import importlib.util
import itertools
import poplib
import re
import smtplib
import ssl
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from mailbag.testing.process import ServeProcess

imapclient = pytest.importorskip("imapclient", reason="pip install imapclient (the test extra)")

PASSWORD = "correct horse battery staple"  # as in conftest.py


def _load_wire() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "interop" / "imap_wire.py"
    spec = importlib.util.spec_from_file_location("imap_wire", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("imap_wire", module)
    spec.loader.exec_module(module)
    return module


w = _load_wire()

ATTACHMENT_B64 = b"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==\r\n"
TEXT_PART = b"Caf\xc3\xa9 at noon?\r\n.a line with a leading dot\r\n\r\nCheers\r\n"
MESSAGE = (
    b"From: Carol Sender <carol@example.net>\r\n"
    b"To: New User <newuser@localhost>\r\n"
    b'Cc: "Dave, Jr." <dave@example.org>\r\n'
    b"Subject: Lunch =?utf-8?q?caf=C3=A9?= plans\r\n"
    b"Date: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
    b"Message-ID: <lunch-1@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + TEXT_PART + b"--b1\r\n"
    b'Content-Type: application/pdf; name="menu.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="menu.pdf"\r\n'
    b"\r\n" + ATTACHMENT_B64 + b"--b1--\r\n"
)
SENDER = "carol@example.net"

_counter = itertools.count(1)


def simple(subject: str, body: str = "hello", sender: str = "x@example.org") -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@localhost\r\nSubject: {subject}\r\n"
        f"Date: Tue, 3 Sep 2024 08:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


# -- helpers ---------------------------------------------------------------------


def new_user(served: ServeProcess) -> str:
    """A user of its own for one test (so tests never share a mailbox)."""
    address = f"user{next(_counter)}-{time.monotonic_ns() % 100000}@localhost"
    served.add_user(address, PASSWORD)
    return address


def deliver(served: ServeProcess, rcpt: str, message: bytes, sender: str = SENDER) -> None:
    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        assert smtp.sendmail(sender, [rcpt], message) == {}


def imap(served: ServeProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", served.port("imap"), timeout=10)
    c.login(user, PASSWORD)  # plaintext LOGIN is allowed on loopback
    return c


def client(served: ServeProcess, user: str, folder: str | None = "INBOX") -> imapclient.IMAPClient:
    c = imapclient.IMAPClient("127.0.0.1", port=served.port("imap"), ssl=False, timeout=10)
    c.normalise_times = False  # keep the zone the server sent
    c.login(user, PASSWORD)
    if folder is not None:
        c.select_folder(folder)
    return c


def raw(served: ServeProcess, user: str, rev2: bool = False) -> w.Connection:
    c = w.Connection("127.0.0.1", served.port("imap"), timeout=10)
    c.login(user, PASSWORD)
    if rev2:
        r = c.command("ENABLE", "IMAP4rev2").ok()
        enabled = [[str(v).upper() for v in u.values] for u in r.of("ENABLED")]
        assert enabled == [["ENABLED", "IMAP4REV2"]], r.untagged
    return c


def ok(result: tuple[str, list[object]]) -> list[object]:
    typ, data = result
    assert typ == "OK", data
    return data


def trace_and_body(stored: bytes, message: bytes) -> tuple[bytes, bytes]:
    """Split what the store holds into mailbag's trace headers and the message."""
    assert stored.endswith(message), stored[:400]
    return stored[: len(stored) - len(message)], stored[len(stored) - len(message) :]


def assert_trace(trace: bytes, sender: str, proto: str = "ESMTP") -> None:
    """Only Return-Path and Received fields precede the message (RFC 5321 §4.4)."""
    assert trace.startswith(f"Return-Path: <{sender}>\r\n".encode()), trace
    rest = trace.split(b"\r\n", 1)[1]
    assert rest.startswith(b"Received: "), trace
    assert f"with {proto}".encode() in rest
    # every other line is a continuation of the Received field
    for line in rest.split(b"\r\n")[1:-1]:
        assert line[:1] in (b" ", b"\t"), trace


def uid_of(c: imaplib.IMAP4, seq: int) -> int:
    data = ok(c.fetch(str(seq), "(UID)"))
    m = re.search(rb"UID (\d+)", data[0])  # type: ignore[arg-type]
    assert m
    return int(m.group(1))


def idle_wait(c: imapclient.IMAPClient, wanted: tuple[int, bytes], timeout: float) -> list[object]:
    """IDLE responses until `wanted` arrives or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    seen: list[object] = []
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        seen += c.idle_check(timeout=max(left, 0.01))
    return seen


def subjects_of(c: imapclient.IMAPClient) -> list[bytes]:
    """The Subject lines of the selected mailbox, in sequence order."""
    got = c.fetch(c.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    return [got[uid][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for uid in sorted(got)]


@pytest.fixture
def user(served: ServeProcess) -> str:
    return new_user(served)


# -- the journey ----------------------------------------------------------------


def test_login_list_select_new_user(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.2.3 LOGIN, §6.3.9 LIST (RFC 6154 special use), §6.3.2 SELECT."""
    lister = client(served, user, None)
    try:
        folders = {name: set(flags) for flags, _delim, name in lister.list_folders()}
        assert {"INBOX", "Archive", "Sent", "Drafts", "Trash", "Junk"} <= set(folders), folders
        # RFC 6154 §2: the special-use attributes come with LIST
        assert b"\\Archive" in folders["Archive"] and b"\\Sent" in folders["Sent"]
        assert lister.find_special_folder(b"\\Trash") == "Trash"
    finally:
        lister.logout()
    c = imap(served, user)
    try:
        assert len(ok(c.list())) == len(folders)
        typ, data = c.select("INBOX")
        assert (typ, data) == ("OK", [b"0"])
        assert c.untagged_responses.get("UIDVALIDITY")
        typ, data = c.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)")
        assert typ == "OK" and b"MESSAGES 0" in data[0] and b"UNSEEN 0" in data[0], data  # type: ignore[operator]
    finally:
        c.logout()


def test_smtp_delivery_shows_in_idle_within_a_second(served: ServeProcess, user: str) -> None:
    """RFC 2177 / RFC 9051 §6.3.13: a delivery is pushed to an IDLE session at once."""
    idler = client(served, user)
    try:
        idler.idle()
        deliver(served, user, MESSAGE)
        started = time.monotonic()
        seen = idle_wait(idler, (1, b"EXISTS"), 1.0)
        elapsed = time.monotonic() - started
        idler.idle_done()
        assert (1, b"EXISTS") in seen, seen
        assert elapsed < 1.0, elapsed
        # RFC 3501 §7.3.2: an IMAP4rev1 session also learns the new mail is recent.
        assert (1, b"RECENT") in seen + idler.noop()[1], seen
    finally:
        idler.logout()


def test_fetch_envelope_bodystructure_and_exact_bytes(served: ServeProcess, user: str) -> None:
    """RFC 9051 §7.5.2 ENVELOPE/BODYSTRUCTURE, §6.4.5 BODY[]: the bytes that were sent."""
    deliver(served, user, MESSAGE)
    c = client(served, user)
    try:
        uids = c.search("ALL")
        assert len(uids) == 1
        data = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "BODY.PEEK[]"])[uids[0]]
        stored = data[b"BODY[]"]
        trace, body = trace_and_body(stored, MESSAGE)
        assert body == MESSAGE
        assert_trace(trace, SENDER)
        assert data[b"RFC822.SIZE"] == len(stored)

        env = data[b"ENVELOPE"]
        assert env.subject == b"Lunch =?utf-8?q?caf=C3=A9?= plans"  # raw, not decoded
        assert env.message_id == b"<lunch-1@example.net>"
        assert env.date == datetime(2024, 9, 2, 10, 0, tzinfo=timezone(timedelta(hours=2)))
        assert [(a.name, a.mailbox, a.host) for a in env.from_] == [
            (b"Carol Sender", b"carol", b"example.net")
        ]
        assert env.sender == env.from_ and env.reply_to == env.from_  # RFC 9051 §7.5.2
        assert [(a.name, a.mailbox) for a in env.to] == [(b"New User", b"newuser")]
        assert [(a.name, a.mailbox, a.host) for a in env.cc] == [
            (b"Dave, Jr.", b"dave", b"example.org")
        ]
        assert env.bcc is None and env.in_reply_to is None

        bs = data[b"BODYSTRUCTURE"]
        assert bs.is_multipart
        parts, subtype = bs[0], bs[1]
        assert subtype == b"mixed"
        text, pdf = parts
        assert text[:6] == (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"8bit")
        # RFC 2046 §5.1.1: the CRLF before a boundary line belongs to the boundary
        assert text[6] == len(TEXT_PART) - 2 and text[7] == TEXT_PART.count(b"\n") - 1
        assert pdf[:6] == (b"application", b"pdf", (b"name", b"menu.pdf"), None, None, b"base64")
        assert pdf[6] == len(ATTACHMENT_B64) - 2
        assert pdf[8] == (b"attachment", (b"filename", b"menu.pdf"))

        # The parts by number, and BINARY decoding of the attachment (RFC 3516).
        parts_data = c.fetch(uids, ["BODY.PEEK[1]", "BODY.PEEK[2.MIME]"])
        got = parts_data[uids[0]]
        assert got[b"BODY[1]"] == TEXT_PART[:-2]
        assert got[b"BODY[2.MIME]"].startswith(b"Content-Type: application/pdf")
        # imapclient 3.x cannot parse a literal8 (`~{n}`), so BINARY goes raw.
        r = raw(served, user)
        try:
            r.select("INBOX", examine=True)
            item = r.command("FETCH", "1", "(BINARY.PEEK[2] BINARY.SIZE[2])").ok().fetches()[1]
            assert item["BINARY[2]"] == base64.b64decode(ATTACHMENT_B64)
            assert item["BINARY.SIZE[2]"] == len(item["BINARY[2]"])
        finally:
            r.logout()
        # PEEK left \Seen alone; a plain BODY[] sets it (RFC 9051 §6.4.5).
        assert b"\\Seen" not in c.get_flags(uids)[uids[0]]
        c.fetch(uids, ["BODY[]"])
        assert b"\\Seen" in c.get_flags(uids)[uids[0]]
    finally:
        c.logout()


def test_store_flags_seen_by_second_connection(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.6 STORE, §7.5.2: other sessions learn of flag changes."""
    deliver(served, user, MESSAGE)
    watcher = client(served, user)
    c = imap(served, user)
    try:
        ok(c.select("INBOX"))
        data = ok(c.store("1", "+FLAGS", "(\\Flagged $Important)"))
        assert b"\\Flagged" in data[0] and b"$Important" in data[0]  # type: ignore[operator]
        updates = watcher.noop()[1]
        fetches = [u for u in updates if u[:2] == (1, b"FETCH")]
        assert fetches, updates
        flags = dict(zip(fetches[-1][2][::2], fetches[-1][2][1::2], strict=True))[b"FLAGS"]
        assert {b"\\Flagged", b"$Important"} <= set(flags)
        # a brand-new connection sees it too
        fresh = client(served, user)
        try:
            (flags,) = fresh.get_flags(fresh.search("ALL")).values()
            assert {b"\\Flagged", b"$Important"} <= set(flags)
        finally:
            fresh.logout()
        ok(c.store("1", "-FLAGS", "(\\Flagged)"))
        (flags,) = watcher.get_flags(watcher.search("ALL")).values()
        assert b"\\Flagged" not in flags and b"$Important" in flags
    finally:
        c.logout()
        watcher.logout()


def test_copy_and_move_to_archive(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.7 COPY, §6.4.8 MOVE, RFC 4315 COPYUID."""
    deliver(served, user, MESSAGE)
    deliver(served, user, simple("second"))
    c = imap(served, user)
    try:
        ok(c.select("INBOX"))
        first_uid = uid_of(c, 1)
        typ, data = c.copy("1", "Archive")
        assert typ == "OK"
        assert re.search(rb"\[COPYUID \d+ %d \d+\]" % first_uid, data[0]), data  # type: ignore[arg-type]
        second_uid = uid_of(c, 2)
        typ, data = c.uid("MOVE", str(second_uid), "Archive")
        assert typ == "OK", data
        # MOVE expunged it from INBOX (RFC 6851 §3.3: EXPUNGE before the tagged OK)
        assert c.untagged_responses.get("EXPUNGE") == [b"2"], c.untagged_responses
        typ, data = c.status("INBOX", "(MESSAGES)")
        assert b"MESSAGES 1" in data[0]  # type: ignore[operator]
        archived = client(served, user, "Archive")
        try:
            uids = archived.search("ALL")
            assert len(uids) == 2
            bodies = archived.fetch(uids, ["BODY.PEEK[]"])
            texts = [bodies[u][b"BODY[]"] for u in uids]
            assert texts[0].endswith(MESSAGE) and texts[1].endswith(simple("second"))
        finally:
            archived.logout()
    finally:
        c.logout()


def test_move_seen_live_by_watchers_of_both_mailboxes(served: ServeProcess, user: str) -> None:
    """RFC 6851 §3.3 MOVE: an IDLE session on the source gets EXPUNGE, one on the
    target gets EXISTS (RFC 2177, RFC 9051 §7.4.1)."""
    deliver(served, user, simple("to be moved"))
    src = client(served, user, "INBOX")
    dst = client(served, user, "Archive")
    c = imap(served, user)
    try:
        src.idle()
        dst.idle()
        ok(c.select("INBOX"))
        typ, data = c.uid("MOVE", str(uid_of(c, 1)), "Archive")
        assert typ == "OK", data
        assert (1, b"EXPUNGE") in idle_wait(src, (1, b"EXPUNGE"), 1.0)
        assert (1, b"EXISTS") in idle_wait(dst, (1, b"EXISTS"), 1.0)
        src.idle_done()
        dst.idle_done()
        assert subjects_of(dst) == [b"Subject: to be moved"]
        assert subjects_of(src) == []
    finally:
        c.logout()
        src.logout()
        dst.logout()


def test_large_message_partial_fetch(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.5: BODY[]<start.len> of a 3 MB message is exactly that slice."""
    lines = b"".join(b"%07d abcdefghijklmnopqrstuvwxyz0123456789\r\n" % i for i in range(64_000))
    big = simple("big one").replace(b"hello\r\n", lines)
    deliver(served, user, big)
    c = raw(served, user)
    try:
        c.select("INBOX", examine=True)
        item = c.command("FETCH", "1", "(RFC822.SIZE BODY.PEEK[])").ok().fetches()[1]
        stored = item["BODY[]"]
        assert stored.endswith(big) and item["RFC822.SIZE"] == len(stored)
        for start, length in ((0, 10), (1_000_000, 4096), (len(stored) - 5, 100)):
            r = c.command("FETCH", "1", f"(BODY.PEEK[]<{start}.{length}>)").ok()
            assert r.fetches()[1][f"BODY[]<{start}>"] == stored[start : start + length]
        r = c.command("FETCH", "1", "(BODY.PEEK[TEXT]<100.20>)").ok()
        assert r.fetches()[1]["BODY[TEXT]<100>"] == lines[100:120]
    finally:
        c.logout()


def test_expunge_seen_by_second_connection(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.3 EXPUNGE, §7.5.1: other sessions get `* n EXPUNGE`."""
    for i in range(3):
        deliver(served, user, simple(f"m{i}"))
    watcher = client(served, user)
    c = imap(served, user)
    try:
        ok(c.select("INBOX"))
        ok(c.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
        typ, data = c.expunge()
        assert (typ, data) == ("OK", [b"2"])
        updates = watcher.noop()[1]
        assert (2, b"EXPUNGE") in updates, updates
        subjects = subjects_of(watcher)
        assert subjects == [b"Subject: m0", b"Subject: m2"]
    finally:
        c.logout()
        watcher.logout()


def test_append_from_imaplib(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.3.12 APPEND with flags and date, RFC 4315 APPENDUID."""
    c = imap(served, user)
    watcher = client(served, user)
    try:
        when = datetime(2023, 5, 17, 9, 30, 0, tzinfo=timezone(timedelta(hours=-4)))
        typ, data = c.append(
            "INBOX", "(\\Seen $Important)", imaplib.Time2Internaldate(when), MESSAGE
        )
        assert typ == "OK", data
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])  # type: ignore[arg-type]
        assert m, data
        uid = int(m.group(2))
        assert (1, b"EXISTS") in watcher.noop()[1]
        got = watcher.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE", "RFC822.SIZE"])[uid]
        assert got[b"BODY[]"] == MESSAGE  # APPEND stores exactly the literal: no trace headers
        assert got[b"RFC822.SIZE"] == len(MESSAGE)
        assert {b"\\Seen", b"$Important"} <= set(got[b"FLAGS"])
        assert got[b"INTERNALDATE"].timestamp() == when.timestamp()
        # APPEND to a mailbox that does not exist: NO [TRYCREATE] (RFC 9051 §6.3.12)
        typ, data = c.append("No/Such/Box", None, None, MESSAGE)
        assert typ == "NO" and b"[TRYCREATE]" in data[0], data  # type: ignore[operator]
    finally:
        watcher.logout()
        c.logout()


def test_search(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.4 SEARCH: header, body, flag, size, date keys, CHARSET UTF-8."""
    deliver(served, user, MESSAGE)
    deliver(served, user, simple("quarterly report", "numbers inside", "boss@example.com"))
    deliver(served, user, simple("lunch again", "no caf\u00e9 today"))
    c = imap(served, user)
    cl = client(served, user)
    try:
        ok(c.select("INBOX"))
        ok(c.store("2", "+FLAGS", "(\\Flagged)"))

        def search(*criteria: str) -> list[int]:
            return [int(x) for x in ok(c.search(None, *criteria))[0].split()]  # type: ignore[union-attr]

        assert search("ALL") == [1, 2, 3]
        assert search("FROM", "boss@example.com") == [2]
        assert search("SUBJECT", "lunch") == [1, 3]  # encoded-word decoded for the match
        assert search("FLAGGED") == [2]
        assert search("NOT", "FLAGGED") == [1, 3]
        assert search("OR", "FLAGGED", "FROM", "carol") == [1, 2]
        assert search("BODY", "numbers") == [2]
        assert search("TEXT", "menu.pdf") == [1]
        assert search("HEADER", "Message-ID", "lunch-1") == [1]
        assert search("LARGER", str(len(MESSAGE))) == [1]
        assert search("SENTBEFORE", "3-Sep-2024") == [1]
        assert search("SENTON", "3-Sep-2024") == [2, 3]
        assert search("UNSEEN") == [1, 2, 3]
        # UID SEARCH answers UIDs; CHARSET UTF-8 with a non-ASCII literal (imapclient)
        uids = cl.search(["TEXT", "café"], charset="UTF-8")
        assert len(uids) == 2
        assert cl.search(["SUBJECT", "CAFÉ"], charset="UTF-8") == uids[:1]
        assert cl.search(["BODY", "Café at noon"], charset="UTF-8") == uids[:1]
    finally:
        cl.logout()
        c.logout()


# -- POP3 and IMAP on one mailbox --------------------------------------------------


def pop3(served: ServeProcess, user: str) -> poplib.POP3:
    p = poplib.POP3("127.0.0.1", served.port("pop3"), timeout=10)
    p.user(user)
    p.pass_(PASSWORD)
    return p


def test_pop3_dele_is_an_imap_expunge(served: ServeProcess, user: str) -> None:
    """RFC 1939 §6 (UPDATE state removes DELE'd messages) meets RFC 9051 §7.5.1."""
    for i in range(3):
        deliver(served, user, simple(f"p{i}"))
    watcher = client(served, user)
    try:
        watcher.idle()
        p = pop3(served, user)
        assert p.stat()[0] == 3
        p.dele(1)
        # Nothing is removed before QUIT: the IMAP session sees no change yet.
        assert watcher.idle_check(timeout=0.3) == []
        p.quit()
        seen = idle_wait(watcher, (1, b"EXPUNGE"), 2.0)
        watcher.idle_done()
        assert (1, b"EXPUNGE") in seen, seen
        subjects = subjects_of(watcher)
        assert subjects == [b"Subject: p1", b"Subject: p2"]
    finally:
        watcher.logout()


def test_imap_expunge_is_gone_from_pop3(served: ServeProcess, user: str) -> None:
    """RFC 9051 §6.4.3 EXPUNGE: the next POP3 session no longer lists the message."""
    for i in range(3):
        deliver(served, user, simple(f"q{i}"))
    p = pop3(served, user)
    assert p.stat()[0] == 3
    uidls_before = [x.split()[1] for x in p.uidl()[1]]
    p.quit()
    c = imap(served, user)
    try:
        ok(c.select("INBOX"))
        ok(c.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
        assert ok(c.expunge()) == [b"2"]
    finally:
        c.logout()
    p = pop3(served, user)
    try:
        count, _size = p.stat()
        assert count == 2
        uidls = [x.split()[1] for x in p.uidl()[1]]
        assert uidls == [uidls_before[0], uidls_before[2]]  # UIDLs are stable (RFC 1939 §7)
        assert b"Subject: q2" in b"\r\n".join(p.retr(2)[1])
    finally:
        p.quit()


# -- restart --------------------------------------------------------------------------


def _snapshot(c: imapclient.IMAPClient, folder: str) -> tuple[int, int, dict[int, set[bytes]]]:
    info = c.select_folder(folder)
    flags = {uid: set(f) - {b"\\Recent"} for uid, f in c.get_flags(c.search("ALL")).items()}
    return info[b"UIDVALIDITY"], info[b"UIDNEXT"], flags


@pytest.mark.slow
def test_restart_keeps_uidvalidity_uids_and_flags(tmp_path: Path) -> None:
    """RFC 9051 §2.3.1.1: UIDs and UIDVALIDITY survive a server restart, and so do flags."""
    data_dir = tmp_path / "data"
    server = ServeProcess(data_dir).start()
    try:
        user = "restart@localhost"
        server.add_user(user, PASSWORD)
        for i in range(4):
            deliver(server, user, simple(f"r{i}"))
        c = client(server, user)
        c.create_folder("Projects/2024")
        c.append("Projects/2024", simple("kept"), flags=(b"\\Answered", b"$Client"))
        c.select_folder("INBOX")
        uids = c.search("ALL")
        c.add_flags(uids[0], [b"\\Flagged", b"$Todo"])
        c.add_flags(uids[1], [b"\\Seen"])
        c.delete_messages(uids[2])
        c.expunge()
        before = {f: _snapshot(c, f) for f in ("INBOX", "Projects/2024")}
        c.logout()
    finally:
        assert server.stop() == 0, server.log()[-2000:]
    again = ServeProcess(data_dir).start()
    try:
        c = client(again, user, None)
        after = {f: _snapshot(c, f) for f in ("INBOX", "Projects/2024")}
        assert after == before
        assert len(after["INBOX"][2]) == 3 and after["INBOX"][1] == uids[-1] + 1
        # UIDs keep growing from where they were (RFC 9051 §2.3.1.1)
        deliver(again, user, simple("after restart"))
        c.select_folder("INBOX")
        assert max(c.search("ALL")) == before["INBOX"][1]
        c.logout()
    finally:
        assert again.stop() == 0, again.log()[-2000:]


# -- TLS ----------------------------------------------------------------------------


def test_imaps_and_starttls_with_the_self_signed_cert(served: ServeProcess, user: str) -> None:
    """RFC 8314 implicit TLS and RFC 9051 §6.2.1 STARTTLS with <data_dir>/tls/cert.pem."""
    ctx = ssl.create_default_context(cafile=str(served.data_dir / "tls" / "cert.pem"))
    deliver(served, user, MESSAGE)
    with imaplib.IMAP4_SSL("127.0.0.1", served.port("imaps"), ssl_context=ctx, timeout=10) as c:
        c.login(user, PASSWORD)
        ok(c.select("INBOX", readonly=True))
        data = ok(c.fetch("1", "(BODY.PEEK[])"))
        assert data[0][1].endswith(MESSAGE)  # type: ignore[index]
    with imaplib.IMAP4("127.0.0.1", served.port("imap"), timeout=10) as c:
        c.starttls(ssl_context=ctx)
        c.login(user, PASSWORD)
        assert ok(c.select("INBOX", readonly=True)) == [b"1"]


# -- IMAP4rev2 ----------------------------------------------------------------------


def test_rev2_select_search_fetch_idle(served: ServeProcess, user: str) -> None:
    """RFC 9051 (IMAP4rev2 enabled): no RECENT, ESEARCH for SEARCH, IDLE, same bytes."""
    deliver(served, user, MESSAGE)
    c = raw(served, user, rev2=True)
    try:
        r = c.select("INBOX")
        kinds = [u.kind for u in r.untagged]
        assert "EXISTS" in kinds and "RECENT" not in kinds  # RFC 9051 Appendix E
        assert r.code_of("OK", "UNSEEN") is None  # RFC 9051 Appendix E: no [UNSEEN n]
        assert r.code_of("OK", "UIDVALIDITY")
        r = c.command("SEARCH", "FROM", "carol").ok()
        assert [u.kind for u in r.untagged] == ["ESEARCH"], r.untagged
        assert r.search() == [1]
        r = c.command("SEARCH", "FROM", "nobody-at-all").ok()
        assert r.search() == []  # `* ESEARCH (TAG "...")` with no ALL
        r = c.command("FETCH", "1", "(FLAGS BODY.PEEK[] BINARY.PEEK[1])").ok()
        item = r.fetches()[1]
        assert item["FLAGS"] == []  # no \Recent in IMAP4rev2
        trace, body = trace_and_body(item["BODY[]"], MESSAGE)
        assert body == MESSAGE
        assert_trace(trace, SENDER)
        assert item["BINARY[1]"] == TEXT_PART[:-2]

        # IDLE: a delivery shows up within a second
        c.send(b"I1 IDLE\r\n")
        assert c.read_response().startswith(b"+ ")
        deliver(served, user, simple("rev2 live"))
        started = time.monotonic()
        got = c.read_untagged(1.0)
        while not any(u.kind == "EXISTS" for u in got) and time.monotonic() - started < 1.0:
            got += c.read_untagged(1.0 - (time.monotonic() - started))
        assert any(u.kind == "EXISTS" and u.values[0] == 2 for u in got), got
        assert not any(u.kind == "RECENT" for u in got)
        c.send(b"DONE\r\n")
        assert c.collect("I1").status == "OK"
    finally:
        c.logout()


def test_rev2_store_and_expunge_seen_by_second_rev2_connection(
    served: ServeProcess, user: str
) -> None:
    """RFC 9051 §6.4.6, §6.4.3, §7.5: updates between two IMAP4rev2 sessions."""
    for i in range(3):
        deliver(served, user, simple(f"v{i}"))
    a = raw(served, user, rev2=True)
    b = raw(served, user, rev2=True)
    try:
        a.select("INBOX")
        b.select("INBOX")
        r = a.command("STORE", "1", "+FLAGS", "(\\Flagged)").ok()
        assert r.fetches()[1]["FLAGS"] == [w.Atom("\\Flagged")]
        r = b.command("NOOP").ok()
        assert r.fetches().get(1, {}).get("FLAGS") == [w.Atom("\\Flagged")], r.untagged
        r = a.command("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)").ok()
        assert not r.fetches()
        r = a.command("UID EXPUNGE", "1:*").ok()  # RFC 9051 §6.4.9 (UIDPLUS in rev2)
        assert [u.values for u in r.of("EXPUNGE")] == [[2, w.Atom("EXPUNGE")]]
        r = b.command("NOOP").ok()
        assert [u.values for u in r.of("EXPUNGE")] == [[2, w.Atom("EXPUNGE")]]
        r = b.command("SEARCH", "ALL").ok()
        assert r.search() == [1, 2]
        r = b.command("UID SEARCH", "RETURN", "(COUNT)", "ALL").ok()
        (es,) = r.of("ESEARCH")
        assert w.Atom("UID") in es.values and "COUNT" in [str(v) for v in es.values]
        assert es.values[es.values.index(w.Atom("COUNT")) + 1] == 2
        # APPEND in rev2 mode stores exactly the literal
        r = b.append("INBOX", MESSAGE, ["\\Seen"]).ok()
        uid = int((r.code or "").split()[2])
        assert [u.values for u in a.command("NOOP").ok().of("EXISTS")] == [[3, w.Atom("EXISTS")]]
        r = a.command("UID FETCH", str(uid), "(BODY.PEEK[] FLAGS)").ok()
        (item,) = r.fetches().values()
        assert item["BODY[]"] == MESSAGE and item["FLAGS"] == [w.Atom("\\Seen")]
    finally:
        a.logout()
        b.logout()


@pytest.fixture(autouse=True)
def _no_server_crash(served: ServeProcess) -> Iterator[None]:
    """A session bug closes that connection with BYE, never the server (DESIGN.md §2.6)."""
    yield
    assert served.proc is not None and served.proc.poll() is None, served.log()[-3000:]
