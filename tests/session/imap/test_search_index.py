"""SEARCH answered by the SQLite store's full-text index gives what reading
every message gives (RFC 9051 §6.4.4, RFC 3501 §6.4.4: BODY, TEXT, FROM,
TO, CC, BCC, SUBJECT are case-insensitive substring matches of the decoded
text), before and after EXPUNGE, COPY, MOVE and STORE.

Two levels: the evaluator run both ways on one store (`use_index`), and
IMAP SEARCH over real sockets on a SQLite server compared, command by
command, with a MemoryStore server (no index: it reads every message)
holding the same messages.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import quopri
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fetch_search_support import CORPUS, corpus, raw, tagged
from imap_support import add_messages, add_user, connect

from mailbag.proto.imap.search import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    NewKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    StringKey,
    UIDKey,
)
from mailbag.proto.imap.seqset import SeqSet
from mailbag.session.imap.searching import SearchEvaluator
from mailbag.session.imap.selected import SelectedMailbox
from mailbag.store.memory.backend import MemoryStore
from mailbag.store.models import INBOX, AppendRequest, FlagOp, Mailbox
from mailbag.store.sqlite import fts
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.testing.server import ServerThread

FIELDS = ("BODY", "TEXT", "FROM", "TO", "CC", "BCC", "SUBJECT")
_ONLY_IMAP: dict[str, int | None] = dict.fromkeys(("smtp", "lmtp", "pop3", "pop3s", "imaps"))


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _b64(text: str) -> str:
    return base64.encodebytes(text.encode()).decode()


def _qp(text: str, charset: str) -> str:
    return quopri.encodestring(text.encode(charset)).decode()


MADE = [
    _crlf(
        "From: Alice Example <alice@example.org>\nTo: Bob <bob@example.com>\n"
        'Cc: "Dave, Jr." <dave@example.net>\nSubject: Lunch on Friday?\n\n'
        "Hi Bob,\nare we still on for Friday?\n"
    ),
    _crlf(
        "From: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\n"
        "To: alice@example.org\nTo: second@example.org\nBcc: secret@example.net\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
    )
    + _crlf(_qp("Café au lait, s'il vous plaît. Größe: ÄÖÜ äöü STRASSE.\n", "latin-1")),
    _crlf(
        "From: carol@example.com\nTo: bob@example.com\nCc:\n"
        "Subject: =?utf-8?b?5pel5pys6Kqe44Gu5Lu25ZCN8J+YgA==?=\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        + _b64("Straße, 日本語のテキスト, 中文, 😀🎉, İstanbul, ﬁnance, Ꭰꭰ, ΣΊΣΥΦΟΣ.\n")
    ),
    _crlf(
        "From: dave@example.net\nTo: team@example.org\nSubject: Report\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "preamble\n--b\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        + _qp("Quarterly numbers: Überraschung!\n", "utf-8")
        + "--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        + _b64("attachmentsecret")
        + "--b\nContent-Type: message/rfc822\n\n"
        "From: inner@example.org\nSubject: =?utf-8?q?Inner_=C3=A9t=C3=A9?=\n\n"
        "The encapsulated body talks about zebras.\n--b--\n"
    ),
]


def all_messages() -> list[bytes]:
    return MADE + [corpus(p.stem) for p in sorted(CORPUS.glob("*.eml"))]


def needles(seed: int, count: int) -> list[str]:
    """Words of the messages cut to every length from 1, in several cases,
    plus strings that are nowhere and ones that fold differently in FTS5."""
    from mailbag.message import message_text

    rnd = random.Random(seed)
    words = sorted({w for data in MADE for w in message_text(data).split()})
    out = {"", "ss", "ß", "STRASSE", "fi", "ﬁ", "i̇stanbul", "ꭰ", "😀", "日本", "nowhere-xyz"}
    for word in rnd.sample(words, min(count, len(words))):
        length = rnd.randint(1, min(len(word), 9))
        start = rnd.randrange(0, len(word) - length + 1)
        piece = word[start : start + length]
        out.update((piece, piece.upper()))
    return sorted(out)


# ---- the evaluator, both ways -----------------------------------------------
async def both_ways(store: SQLiteStore, box: Mailbox, keys: list[SearchKey]) -> int:
    """Each key evaluated with the index and by reading every message:
    the same (sequence number, UID) list. Returns how many keys used it."""
    account = box.account_id
    mailbox = await store.get_mailbox_by_id(box.id)
    assert mailbox is not None
    uids = [m.uid for m in await store.list_messages(box.id)]
    used = 0
    for key in keys:
        results = []
        # The index through whole-key sets, through the passes, then no index.
        for use_index, use_sets in ((True, True), (True, False), (False, False)):
            view = SelectedMailbox(mailbox, uids, True, store.changes.subscribe(account))
            before = store.text_searches
            ev = SearchEvaluator(
                store, view, [], False, use_index=use_index, index_min=1, use_sets=use_sets
            )
            results.append(await ev.run(key))
            if use_index and not use_sets:
                used += store.text_searches > before
            elif not use_index:
                assert store.text_searches == before
        assert results[0] == results[2], key
        assert results[1] == results[2], key
    return used


def keys_for(words: list[str]) -> list[SearchKey]:
    keys: list[SearchKey] = [StringKey(f, w) for w in words for f in FIELDS]  # type: ignore[arg-type]
    keys += [
        AndKey((StringKey("BODY", "zebras"), StringKey("FROM", "dave"))),
        OrKey(StringKey("SUBJECT", "köln"), StringKey("TEXT", "ss")),
        NotKey(StringKey("TEXT", "example")),
        NotKey(StringKey("CC", "")),
        AndKey((FlagKey("\\Seen"), StringKey("BODY", "e"))),
        AndKey((UIDKey(SeqSet.parse(b"2:4")), StringKey("TEXT", "ü"))),
        AndKey((StringKey("TEXT", "friday"), HeaderKey("Subject", "lunch"))),
        OrKey(NotKey(StringKey("BODY", "a\r\nb")), StringKey("TEXT", "bob,\r\nare")),
    ]
    return keys


def test_evaluator_with_and_without_index(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4: every string key alone and in AND/OR/NOT gives the
    same messages with the index as by reading them: with text only stored
    (instr), with the trigram index built, and after STORE, COPY, EXPUNGE
    and MOVE (the index is per content; rows come and go with messages)."""
    keys = keys_for(needles(3, 7))

    async def go() -> None:
        store = SQLiteStore(tmp_path, fts_worker=False)
        await store.open()
        try:
            acct = await store.create_account("alice@example.org", "h")
            box = await store.get_mailbox(acct.id, INBOX)
            assert box is not None
            await store.append(box.id, [AppendRequest(d) for d in all_messages()])
            assert await both_ways(store, box, keys) > len(keys) // 2
        finally:
            await store.close()
        store = SQLiteStore(tmp_path)
        await store.open()
        try:
            box = await store.get_mailbox(acct.id, INBOX)
            assert box is not None
            assert await asyncio.to_thread(store.drain_text_index, 60)
            assert await both_ways(store, box, keys) > len(keys) // 2
            other = await store.create_mailbox(acct.id, "Other")
            uids = [m.uid for m in await store.list_messages(box.id)]
            await store.store_flags(box.id, uids[::2], FlagOp.ADD, ["\\Seen", "\\Deleted"])
            await store.copy(box.id, uids[:10], other.id)
            await store.expunge(box.id)
            await store.move(box.id, uids[1:6:2], other.id)
            for mailbox in (box, other):
                await both_ways(store, mailbox, keys[::4])
            assert await asyncio.to_thread(store.drain_text_index, 60)
            for mailbox in (box, other):
                await both_ways(store, mailbox, keys[::4])
        finally:
            await store.close()

    asyncio.run(go())


def test_unindexed_messages_are_read(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4: messages the index has no text for (more text than it
    keeps; stored before the index existed) are decided by reading them,
    the others by the index, in one search."""
    big = _crlf("From: big@example.org\nSubject: big one\n\n") + b"needle in the hay " * (
        fts.MAX_CHARS // 18 + 10
    )

    async def go() -> None:
        store = SQLiteStore(tmp_path, full_text=False)
        await store.open()
        acct = await store.create_account("alice@example.org", "h")
        box = await store.get_mailbox(acct.id, INBOX)
        assert box is not None
        await store.append(box.id, [AppendRequest(d) for d in MADE])  # no text rows
        await store.close()
        store = SQLiteStore(tmp_path, fts_worker=False)  # no backfill either
        await store.open()
        try:
            await store.append(box.id, [AppendRequest(big)])
            await store.append(box.id, [AppendRequest(d) for d in all_messages()[4:]])
            found = await store.search_text(box.id, "BODY", "needle")
            assert found is not None and len(found.unindexed) == len(MADE) + 1
            keys: list[SearchKey] = [
                StringKey("BODY", "needle in"),
                StringKey("TEXT", "zebras"),
                StringKey("FROM", "jörg"),
                OrKey(StringKey("SUBJECT", "big"), StringKey("BODY", "friday")),
                NotKey(StringKey("TEXT", "hay")),
            ]
            assert await both_ways(store, box, keys) == len(keys)
        finally:
            await store.close()

    asyncio.run(go())


# ---- over sockets: SQLite server against MemoryStore server ------------------
@contextmanager
def servers(tmp_path: Path) -> Iterator[tuple[ServerThread, ServerThread, SQLiteStore]]:
    store = SQLiteStore(tmp_path / "sqlite-store")
    indexed = ServerThread(tmp_path / "sqlite", store=store, ports=_ONLY_IMAP)
    scanned = ServerThread(tmp_path / "memory", store=MemoryStore(), ports=_ONLY_IMAP)
    with indexed, scanned:
        for srv in (indexed, scanned):
            add_user(srv, "alice")
            add_messages(srv, "alice", "INBOX", all_messages())
            add_messages(srv, "alice", "Other", [])
        yield indexed, scanned, store


def _search(client: object, tag: str, command: str, needle: str | None = None) -> bytes:
    line = f"{tag} {command}".encode()
    if needle is not None:
        data = needle.encode()
        line += b" {%d+}\r\n%s" % (len(data), data)
    out = raw(client, line)
    assert tagged(out).startswith(f"{tag} OK"), out
    return out


def test_search_over_imap_equals_memory_store(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4 / RFC 3501 §6.4.4 over real sockets: every SEARCH and
    UID SEARCH (IMAP4rev1 SEARCH, IMAP4rev2 ESEARCH) answers the same on the
    indexed SQLite server as on a server that reads every message, before
    and after COPY, STORE, EXPUNGE and MOVE (RFC 9051 §6.4.7, §6.4.6,
    §6.4.3, RFC 6851), while the index is still being built and after."""
    words = needles(5, 25)
    with servers(tmp_path) as (indexed, scanned, store):
        c_idx, c_scan = connect(indexed), connect(scanned)
        c2_idx, c2_scan = connect(indexed, rev2=True), connect(scanned, rev2=True)

        def same(command: str, needle: str | None = None, rev2: bool = False) -> None:
            a, b = (c2_idx, c2_scan) if rev2 else (c_idx, c_scan)
            assert _search(a, "s", command, needle) == _search(b, "s", command, needle), (
                command,
                needle,
            )

        def round_of_searches(mailbox: str) -> None:
            for c in (c_idx, c_scan, c2_idx, c2_scan):
                raw(c, f"x SELECT {mailbox}")
            for word in words:
                for field in FIELDS:
                    same(f"SEARCH CHARSET UTF-8 {field}", word)
            for word in words[::4]:
                same("UID SEARCH CHARSET UTF-8 TEXT", word)
                same("SEARCH RETURN (MIN MAX COUNT) CHARSET UTF-8 BODY", word, rev2=True)
            same('SEARCH OR FROM alice NOT BODY "friday"')
            same('SEARCH SUBJECT "" NOT CC ""')
            same("UID SEARCH SEEN TEXT example")
            same("SEARCH UNSEEN")
            same("UID SEARCH UNSEEN")
            same("SEARCH RETURN (ALL COUNT) UNSEEN", rev2=True)

        before = store.text_searches
        round_of_searches("INBOX")  # text rows stored, trigram index maybe not yet
        assert indexed.run(asyncio.to_thread(store.drain_text_index, 60))
        round_of_searches("INBOX")
        changes = [
            "c COPY 1:12 Other",
            "f STORE 2,5,8,11,14,17,20 +FLAGS (\\Deleted \\Seen)",
            "e EXPUNGE",
            "m MOVE 1:4 Other",
        ]
        for c in (c_idx, c_scan):
            raw(c, "x SELECT INBOX")
            for command in changes:
                assert tagged(raw(c, command)).startswith(command[:2] + "OK"), command
        round_of_searches("INBOX")
        round_of_searches("Other")
        assert store.text_searches - before > len(words) * len(FIELDS)
        for c in (c_idx, c_scan, c2_idx, c2_scan):
            c.close()


def test_text_search_beside_messages_expunged_elsewhere(tmp_path: Path) -> None:
    """RFC 9051 §7.5.1: a session that still shows messages another session
    expunged gets the same SEARCH answers on the indexed server as on one
    that reads every message (the gone messages match nothing) and OK
    [EXPUNGEISSUED] (§7.1), also for searches of text keys alone, which are
    answered without reading the mailbox's UIDs, and for UNSEEN alone,
    answered from the unseen messages only."""
    # The UID form last: its updates announce the EXPUNGEs (§7.5.1).
    commands = [
        "SEARCH BODY e",
        "SEARCH OR FROM a SUBJECT e",
        "SEARCH SUBJECT zzzz-nowhere",
        "SEARCH UNSEEN",
        "UID SEARCH TEXT e UID 1:8",
    ]
    with servers(tmp_path) as (indexed, scanned, store):
        answers = []
        for srv in (indexed, scanned):
            c, other = connect(srv), connect(srv)
            for client in (c, other):
                assert tagged(raw(client, "x SELECT INBOX")).startswith("x OK")
            assert tagged(raw(other, "f STORE 1:5 +FLAGS.SILENT (\\Deleted)")).startswith("f OK")
            assert tagged(raw(other, "e EXPUNGE")).startswith("e OK")
            before = store.text_searches
            answers.append([_search(c, "s", command) for command in commands])
            if srv is indexed:
                assert store.text_searches > before
            c.close()
            other.close()
        assert answers[0] == answers[1]
        for out in answers[0]:
            assert tagged(out).startswith("s OK [EXPUNGEISSUED]"), out
        assert answers[0][0].startswith(b"* SEARCH 6 ")  # 1-5 are gone


def test_metadata_keys_as_sets_equal_the_passes(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4 flag, keyword (any case), date (the internal date's
    own calendar day: messages just before and after midnight in zones east
    and west of UTC), size, UID and sequence keys, alone and in AND/OR/NOT,
    evaluated as sets over the store's columns equal the per-message passes,
    on both backends, also with messages expunged in the store but still in
    the session's view (RFC 9051 §7.5.1)."""
    zones = [dt.timezone(dt.timedelta(hours=h)) for h in (-11, -5, 0, 5.5, 14)]
    requests = []
    for i, data in enumerate(all_messages()):
        when = dt.datetime(2024, 3, 1 + i % 3, 23 if i % 2 else 0, 30, tzinfo=zones[i % 5])
        flags = [set(), {"\\Seen"}, {"\\Flagged", "$Work"}, {"\\Seen", "\\Deleted", "$work"}]
        requests.append(AppendRequest(data, frozenset(flags[i % 4]), when))
    keys: list[SearchKey] = []
    for day in (1, 2, 3, 4):
        for relation in ("BEFORE", "ON", "SINCE"):
            keys.append(DateKey("INTERNAL", relation, dt.date(2024, 3, day)))  # type: ignore[arg-type]
    for flag in ("\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "\\Draft", "\\Recent"):
        keys += [FlagKey(flag), FlagKey(flag, present=False)]
    keys += [FlagKey("$WORK"), FlagKey("$work", present=False), FlagKey("$none"), NewKey()]
    keys += [SizeKey(True, 500), SizeKey(False, 500), SizeKey(True, 0), AllKey()]
    keys += [
        UIDKey(SeqSet.parse(b"2:5,9,*")),
        SeqKey(SeqSet.parse(b"1,3:4,*")),
        NotKey(AndKey((FlagKey("\\Seen"), SizeKey(True, 300)))),
        OrKey(FlagKey("$work"), DateKey("INTERNAL", "ON", dt.date(2024, 3, 2))),
        AndKey((NotKey(FlagKey("\\Deleted")), StringKey("TEXT", "example"))),
        OrKey(SeqKey(SeqSet.parse(b"2")), NotKey(StringKey("FROM", "alice"))),
        AndKey(()),
    ]

    async def check(store: SQLiteStore | MemoryStore) -> None:
        await store.open()
        try:
            acct = await store.create_account("alice@example.org", "h")
            box = await store.get_mailbox(acct.id, INBOX)
            assert box is not None
            await store.append(box.id, requests)
            mailbox = await store.get_mailbox_by_id(box.id)
            assert mailbox is not None
            view_uids = [m.uid for m in await store.list_messages(box.id)]
            # Selected before another session expunges, as in a server: the
            # views' change feeds hold the expunge, not yet announced.
            views = []
            for _ in (True, False):
                sub = store.changes.subscribe(acct.id)
                views.append(
                    SelectedMailbox(mailbox, view_uids, True, sub, recent_from=view_uids[-5])
                )
            await store.expunge(box.id, view_uids[3:7], require_deleted=False)
            for key in keys:
                results = []
                for use_sets, view in zip((True, False), views, strict=True):
                    ev = SearchEvaluator(store, view, view_uids[:3], False, use_sets=use_sets)
                    results.append((await ev.run(key), ev.missing))
                assert results[0] == results[1], key
                assert results[0][1]  # the expunged messages were noticed
            for view in views:
                view.close()
        finally:
            await store.close()

    asyncio.run(check(SQLiteStore(tmp_path, fts_worker=False)))
    asyncio.run(check(MemoryStore()))
