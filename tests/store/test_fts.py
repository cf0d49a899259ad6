"""The SQLite store's full-text index (store/sqlite/fts.py): its answers
equal what reading and decoding the messages gives, in every state a text
row can be in, and the rows live and die with their contents.

The reference ("the scan") is what `mailbag.session.imap.searching` does
without an index (RFC 9051 §6.4.4: case-insensitive substring of the decoded
text): `needle.casefold() in text.casefold()` over `body_text` (BODY),
`message_text` (TEXT) and the decoded values of the top-level field as the
header pass reads them (FROM/TO/CC/BCC/SUBJECT, only messages that have it).
"""

from __future__ import annotations

import asyncio
import base64
import quopri
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest
import sqlite_support

from mailbag.errors import Cannot
from mailbag.message import body_text, compute_facts, message_text
from mailbag.message.search import decoded_headers
from mailbag.store.models import INBOX, UID, AppendRequest, FlagOp, Mailbox, MessageFacts
from mailbag.store.sqlite import fts
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.store.sqlite.schema import SCHEMA_VERSION

T = TypeVar("T")
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FIELDS = ("BODY", "TEXT", "FROM", "TO", "CC", "BCC", "SUBJECT")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return sqlite_support.run(fn, timeout=120)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def b64(text: str, charset: str = "utf-8") -> str:
    return base64.encodebytes(text.encode(charset)).decode()


def qp(text: str, charset: str) -> str:
    return quopri.encodestring(text.encode(charset)).decode()


def made_messages() -> list[bytes]:
    """Messages built for the index: non-ASCII text, encoded words, every
    transfer encoding, multipart and encapsulated messages, odd characters."""
    unicode_body = (
        "Café crème, Straße und MASSE; naïve façade. ΣΊΣΥΦΟΣ σοφός.\n"
        "日本語のテキスト、漢字とかな。中文测试。한국어 텍스트.\n"
        "Emoji: 😀🎉 and ❤️ here; İstanbul, ǅemal, ﬁnance, Ꭰꭰ, Ა ა.\n"
    )
    return [
        crlf(
            "From: Alice Example <alice@example.org>\nTo: Bob <bob@example.com>\n"
            'Cc: "Dave, Jr." <dave@example.net>\nSubject: Lunch on Friday?\n'
            "Date: Mon, 2 Sep 2024 10:00:00 +0200\n\n"
            'Hi Bob,\nare we still on for Friday? Quote "this" and {that}.\n'
        ),
        crlf(
            "From: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\n"
            "To: alice@example.org\nTo: second-to@example.org\nBcc: secret@example.net\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
        )
        + crlf(qp("Café au lait, s'il vous plaît. Größe: ÄÖÜ äöü ß.\n" * 3, "latin-1")),
        crlf(
            "From: carol@example.com\nTo: bob@example.com\nCc:\n"
            "Subject: =?utf-8?b?5pel5pys6Kqe44Gu5Lu25ZCN8J+YgA==?=\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: base64\n\n" + b64(unicode_body)
        ),
        crlf(
            "From: dave@example.net\nTo: team@example.org\nSubject: Report\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="outer"\n\n'
            "preamble is not searched\n"
            "--outer\n"
            'Content-Type: multipart/alternative; boundary="inner"\n\n'
            "--inner\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            + qp("Quarterly numbers: revenue grew 12%. Überraschung!\n", "utf-8")
            + "--inner\nContent-Type: text/html; charset=utf-8\n"
            "Content-Transfer-Encoding: base64\n\n"
            + b64("<p>Quarterly <b>numbers</b> — ça va</p>\n")
            + "--inner--\n"
            "--outer\nContent-Type: application/octet-stream\n"
            "Content-Transfer-Encoding: base64\n\n"
            + b64("binaryattachmentsecret")
            + "--outer\nContent-Type: message/rfc822\n\n"
            "From: inner-sender@example.org\nSubject: =?utf-8?q?Inner_=C3=A9t=C3=A9?=\n\n"
            "The encapsulated body talks about zebras.\n"
            "--outer--\nepilogue is not searched\n"
        ),
        crlf("From: erin@example.org\nSubject: " + "文字化け" * 3 + "\n\n")
        + "8bit body: Ünïcödé 雪 ⛄ Ωmega\r\n".encode()
        + b"raw latin-1 \xe9t\xe9 and NUL \x00 byte\r\n",
        crlf(
            "From: frank@example.org\nTo: x@example.org\nSubject: plain\n\n"
            + unicode_body.upper()
            + "line\nbreaks\nand  double  spaces\ttabs\n"
        ),
    ]


def corpus_messages() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.glob("*.eml")):
        data = path.read_bytes()
        if b"\n" in data and b"\r\n" not in data:
            data = data.replace(b"\n", b"\r\n")
        out.append(data)
    return out


# ---- the scan, as searching.py does it -------------------------------------
def field_values(data: bytes, name: str) -> list[str]:
    header = data[: compute_facts(data).header_size]
    return [v for n, v in decoded_headers(header) if n == name]


def reference(messages: dict[UID, bytes]) -> Callable[[str, str], set[UID]]:
    bodies = {u: body_text(d).casefold() for u, d in messages.items()}
    texts = {u: message_text(d).casefold() for u, d in messages.items()}
    values = {
        f: {u: [v.casefold() for v in field_values(d, f.lower())] for u, d in messages.items()}
        for f in FIELDS[2:]
    }

    def answer(field: str, needle: str) -> set[UID]:
        n = needle.casefold()
        if field == "BODY":
            return {u for u, t in bodies.items() if n in t}
        if field == "TEXT":
            return {u for u, t in texts.items() if n in t}
        return {u for u, vs in values[field].items() if vs and any(n in v for v in vs)}

    return answer


def needles(messages: Iterable[bytes], seed: int = 1, per_message: int = 4) -> list[str]:
    """Substrings of every length 1..10 of words in the messages' decoded
    headers and bodies (as written, upper-cased and case-folded), windows
    across spaces and line ends, and strings found nowhere."""
    rnd = random.Random(seed)
    out: set[str] = {"", "zzzq-nowhere", "ü", "ss", "SS", "ß", "ﬁ", "fi", "😀", "日本", '"', '""x'}
    # Where Python's full case folding and FTS5's simple folding differ.
    out |= {"STRASSE", "straße", "MASSE", "İSTANBUL", "i̇stanbul", "FINANCE", "ﬁnance", "ǆemal"}
    out |= {"ᲐᲑ", "ა ა", "ꭰꭰ", "ᎠᎠ", "σίσυφος", "ΣΊΣΥΦΟΣ", "😀🎉 and", "日本語のテ", "❤️ h"}
    for data in messages:
        text = message_text(data)
        words = sorted({w for w in text.split() if w})
        for word in rnd.sample(words, min(per_message, len(words))):
            for length in range(1, min(len(word), 10) + 1):
                start = rnd.randrange(0, len(word) - length + 1)
                piece = word[start : start + length]
                out.update((piece, piece.upper(), piece.casefold()))
        for _ in range(per_message // 2):
            if len(text) > 2:
                start = rnd.randrange(0, len(text) - 1)
                out.add(text[start : start + rnd.randint(2, 14)])
    return sorted(out)


# ---- store helpers ----------------------------------------------------------
async def opened(path: Path, **kw: bool) -> SQLiteStore:
    store = SQLiteStore(path, **kw)
    await store.open()
    return store


async def inbox(store: SQLiteStore, address: str = "alice@example.org") -> Mailbox:
    acct = await store.get_account(address) or await store.create_account(address, "h")
    box = await store.get_mailbox(acct.id, INBOX)
    assert box is not None
    return box


async def deliver(store: SQLiteStore, box: Mailbox, datas: Iterable[bytes]) -> dict[UID, bytes]:
    out = {}
    for data in datas:
        result = await store.append(box.id, [AppendRequest(data)])
        out[result.uids[0]] = data
    return out


def db(store: SQLiteStore) -> sqlite3.Connection:
    return sqlite3.connect(store.db_path)


def states(store: SQLiteStore) -> dict[int, int]:
    """content id -> state of its text row."""
    with db(store) as conn:
        rows = conn.execute(
            "SELECT content_id, state FROM content_text WHERE content_id IS NOT NULL"
        ).fetchall()
    return dict(rows)


def drain(store: SQLiteStore) -> None:
    assert store.drain_text_index(60)


async def compare(
    store: SQLiteStore, box: Mailbox, messages: dict[UID, bytes], words: list[str]
) -> int:
    """Every needle in every field: the index's answer equals the scan's.
    Returns how many answers the index gave (None answers are skipped)."""
    truth = reference(messages)
    answered = 0
    for needle in words:
        for field in FIELDS:
            got = await store.search_text(box.id, field, needle)
            if got is None:
                continue
            answered += 1
            want = truth(field, needle)
            assert not got.unindexed, (field, needle)
            assert set(got.uids) == want, (field, needle, sorted(got.uids), sorted(want))
    return answered


# ---- tests ------------------------------------------------------------------
def test_pieces_follow_message_text_on_the_corpus() -> None:
    """RFC 9051 §6.4.4: the index keeps exactly the text SEARCH looks in; the
    text columns are `body_text` and the header lines of `message_text`."""
    for data in corpus_messages() + made_messages():
        facts = compute_facts(data)
        top = decoded_headers(data[: facts.header_size])
        parts = fts.pieces(data, facts.parts, top)
        assert "".join(t for _, t in parts) == message_text(data, facts)
        assert "".join(t for h, t in parts if not h) == body_text(data, facts)
        texts = fts.extract(data)
        assert texts.state == fts.PENDING
        body, headers, *fields = texts.columns
        assert body == fts.fold(body_text(data))
        assert headers == fts.fold("".join(t for h, t in parts if h))
        for column, name in zip(fields, ("from", "to", "cc", "bcc", "subject"), strict=True):
            assert column == fts.fold("".join(v + "\n" for v in field_values(data, name)))


def test_fold_keeps_what_sqlite_cannot() -> None:
    """NUL and lone surrogates become U+FFFD in stored text; needles holding
    them (or U+FFFD..U+FFFF) are left to the scan; so is a line break in a
    TEXT or header-field needle; BODY takes one."""
    assert fts.fold("A\x00B\udce9Ç") == "a\ufffdb\ufffdç"
    assert fts.fold("Straße İ ﬁ") == "strasse i̇ fi"
    for needle in ("a\x00b", "x\ufffd", "\ufffe", "\uffff", "\udce9"):
        assert fts.plan(1, "BODY", needle, None) is None
    assert fts.plan(1, "TEXT", "a\nb", None) is None
    assert fts.plan(1, "FROM", "a\nb", None) is None
    assert fts.plan(1, "BODY", "a\r\nb", None) is not None
    assert fts.plan(1, "HEADER", "abc", None) is None
    p3 = fts.plan(1, "TEXT", 'say "hi"', None)
    assert p3 is not None and p3.uses_fts and '{headers body} : "say ""hi"""' in p3.params
    p2 = fts.plan(1, "TEXT", "ß", None)  # folds to "ss": two characters, instr()
    assert p2 is not None and not p2.uses_fts


def test_answers_equal_the_scan_in_every_state(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4: substrings of every length, non-ASCII text (é, ß,
    CJK, emoji), RFC 2047 words, base64/QP bodies, multipart: the same
    messages whether the text is only stored (instr), in the trigram index
    (MATCH), or half and half."""
    made = made_messages()
    corpus = corpus_messages()
    words = needles(made + corpus)

    async def go() -> None:
        # 1. stored text only: every answer comes from instr()
        store = await opened(tmp_path / "a", fts_worker=False)
        try:
            box = await inbox(store)
            msgs = await deliver(store, box, made + corpus)
            assert set(states(store).values()) == {fts.PENDING}
            assert await compare(store, box, msgs, words) > len(words) * 5
        finally:
            await store.close()
        # 2. everything in the trigram index: MATCH for 3+ characters
        store = await opened(tmp_path / "a")
        try:
            box = await inbox(store)
            await asyncio.to_thread(drain, store)
            assert set(states(store).values()) == {fts.INDEXED}
            await compare(store, box, msgs, words)
        finally:
            await store.close()
        # 3. half indexed, half pending
        store = await opened(tmp_path / "b")
        try:
            box = await inbox(store)
            mixed = await deliver(store, box, made[::2] + corpus[::2])
            await asyncio.to_thread(drain, store)
        finally:
            await store.close()
        store = await opened(tmp_path / "b", fts_worker=False)
        try:
            box = await inbox(store)
            mixed |= await deliver(store, box, made[1::2] + corpus[1::2])
            assert set(states(store).values()) == {fts.PENDING, fts.INDEXED}
            await compare(store, box, mixed, words[::3])
        finally:
            await store.close()

    run(go)


def test_text_row_commits_with_the_content(tmp_path: Path) -> None:
    """DESIGN.md §2.1/§3: the text row is written in the delivery's own
    transaction (it exists when append returns, even with no background
    worker), a failed delivery leaves neither, equal content shares one row,
    and deleting the last reference removes it."""

    async def go() -> None:
        store = await opened(tmp_path, fts_worker=False)
        try:
            box = await inbox(store)
            data = made_messages()[0]
            uid = (await store.append(box.id, [AppendRequest(data)])).uids[0]
            with db(store) as conn:
                (cid,) = conn.execute("SELECT id FROM contents").fetchone()
                row = conn.execute(
                    "SELECT state, body FROM content_text WHERE content_id = ?", (cid,)
                ).fetchone()
            assert row == (fts.PENDING, fts.fold(body_text(data)))
            # The same bytes again (another recipient): no second text row.
            uid2 = (await store.append(box.id, [AppendRequest(data)])).uids[0]
            with db(store) as conn:
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (1,)
            # A unit that fails after inserting the content and text rows
            # (UID space exhausted: checked after the contents are stored)
            # rolls both back.
            full = await store.create_mailbox(box.account_id, "Full")
            with db(store) as conn:
                conn.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (2**32 - 1, full.id))
            with pytest.raises(Cannot):
                await store.append(full.id, [AppendRequest(made_messages()[1])])
            with db(store) as conn:
                assert conn.execute("SELECT count(*) FROM contents").fetchone() == (1,)
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (1,)
            await store.expunge(box.id, [uid], require_deleted=False)
            assert states(store) == {cid: fts.PENDING}  # still referenced by uid2
            await store.expunge(box.id, [uid2], require_deleted=False)
            with db(store) as conn:
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (0,)
        finally:
            await store.close()

    run(go)


def test_index_follows_expunge_copy_move_and_flags(tmp_path: Path) -> None:
    """RFC 9051 §6.4.4 with §6.4.3 EXPUNGE, §6.4.7 COPY, RFC 6851 MOVE,
    §6.4.6 STORE: answers stay those of the scan; deleted contents leave the
    trigram index once the worker ran (FTS5 integrity-check passes)."""
    made = made_messages()
    words = ["zebras", "quarterly", "café", "ß", "日本語", "😀", "bob", "lunch", "ss", "köln"]

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            box = await inbox(store)
            other = await store.create_mailbox(box.account_id, "Other")
            msgs = await deliver(store, box, made)
            await asyncio.to_thread(drain, store)
            await compare(store, box, msgs, words)

            copied = await store.copy(box.id, list(msgs)[:3], other.id)
            copies = dict(zip(copied.dest_uids, [msgs[u] for u in copied.source_uids], strict=True))
            await compare(store, other, copies, words)
            with db(store) as conn:
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (len(made),)

            await store.store_flags(box.id, list(msgs), FlagOp.ADD, ["\\Deleted", "$Seen"])
            await compare(store, box, msgs, words)

            gone = list(msgs)[1::2]
            await store.expunge(box.id, gone)
            for uid in gone:
                del msgs[uid]
            await compare(store, box, msgs, words)

            moved = await store.move(box.id, list(msgs)[:1], other.id)
            copies[moved.dest_uids[0]] = msgs.pop(moved.source_uids[0])
            await compare(store, box, msgs, words)
            await compare(store, other, copies, words)

            # Contents referenced by nothing: detached now, out of FTS later.
            await store.expunge(other.id, None, require_deleted=False)
            await store.expunge(box.id, None, require_deleted=False)
            with db(store) as conn:
                live = conn.execute(
                    "SELECT count(*) FROM content_text WHERE content_id IS NOT NULL"
                ).fetchone()
            assert live == (0,)
            await asyncio.to_thread(drain, store)
            with db(store) as conn:
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (0,)
                conn.execute("INSERT INTO content_fts (content_fts) VALUES ('integrity-check')")
                assert conn.execute(
                    "SELECT count(*) FROM content_fts WHERE content_fts MATCH '\"zebras\"'"
                ).fetchone() == (0,)
        finally:
            await store.close()

    run(go)


def test_unindexed_messages_are_left_to_the_scan(tmp_path: Path) -> None:
    """A message with more text than the index keeps, and messages stored
    without text, come back as unindexed (the caller reads them); the
    others are still answered."""
    big = crlf("From: big@example.org\nSubject: big\n\n") + b"needle in hay " * (
        fts.MAX_CHARS // 14 + 10
    )
    small = made_messages()[0]

    async def go() -> None:
        store = await opened(tmp_path, fts_worker=False)
        try:
            box = await inbox(store)
            msgs = await deliver(store, box, [small, big])
            got = await store.search_text(box.id, "BODY", "needle")
            assert got is not None
            assert got.uids == frozenset() and got.unindexed == frozenset({UID(2)})
            got = await store.search_text(box.id, "BODY", "friday", [UID(1)])
            assert got is not None and got.uids == {UID(1)} and not got.unindexed
            assert fts.UNINDEXED in states(store).values()
            assert len(msgs) == 2
        finally:
            await store.close()

    run(go)


def test_indexer_waits_while_mail_arrives_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While deliveries keep the writer busy and little text waits, the
    worker leaves it pending (searched with instr(), same answers); a drain
    request, or a backlog over BUSY_BACKLOG_CHARS, makes it index anyway."""
    messages = made_messages()
    words = ["zebras", "straße", "caf"]

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            box = await inbox(store)
            await asyncio.to_thread(drain, store)  # the worker's first round is over
            writer = store._w()
            msgs = await deliver(store, box, messages[:3])
            # Deliveries "keep arriving" for the next hour.
            monkeypatch.setattr(writer, "foreground_at", time.monotonic() + 3600)
            store._kick()
            await asyncio.sleep(0.3)
            assert set(states(store).values()) == {fts.PENDING}
            await compare(store, box, msgs, words)  # answered from the stored text
            # Asked to finish: it indexes although mail is arriving.
            await asyncio.to_thread(drain, store)
            assert set(states(store).values()) == {fts.INDEXED}
            # A backlog over the bound is indexed while mail is arriving.
            monkeypatch.setattr(fts, "BUSY_BACKLOG_CHARS", 1)
            more = await deliver(store, box, messages[3:5])
            monkeypatch.setattr(writer, "foreground_at", time.monotonic() + 3600)
            store._kick()
            for _ in range(200):
                if set(states(store).values()) == {fts.INDEXED}:
                    break
                await asyncio.sleep(0.05)
            assert set(states(store).values()) == {fts.INDEXED}
            await compare(store, box, {**msgs, **more}, words)
        finally:
            await store.close()

    run(go)


def test_migration_builds_the_index_for_existing_messages(tmp_path: Path) -> None:
    """A version 1 database (no text) is brought to version 2 at open; until
    the background worker reached a content it is unindexed (scanned), then
    answered by the index, identical to the scan."""
    made = made_messages()
    words = ["zebras", "café", "ß", "日本語", "😀", "lunch", "ss", "köln", "e"]

    async def go() -> None:
        store = await opened(tmp_path, full_text=False)
        try:
            box = await inbox(store)
            msgs = await deliver(store, box, made)
            assert await store.search_text(box.id, "BODY", "café") is None
        finally:
            await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (0,)
            # Back to what version 1 had.
            conn.executescript(
                "DROP TRIGGER contents_headers_gone; DROP TABLE content_headers;"
                " ALTER TABLE contents DROP COLUMN imap_envelope;"
                " ALTER TABLE contents DROP COLUMN imap_body;"
                " ALTER TABLE contents DROP COLUMN imap_bodystructure;"
                " DROP TRIGGER contents_text_gone; DROP TABLE content_fts;"
                " DROP TABLE content_text; DELETE FROM meta WHERE key = 'text_backfill';"
                " UPDATE schema_version SET version = 1;"
            )
        store = await opened(tmp_path, fts_worker=False)
        try:
            box = await inbox(store)
            got = await store.search_text(box.id, "TEXT", "zebras")
            assert got is not None and got.uids == frozenset()
            assert got.unindexed == frozenset(msgs)
        finally:
            await store.close()
        store = await opened(tmp_path)
        try:
            box = await inbox(store)
            await asyncio.to_thread(drain, store)
            assert len(states(store)) == len(made)
            await compare(store, box, msgs, words)
            with db(store) as conn:
                assert conn.execute(
                    "SELECT value FROM meta WHERE key = 'text_backfill'"
                ).fetchone() == (1,)
                assert conn.execute("SELECT version FROM schema_version").fetchone() == (
                    SCHEMA_VERSION,
                )
        finally:
            await store.close()

    run(go)


def test_caller_facts_do_not_shape_the_text(tmp_path: Path) -> None:
    """Facts given with a request are not checked against the bytes, so the
    text is extracted from the bytes alone."""
    data = made_messages()[3]
    wrong = MessageFacts(header_size=5, parts=[0, 5, 10, 0, "text/plain", "", "", 5, []])

    async def go() -> None:
        store = await opened(tmp_path, fts_worker=False)
        try:
            box = await inbox(store)
            await store.append(box.id, [AppendRequest(data, facts=wrong)])
            got = await store.search_text(box.id, "BODY", "zebras")
            assert got is not None and got.uids == {UID(1)}
            got = await store.search_text(box.id, "SUBJECT", "report")
            assert got is not None and got.uids == {UID(1)}
        finally:
            await store.close()

    run(go)


def test_deferred_parse_gives_what_parsing_at_delivery_gives(tmp_path: Path) -> None:
    """defer_parse (how a server opens the store): append stores the bytes
    only. Until the worker has parsed them, get_facts parses on demand (the
    same facts), no FETCH forms are served and text keys send every message
    to the scan; after it, facts, forms and index answers are those of a
    store that parsed at delivery."""
    made = made_messages()
    corpus = corpus_messages()
    words = needles(made + corpus)[::2]

    async def go() -> None:
        store = await opened(tmp_path, defer_parse=True)
        try:
            # No worker: the contents stay as delivery stored them.
            assert store._indexer is not None
            store._indexer.stop()
            box = await inbox(store)
            msgs = await deliver(store, box, made + corpus)
            with db(store) as conn:
                assert conn.execute(
                    "SELECT count(*) FROM contents WHERE facts != ''"
                ).fetchone() == (0,)
                assert conn.execute("SELECT count(*) FROM content_text").fetchone() == (0,)
            listed = await store.list_messages(box.id, sorted(msgs))
            cids = {m.uid: m.content_id for m in listed}
            assert await store.get_forms(cids.values()) == {}
            for uid, data in msgs.items():
                assert await store.get_facts(cids[uid]) == compute_facts(data)
            for field in ("FROM", "SUBJECT", "BODY", "TEXT"):
                got = await store.search_text(box.id, field, "e")
                assert got is not None and set(got.unindexed) == set(msgs), field
        finally:
            await store.close()
        store = await opened(tmp_path, defer_parse=True)
        try:
            box = await inbox(store)
            await asyncio.to_thread(drain, store)
            assert store._indexer is not None and store._indexer.parsed == len(msgs)
            with db(store) as conn:
                assert conn.execute(
                    "SELECT count(*) FROM contents WHERE facts = ''"
                ).fetchone() == (0,)
            forms = await store.get_forms(cids.values())
            for uid, data in msgs.items():
                facts = compute_facts(data)
                assert forms.get(cids[uid]) == facts.forms
                stored = await store.get_facts(cids[uid])
                assert stored == facts
            assert set(states(store).values()) == {fts.INDEXED}
            assert await compare(store, box, msgs, words) > len(words) * 3
        finally:
            await store.close()

    run(go)


def test_version_5_database_gets_the_unparsed_index(tmp_path: Path) -> None:
    """Version 6 adds contents_unparsed; a version 5 database is migrated on open."""

    async def go() -> None:
        store = await opened(tmp_path)
        await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            conn.executescript(
                "DROP INDEX contents_unparsed; UPDATE schema_version SET version = 5;"
            )
        store = await opened(tmp_path, defer_parse=True)
        try:
            box = await inbox(store)
            await deliver(store, box, made_messages()[:3])
            await asyncio.to_thread(drain, store)
        finally:
            await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchone() == (
                SCHEMA_VERSION,
            )
            assert conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'contents_unparsed'"
            ).fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM contents WHERE facts = ''").fetchone() == (0,)

    run(go)
