"""The FETCH fast path (metadata, ENVELOPE/BODY/BODYSTRUCTURE from the forms
serialised at delivery, whole small messages written as bytes) answers
exactly what the general path answers (RFC 9051 §6.4.5, §7.5.2; RFC 3501
§6.4.5, §7.4.2).

Two comparisons on a real SQLite server over real sockets, for IMAP4rev1,
IMAP4rev2 and UTF8=ACCEPT sessions:

- ENVELOPE/BODY/BODYSTRUCTURE octet for octet, with the stored forms and
  after removing them from the database (what a version 2 database holds);
- every other fast item against the same request plus BODY.PEEK[HEADER],
  which no fast form serves and so sends the whole message the general way.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fetch_search_support import CORPUS, corpus, fetches, raw, tagged
from imap_support import Client, add_messages, add_user, connect

from mailbag.store.models import AppendRequest
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.testing.server import ServerThread

_ONLY_IMAP: dict[str, int | None] = dict.fromkeys(("smtp", "lmtp", "pop3", "pop3s", "imaps"))
MODES = ("rev1", "rev2", "utf8")


def _messages() -> list[AppendRequest]:
    out: list[AppendRequest] = []
    zones = [dt.timezone(dt.timedelta(minutes=m)) for m in (0, 330, -420, 60, -30)]
    for i, path in enumerate(sorted(CORPUS.glob("*.eml"))):
        flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Flagged", "$Label", "\\Seen"})]
        when = dt.datetime(
            2001 + i, 1 + i % 12, 1 + i % 28, i % 24, i % 60, i % 60, tzinfo=zones[i % 5]
        )
        out.append(AppendRequest(corpus(path.stem), flags[i % 3], when))
    # A message bigger than what is read whole (streamed by the general path).
    big = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 20_000 + b"\r\n"
    out.append(AppendRequest(big))
    return out


@contextmanager
def server(tmp_path: Path) -> Iterator[tuple[ServerThread, SQLiteStore, int]]:
    store = SQLiteStore(tmp_path / "store", fts_worker=False)
    srv = ServerThread(tmp_path / "srv", store=store, ports=_ONLY_IMAP)
    with srv:
        add_user(srv, "alice")
        messages = _messages()
        add_messages(srv, "alice", "INBOX", messages)
        yield srv, store, len(messages)


def _session(srv: ServerThread, mode: str) -> Client:
    client = connect(srv, rev2=mode == "rev2")
    if mode == "utf8":
        assert tagged(raw(client, "e ENABLE UTF8=ACCEPT")).startswith("e OK")
    assert tagged(raw(client, "s EXAMINE INBOX")).startswith("s OK")
    return client


def _fetch(client: Client, command: str) -> bytes:
    out = raw(client, "f " + command)
    assert tagged(out) == "f OK Fetch completed.", out[-300:]
    return out


def test_structures_equal_without_stored_forms(tmp_path: Path) -> None:
    """ENVELOPE, BODY and BODYSTRUCTURE octet for octet, from the forms and
    from the facts, for every corpus message (8-bit headers, message/global,
    NUL octets and broken MIME among them)."""
    with server(tmp_path) as (srv, store, n):
        with sqlite3.connect(store.db_path) as conn:
            with_forms = conn.execute(
                "SELECT count(*) FROM contents WHERE imap_envelope IS NOT NULL"
            ).fetchone()[0]
        # Most messages are served from forms; the others (8-bit, message/global) are not.
        assert n - 5 <= with_forms < n
        command = "FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)"
        fast = {mode: _fetch(_session(srv, mode), command) for mode in MODES}
        with sqlite3.connect(store.db_path) as conn:
            conn.execute(
                "UPDATE contents SET imap_envelope = NULL, imap_body = NULL,"
                " imap_bodystructure = NULL"
            )
        general = {mode: _fetch(_session(srv, mode), command) for mode in MODES}
        for mode in MODES:
            assert fast[mode] == general[mode], mode
            assert len(fetches(fast[mode])) == n
        # 8-bit header octets: a literal for IMAP4rev1, a quoted string for UTF-8 clients.
        assert fast["rev1"] != fast["rev2"]


def test_metadata_and_bodies_equal_the_general_path(tmp_path: Path) -> None:
    """UID, FLAGS (with \\Recent for IMAP4rev1), INTERNALDATE in the message's
    own zone, RFC822.SIZE, RFC822, BODY.PEEK[] and partials: the fast answer
    equals the general one item for item, and the big message is streamed."""
    with server(tmp_path) as (srv, _store, n):
        items = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<5.100> ENVELOPE"
        for mode in MODES:
            client = _session(srv, mode)
            fast = fetches(_fetch(client, f"FETCH 1:* ({items})"))
            general = fetches(_fetch(client, f"FETCH 1:* ({items} BODY.PEEK[HEADER])"))
            for answer in general.values():
                del answer["BODY[HEADER]"]
            assert fast == general, mode
            assert len(fast) == n
            assert len(fast[n]["BODY[]"]) == 16 + 320_000 + 2
            assert (
                fast[n]["BODY[]<5>"] == b"ct: big\r\n\r\n" + b"0123456789abcdef" * 5 + b"012345678"
            )
            rfc822 = fetches(_fetch(client, "FETCH 1:* (RFC822.SIZE BODY.PEEK[])"))
            assert all(len(a["BODY[]"]) == a["RFC822.SIZE"] for a in rfc822.values())


def test_body_fetch_sets_seen_and_reports_flags(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5: BODY[] sets \\Seen; the FETCH carries the new FLAGS
    right after UID (Dovecot's place), from the fast path as from the general."""
    with server(tmp_path) as (srv, _store, _n):
        client = connect(srv)
        assert tagged(raw(client, "s SELECT INBOX")).startswith("s OK")
        # Messages 1 and 4 are unseen (every third message is).
        fast = _fetch(client, "UID FETCH 1 (UID BODY[]<0.10>)")
        general = _fetch(client, "UID FETCH 4 (UID BODY[]<0.10> BODY.PEEK[HEADER])")
        assert fast.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) BODY[]<0> {10}\r\n")
        assert general.startswith(b"* 4 FETCH (UID 4 FLAGS (\\Seen \\Recent) BODY[]<0> {10}\r\n")
        again = _fetch(client, "UID FETCH 1 (UID BODY[]<0.10>)")
        assert again.startswith(b"* 1 FETCH (UID 1 BODY[]<0> {10}\r\n")


def test_literal_octets_and_the_items_around_them(tmp_path: Path) -> None:
    """The fast path writes a body's octets as a piece of their own: the items
    after it still get their space (also when the body ends like a literal
    header), and FLAGS set by BODY[] goes first when UID is not asked for.
    Bodies are read in bulk across more than one store call."""
    from mailbag.session.imap.handlers import fetch

    tricky = b"Subject: braces\r\n\r\nends like a literal {5}\r\n"
    store = SQLiteStore(tmp_path / "store", fts_worker=False)
    srv = ServerThread(tmp_path / "srv", store=store, ports=_ONLY_IMAP)
    old = fetch.PREFETCH_BYTES
    fetch.PREFETCH_BYTES = 100  # every message its own bulk read
    try:
        with srv:
            add_user(srv, "alice")
            small = [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(5)]
            add_messages(srv, "alice", "INBOX", [AppendRequest(d) for d in [tricky, *small]])
            client = connect(srv, rev2=True)
            assert tagged(raw(client, "s SELECT INBOX")).startswith("s OK")
            got = _fetch(client, "FETCH 1 (BODY[] RFC822.SIZE)")
            n = len(tricky)
            assert got.startswith(
                b"* 1 FETCH (FLAGS (\\Seen) BODY[] {%d}\r\n" % n
                + tricky
                + b" RFC822.SIZE %d)\r\n" % n
            ), got
            every = _fetch(client, "FETCH 1:* (BODY.PEEK[] RFC822.SIZE)")
            for i, data in enumerate([tricky, *small], start=1):
                line = b"* %d FETCH (BODY[] {%d}\r\n" % (i, len(data))
                assert line + data + b" RFC822.SIZE %d)\r\n" % len(data) in every, i
    finally:
        fetch.PREFETCH_BYTES = old


def test_metadata_from_the_column_index_equals_the_per_message_path(tmp_path: Path) -> None:
    """FETCH of metadata over much of a mailbox is formatted from the store's
    columns (message_index); the octets equal the per-message path's, for
    IMAP4rev1 (\\Recent) and IMAP4rev2, UID and sequence forms, keywords and
    internal dates in their own zones; a message expunged by another session
    gets no answer and the command says EXPUNGEISSUED."""
    from mailbag.session.imap.handlers import fetch

    commands = [
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
        "FETCH 1:* (INTERNALDATE FLAGS)",
        "FETCH 2:30 (RFC822.SIZE UID)",
        "UID FETCH 5,3,9:12 FLAGS",
    ]
    with server(tmp_path) as (srv, _store, _n):
        for mode in ("rev1", "rev2"):
            client = _session(srv, mode)
            old = fetch.INDEX_MIN
            try:
                fetch.INDEX_MIN = 1
                by_index = [_fetch(client, c) for c in commands]
                fetch.INDEX_MIN = 10**9
                per_message = [_fetch(client, c) for c in commands]
            finally:
                fetch.INDEX_MIN = old
            assert by_index == per_message, mode
            assert b"INTERNALDATE" in by_index[0] and b"$Label" in by_index[0]
        # Another session expunges message 2 while this one still shows it.
        watcher = _session(srv, "rev2")
        other = connect(srv)
        assert tagged(raw(other, "s SELECT INBOX")).startswith("s OK")
        raw(other, "a UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        assert tagged(raw(other, "b EXPUNGE")).startswith("b OK")
        old = fetch.INDEX_MIN
        fetch.INDEX_MIN = 1
        try:
            out = raw(watcher, "f FETCH 1:* (UID RFC822.SIZE)")
        finally:
            fetch.INDEX_MIN = old
        assert tagged(out).startswith("f OK [EXPUNGEISSUED]"), out[-200:]
        assert b"(UID 2 " not in out and b"(UID 3 " in out
