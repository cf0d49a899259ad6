"""FETCH and UID FETCH over real sockets (RFC 9051 §6.4.5, §6.4.9, §7.5.2;
RFC 3501 §6.4.5, §7.4.2; RFC 3516 BINARY).

The hard corpus (tests/corpus/*.eml) is appended to a mailbox and fetched
item by item; the answers are compared with what Dovecot 2.3.19 sent for the
same messages (tests/corpus/dovecot-2.3.19/, recorded by
tests/unit/message/message_dovecot_oracle.py). Simple cases are checked
byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from fetch_search_support import (
    CORPUS,
    corpus,
    expunge_elsewhere,
    fetches,
    odd_facts_messages,
    raw,
    tagged,
    text,
)
from imap_support import connect, server, transcript

from mailbag.session.imap.bodydata import Base64Stream, QPStream
from mailbag.store.models import AppendRequest

NAMES = sorted(p.stem for p in CORPUS.glob("*.eml"))
EXPECTED = CORPUS / "dovecot-2.3.19"

# (message, item) -> why we answer differently from Dovecot 2.3.19 on purpose
# (the same list as tests/unit/message/test_message_dovecot_corpus.py).
DEVIATIONS: dict[tuple[str, str], str] = {
    ("message_global", "BODYSTRUCTURE"): "RFC 9051 §7.5.2 structure for message/global (rev2)",
    ("message_global", "BODY"): "same as BODYSTRUCTURE",
    ("cte_without_mime", "BINARY[1]"): "CTE ignored without MIME-Version (RFC 2045 §4)",
    ("duplicate_headers", "BINARY[1]"): "first Content-Transfer-Encoding field, as BODYSTRUCTURE",
    ("transfer_encodings", "BINARY[6]"): "invalid CTE is 7bit, as BODYSTRUCTURE",
}

SIMPLE = corpus("simple_plain")
SIMPLE_HEADER, SIMPLE_BODY = SIMPLE.split(b"\r\n\r\n", 1)
SIMPLE_HEADER += b"\r\n\r\n"
B64_SINGLE = (
    b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\naMOpbGxvIHfDtnJsZAo=\r\n"
)
WHEN = dt.datetime(2024, 9, 2, 10, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def _same(expected: Any, got: bytes) -> bool:
    if isinstance(expected, dict):  # long texts are recorded as length + SHA-256
        return bool(
            expected["length"] == len(got) and expected["sha256"] == hashlib.sha256(got).hexdigest()
        )
    return expected == text(got) or expected == text(got.replace(b"\x00", b"\x80"))


def _one(data: bytes, seq: int = 1) -> dict[str, Any]:
    assert tagged(data).split()[1] == "OK", data[-300:]
    return fetches(data)[seq]


# ---- the corpus against Dovecot's recorded answers ---------------------------------


@pytest.mark.parametrize("rev2", [False, True], ids=["rev1", "rev2"])
def test_corpus_matches_dovecot(tmp_path: Path, rev2: bool) -> None:
    """RFC 9051 §6.4.5 / §7.5.2: ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE,
    BODY[HEADER], BODY[TEXT], BODY[] and, for every part, BODY[n], BODY[n.MIME],
    BODY[n.HEADER], BODY[n.TEXT], BINARY[n] and BINARY.SIZE[n] of every corpus
    message, as Dovecot 2.3.19 answers them (IMAP4rev1 clients get message/global
    as a basic part, RFC 3501 has no structure for it)."""
    messages = [corpus(n) for n in NAMES]
    problems: list[str] = []
    with server(tmp_path, messages={"alice": {"INBOX": messages}}) as srv:
        c = connect(srv, rev2=rev2)
        assert tagged(raw(c, "s EXAMINE INBOX")).startswith("s OK")
        for seq, name in enumerate(NAMES, 1):
            expected = json.loads((EXPECTED / f"{name}.json").read_text())

            def check(item: str, want: Any, got: Any, name: str = name) -> None:
                deviant = (name, item) in DEVIATIONS and (rev2 or "BINARY" in item)
                if want != got and not deviant:
                    problems.append(
                        f"{name} {item}:\n  dovecot {want!r:.300}\n  ours    {got!r:.300}"
                    )

            items = _one(
                raw(
                    c,
                    f"f FETCH {seq} (ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE "
                    "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[])",
                ),
                seq,
            )
            for item in ("ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE"):
                check(item, expected[item], text(items[item]))
            for item in ("BODY[HEADER]", "BODY[TEXT]", "BODY[]"):
                if not _same(expected[item], items[item]):
                    check(item, expected[item], text(items[item]))
            for sec, entry in expected["sections"].items():
                wanted = [k for k in entry if k.startswith("BODY[")]
                peeks = " ".join(w.replace("BODY[", "BODY.PEEK[") for w in wanted)
                got = _one(raw(c, f"f FETCH {seq} ({peeks})"), seq)
                for item in wanted:
                    if not _same(entry[item], got[item]):
                        check(item, entry[item], text(got[item]))
                if entry["kind"] != "leaf":
                    continue
                item = f"BINARY[{sec}]"
                answer = raw(c, f"b FETCH {seq} (BINARY.PEEK[{sec}] BINARY.SIZE[{sec}])")
                status = entry.get("BINARY.status", "OK")
                if status.startswith("NO [UNKNOWN-CTE]"):
                    if not tagged(answer).startswith("b NO [UNKNOWN-CTE]"):
                        check(item, status, tagged(answer))
                    continue
                if not tagged(answer).startswith("b OK"):
                    check(item, status, tagged(answer))
                    continue
                got = fetches(answer)[seq]
                data = got[item]
                # RFC 3516 §4.3: BINARY.SIZE is the size BINARY sends
                assert got[f"BINARY.SIZE[{sec}]"] == len(data), (name, sec)
                if status.startswith("OK") and not _same(entry["BINARY"], data):
                    check(item, entry["BINARY"], text(data))
        c.close()
    assert not problems, "\n".join(problems)


# ---- simple items, byte for byte ---------------------------------------------------


def test_simple_items_exact(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5 / §7.5.2 (RFC 3501 §7.4.2): FLAGS, INTERNALDATE,
    RFC822.SIZE, UID, ENVELOPE, BODY, BODY[HEADER.FIELDS], BODY[HEADER.FIELDS.NOT],
    RFC822.HEADER, RFC822.TEXT, BODY[1], BODY[1.MIME] of a one-part message."""
    req = AppendRequest(data=SIMPLE, flags=frozenset({"\\Flagged", "$Work"}), internal_date=WHEN)
    with server(tmp_path, messages={"alice": {"INBOX": [req]}}) as srv:
        c = connect(srv)
        raw(c, "s SELECT INBOX")
        out = raw(c, "a FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)")
        assert out == (
            b'* 1 FETCH (UID 1 FLAGS (\\Flagged $Work \\Recent) INTERNALDATE "02-Sep-2024 '
            b'10:00:05 +0200" RFC822.SIZE 549)\r\na OK Fetch completed.\r\n'
        )
        out = raw(c, "b FETCH 1 ENVELOPE")
        # RFC 9051 §9: `env-to = "(" 1*address ")"`, no space between addresses
        assert out == (
            b'* 1 FETCH (ENVELOPE ("Mon, 2 Sep 2024 10:00:00 +0200" "Lunch on Friday?" '
            b'(("Alice Example" NIL "alice" "example.org")) '
            b'(("Alice Example" NIL "alice" "example.org")) '
            b'(("Alice Example" NIL "alice" "example.org")) '
            b'(("Bob" NIL "bob" "example.com")(NIL NIL "carol" "example.com")) '
            b'(("Dave, Jr." NIL "dave" "example.net")) NIL "<prev@example.com>" '
            b'"<20240902100000.1234@example.org>"))\r\nb OK Fetch completed.\r\n'
        )
        out = raw(c, "c FETCH 1 BODY")
        assert out == (
            b'* 1 FETCH (BODY ("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL '
            b'"7bit" 54 6))\r\nc OK Fetch completed.\r\n'
        )
        out = raw(c, "d FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject From)]")
        fields = b"From: Alice Example <alice@example.org>\r\nSubject: Lunch on Friday?\r\n\r\n"
        assert out == (
            b"* 1 FETCH (BODY[HEADER.FIELDS (Subject From)] {%d}\r\n%s)\r\n"
            b"d OK Fetch completed.\r\n" % (len(fields), fields)
        )
        out = raw(c, "e FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path Date To Cc)]")
        rest = (
            b"From: Alice Example <alice@example.org>\r\nSubject: Lunch on Friday?\r\n"
            b"Message-ID: <20240902100000.1234@example.org>\r\nIn-Reply-To: <prev@example.com>"
            b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed"
            b"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        )
        assert _one(out)["BODY[HEADER.FIELDS.NOT (Received Return-Path Date To Cc)]"] == rest
        # RFC 9051 §6.4.5: a header field that is not there still gives the blank line
        out = raw(c, "f FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Nothing)]")
        assert out == (
            b"* 1 FETCH (BODY[HEADER.FIELDS (X-Nothing)] {2}\r\n\r\n)\r\nf OK Fetch completed.\r\n"
        )
        out = raw(c, "g FETCH 1 (RFC822.HEADER BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[TEXT])")
        items = _one(out)
        assert items["RFC822.HEADER"] == SIMPLE_HEADER
        assert items["BODY[1]"] == SIMPLE_BODY == items["BODY[TEXT]"]
        # RFC 9051 §6.4.5: part 1 of a non-multipart message is its body; its MIME
        # header is the message header (Dovecot sends the whole header)
        assert items["BODY[1.MIME]"] == SIMPLE_HEADER
        out = raw(c, "h FETCH 1 (FLAGS)")
        assert b"\\Seen" not in out  # RFC822.HEADER and PEEK leave \Seen alone
        out = raw(c, "i FETCH 1 RFC822.TEXT")
        assert out == (
            b"* 1 FETCH (FLAGS (\\Flagged \\Seen $Work \\Recent) RFC822.TEXT {54}\r\n"
            + SIMPLE_BODY
            + b")\r\ni OK Fetch completed.\r\n"
        )
        out = raw(c, "j FETCH 1 RFC822")
        assert out == (b"* 1 FETCH (RFC822 {549}\r\n" + SIMPLE + b")\r\nj OK Fetch completed.\r\n")
        c.close()


def test_bodystructure_bytes_as_dovecot(tmp_path: Path) -> None:
    """RFC 9051 §9 `body-type-mpart = 1*body SP media-subtype`: no space
    between the parts; the whole answer is byte for byte what Dovecot 2.3.19
    sends for tests/corpus/nested_rfc822.eml."""
    dovecot = (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL "forwarded message" "7bit" 425 '
        b'("Wed, 4 Sep 2024 12:00:00 +0000" "the original" '
        b'(("Original Author" NIL "orig" "example.net")) '
        b'(("Original Author" NIL "orig" "example.net")) '
        b'(("Original Author" NIL "orig" "example.net")) ((NIL NIL "list" "example.net")) '
        b'NIL NIL NIL "<orig@example.net>") '
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 77 (NIL "innermost" '
        b'((NIL NIL "deep" "example.com")) ((NIL NIL "deep" "example.com")) '
        b'((NIL NIL "deep" "example.com")) NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 31 1 NIL NIL NIL NIL) 4 '
        b'NIL NIL NIL NIL) "mixed" ("boundary" "orig") NIL NIL NIL) 21 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "fwd") NIL NIL NIL)'
    )
    with server(tmp_path, messages={"alice": {"INBOX": [corpus("nested_rfc822")]}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        out = raw(c, "a FETCH 1 BODYSTRUCTURE")
        assert out == b"* 1 FETCH (BODYSTRUCTURE " + dovecot + b")\r\na OK Fetch completed.\r\n"
        c.close()


def test_macros_and_bad_requests(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5: ALL, FAST and FULL macros; a sequence number above
    EXISTS is BAD (RFC 9051 §9 / Dovecot); UID FETCH ignores unknown UIDs."""
    req = AppendRequest(data=SIMPLE, internal_date=WHEN)
    with server(tmp_path, messages={"alice": {"INBOX": [req, req]}}) as srv:
        c = connect(srv, rev2=True)
        raw(c, "s SELECT INBOX")
        fast = _one(raw(c, "a FETCH 1 FAST"))
        assert list(fast) == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
        assert fast["FLAGS"] == [] and fast["RFC822.SIZE"] == 549
        assert list(_one(raw(c, "b FETCH 1 ALL"))) == [
            "FLAGS",
            "INTERNALDATE",
            "RFC822.SIZE",
            "ENVELOPE",
        ]
        full = _one(raw(c, "c FETCH 2 FULL"), 2)
        assert list(full) == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]
        transcript(
            c,
            """
            C: d FETCH 3 FLAGS
            S: d BAD Error in IMAP command: Invalid messageset
            C: e UID FETCH 7:9 FLAGS
            S: e OK Fetch completed.
            C: f UID FETCH 9:* (FLAGS)
            S: * 2 FETCH (UID 2 FLAGS ())
            S: f OK Fetch completed.
            C: g FETCH 1,2 (UID FLAGS FLAGS BODY.PEEK[]<0.4> BODY[]<0.4>)
            S: * 1 FETCH (UID 1 FLAGS (\\Seen) BODY[]<0> {4}
            S: Retu)
            S: * 2 FETCH (UID 2 FLAGS (\\Seen) BODY[]<0> {4}
            S: Retu)
            S: g OK Fetch completed.
            C: h FETCH 1 MODSEQ
            S: h BAD Error in IMAP command FETCH: CONDSTORE is not supported
            """,
        )
        c.close()


def test_missing_or_odd_facts_are_recomputed(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5: nothing in a message may make FETCH fail; facts that
    are missing or do not fit the bytes are computed again from the bytes."""
    with server(tmp_path, messages={"alice": {"INBOX": odd_facts_messages()}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        out = raw(
            c,
            "a FETCH 1:3 (ENVELOPE BODYSTRUCTURE BODY.PEEK[1] BINARY.PEEK[1] "
            "BODY.PEEK[HEADER.FIELDS (Subject)] RFC822.SIZE)",
        )
        assert tagged(out) == "a OK Fetch completed."
        answers = fetches(out)
        assert answers[1]["ENVELOPE"][1] == b"Lunch on Friday?"
        assert answers[1]["BODY[1]"] == SIMPLE_BODY
        assert answers[1] == answers[2] == answers[3]
        c.close()


# ---- partial fetches ------------------------------------------------------------------


def test_partial_edges(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5: `<offset.length>` names the origin octet in the
    response (`BODY[]<0>`), is truncated at the end, and is an empty string when
    it starts beyond the end; it applies to sections and to BINARY's decoded
    data (RFC 3516 §4.2)."""
    with server(tmp_path, messages={"alice": {"INBOX": [SIMPLE, B64_SINGLE]}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        items = _one(
            raw(
                c,
                "a FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[]<540.100> BODY.PEEK[]<549.1> "
                "BODY.PEEK[]<9999.5> BODY.PEEK[TEXT]<2.3> BODY.PEEK[HEADER.FIELDS (Subject)]<9.5>"
                " BODY.PEEK[1]<53.10>)",
            )
        )
        assert items == {
            "BODY[]<0>": SIMPLE[:10],
            "BODY[]<540>": SIMPLE[540:],
            "BODY[]<549>": b"",
            "BODY[]<9999>": b"",
            "BODY[TEXT]<2>": SIMPLE_BODY[2:5],
            "BODY[HEADER.FIELDS (Subject)]<9>": b"Lunch",
            "BODY[1]<53>": b"\n",
        }
        out = raw(c, "b FETCH 1 BODY.PEEK[]<9999.5>")
        assert out == b"* 1 FETCH (BODY[]<9999> {0}\r\n)\r\nb OK Fetch completed.\r\n"
        out = raw(c, "c FETCH 2 (BINARY.PEEK[1]<1.5> BINARY.PEEK[1]<13.9> BINARY.PEEK[1]<14.1>)")
        # decoded "h\xc3\xa9llo w\xc3\xb6rld\n": offsets count decoded octets
        assert out == (
            b"* 2 FETCH (BINARY[1]<1> ~{5}\r\n\xc3\xa9llo BINARY[1]<13> ~{1}\r\n\n "
            b"BINARY[1]<14> ~{0}\r\n)\r\nc OK Fetch completed.\r\n"
        )
        c.close()


# ---- BINARY ----------------------------------------------------------------------------


def test_binary_decoding(tmp_path: Path) -> None:
    """RFC 3516 §4.2/§4.3: BINARY removes the transfer encoding; literal8 for
    decoded data or NULs, a plain literal otherwise; UNKNOWN-CTE fails the
    command; BINARY.SIZE is the decoded size; a missing part is empty."""
    te = corpus("transfer_encodings")
    with server(tmp_path, messages={"alice": {"INBOX": [te, corpus("nul_bytes")]}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        out = raw(
            c,
            "a FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[5] "
            "BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[9] BINARY.PEEK[9])",
        )
        assert out == (
            b"* 1 FETCH (BINARY[1] ~{14}\r\nh\xc3\xa9llo w\xc3\xb6rld\n BINARY[2] ~{47}\r\n"
            b"a=b softbreak, trailing space  \r\nlower = escape BINARY[3] {10}\r\n"
            b"raw\x01\x02bytes BINARY[5] {7}\r\nGr\xc3\xbc\xc3\x9fe BINARY.SIZE[1] 14 "
            b"BINARY.SIZE[2] 47 BINARY.SIZE[9] 0 BINARY[9] {0}\r\n)\r\n"
            b"a OK Fetch completed.\r\n"
        )
        assert tagged(raw(c, "b FETCH 1 BINARY.PEEK[4]")) == (
            "b NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding"
        )
        assert tagged(raw(c, "c FETCH 1 BINARY.SIZE[4]")).startswith("c NO [UNKNOWN-CTE]")
        # BINARY[] of the whole message decodes every part inside it: fails here
        assert tagged(raw(c, "d FETCH 1 BINARY.PEEK[]")).startswith("d NO [UNKNOWN-CTE]")
        out = raw(c, "e FETCH 2 (BODY.PEEK[1] BINARY.PEEK[1])")
        # RFC 9051 §4.3: a literal holds no NUL: BODY sends it as 0x80 (Dovecot);
        # RFC 3516 §4.3: BINARY keeps it in a literal8
        assert out == (
            b"* 2 FETCH (BODY[1] {17}\r\nbody with \x80 NUL\r\n BINARY[1] ~{17}\r\n"
            b"body with \x00 NUL\r\n)\r\ne OK Fetch completed.\r\n"
        )
        c.close()


def test_unknown_cte_still_reports_seen(tmp_path: Path) -> None:
    """RFC 3516 §4.3: NO [UNKNOWN-CTE] fails the FETCH; RFC 9051 §6.4.5: the
    \\Seen flags it already set are still reported (as FETCH FLAGS)."""
    te = corpus("transfer_encodings")
    with server(tmp_path, messages={"alice": {"INBOX": [SIMPLE, te]}}) as srv:
        c = connect(srv)
        raw(c, "s SELECT INBOX")
        out = raw(c, "a FETCH 1:2 BINARY[4]")
        assert out == (
            b"* 1 FETCH (FLAGS (\\Seen \\Recent) BINARY[4] {0}\r\n)\r\n"
            b"* 2 FETCH (FLAGS (\\Seen \\Recent))\r\n"
            b"a NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n"
        )
        assert tagged(raw(c, "n NOOP")) == "n OK NOOP completed."
        assert b"FETCH" not in raw(c, "n NOOP")
        c.close()


def test_binary_of_multipart_and_message(tmp_path: Path) -> None:
    """RFC 3516 §4.2, choices as Dovecot 2.3: BINARY of a multipart, of a
    message/rfc822 part and of the whole message decodes the base64 and
    quoted-printable leaves inside and relabels them "binary"; BINARY.SIZE
    matches what BINARY sends."""
    alt = corpus("alternative_in_mixed")
    with server(
        tmp_path, messages={"alice": {"INBOX": [alt, B64_SINGLE, corpus("nested_rfc822")]}}
    ) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        items = _one(raw(c, "a FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])"))
        expected = (
            b'--inner-2\r\nContent-Type: text/plain; charset="iso-8859-1"\r\n'
            b"Content-Transfer-Encoding: binary\r\n\r\n"
            b"Caf\xe9 au lait, s'il vous pla\xeet.\r\nLong line that is soft broken.\r\n"
            b'--inner-2\r\nContent-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: binary\r\n\r\n<p>Caf\xc3\xa9 au lait</p>\n\r\n"
            b"--inner-2--\r\n"
        )
        assert items == {"BINARY.SIZE[1]": len(expected), "BINARY[1]": expected}
        whole = _one(raw(c, "b FETCH 2 (BINARY.SIZE[] BINARY.PEEK[])"), 2)
        decoded = (
            b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\nh\xc3\xa9llo w\xc3\xb6rld\n"
        )
        assert whole == {"BINARY.SIZE[]": len(decoded), "BINARY[]": decoded}
        out = raw(c, "c FETCH 2 BINARY.PEEK[]")
        assert out.startswith(b"* 2 FETCH (BINARY[] ~{%d}\r\n" % len(decoded))
        # nothing is encoded inside this message/rfc822 part: BINARY is BODY
        msg = _one(raw(c, "d FETCH 3 (BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[2])"), 3)
        assert msg["BINARY[2]"] == msg["BODY[2]"]
        assert msg["BINARY[2]"].startswith(b"From: Original Author <orig@example.net>\r\n")
        assert msg["BINARY.SIZE[2]"] == len(msg["BODY[2]"]) == 425  # as Dovecot
        c.close()


def test_streaming_decoders_match_whole_decoding() -> None:
    """RFC 2045 §6.7/§6.8: the incremental decoders used to stream BINARY give
    exactly what decoding the whole body gives, wherever the chunks are cut."""
    from mailbag.message.decode import decode_transfer

    samples = {
        "base64": [
            base64.encodebytes(bytes(range(256)) * 3),
            b"aMOp bGxv\r\nIHfD!!tnJsZAo=ignored",
            b"YQ",
            b"Y",
            b"",
        ],
        "quoted-printable": [
            b"a=3Db soft=\r\nbreak, trailing space =20  \r\nlower =3d escape",
            b"x = y=\n=E9t=C3=A9 \t\r\nend=",
            b"=4",
            b"tail  ",
            b"a" * 50 + b"=\r\n" + b"b=" + b"\r\n",
        ],
    }
    for cte, inputs in samples.items():
        for data in inputs:
            want = decode_transfer(data, cte)
            for size in (1, 2, 3, 5, 7, 64):
                dec = Base64Stream() if cte == "base64" else QPStream()
                got = b"".join(dec.feed(data[i : i + size]) for i in range(0, len(data), size))
                got += dec.finish()
                assert got == want, (cte, data, size)


# ---- \Seen ---------------------------------------------------------------------------


def test_seen_side_effect_and_peek(tmp_path: Path) -> None:
    """RFC 9051 §6.4.5: BODY[...] and BINARY[...] (not .PEEK), RFC822 and
    RFC822.TEXT set \\Seen, and the response then carries FLAGS; the session's
    own change is not echoed to it later, another session sees it (RFC 9051
    §7.5.2 unsolicited FETCH)."""
    msgs = [SIMPLE, SIMPLE, SIMPLE, SIMPLE]
    with server(tmp_path, messages={"alice": {"INBOX": msgs}}) as srv:
        c1 = connect(srv)
        c2 = connect(srv)
        raw(c1, "s SELECT INBOX")
        raw(c2, "s SELECT INBOX")
        peeked = raw(
            c1, "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BINARY.PEEK[1]<0.2> RFC822.HEADER)"
        )
        assert list(_one(peeked)) == [
            "BODY[HEADER.FIELDS (Subject)]",
            "BINARY[1]<0>",
            "RFC822.HEADER",
        ]
        assert b"\\Seen" not in raw(c1, "b FETCH 1:4 FLAGS")
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: c FETCH 1 (UID BODY[]<0.2>)
            S1: * 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) BODY[]<0> {2}
            S1: Re)
            S1: c OK Fetch completed.
            C1: d FETCH 1 BODY[]<0.2>
            S1: * 1 FETCH (BODY[]<0> {2}
            S1: Re)
            S1: d OK Fetch completed.
            C1: e FETCH 2 (BINARY[1]<0.2> FLAGS)
            S1: * 2 FETCH (BINARY[1]<0> {2}
            S1: Hi FLAGS (\\Seen \\Recent))
            S1: e OK Fetch completed.
            C1: f FETCH 3 RFC822.SIZE
            S1: * 3 FETCH (RFC822.SIZE 549)
            S1: f OK Fetch completed.
            C1: g NOOP
            S1: g OK NOOP completed.
            C2: h NOOP
            S2: * 1 FETCH (FLAGS (\\Seen) UID 1)
            S2: * 2 FETCH (FLAGS (\\Seen) UID 2)
            S2: h OK NOOP completed.
            """,
        )
        items = fetches(raw(c1, "i FETCH 3:4 (RFC822.TEXT)"))
        assert [list(items[n]) for n in (3, 4)] == [["FLAGS", "RFC822.TEXT"]] * 2
        assert all(b"\\Seen" in b" ".join(v.encode() for v in items[n]["FLAGS"]) for n in (3, 4))
        c1.close()
        c2.close()


def test_examine_does_not_set_seen(tmp_path: Path) -> None:
    """RFC 9051 §6.3.3: EXAMINE is read-only, so FETCH BODY[] leaves \\Seen unset."""
    with server(tmp_path, messages={"alice": {"INBOX": [SIMPLE]}}) as srv:
        c = connect(srv, rev2=True)
        transcript(
            c,
            """
            C: s EXAMINE INBOX
            S~ .*
            S~ .*
            S~ .*
            S~ .*
            S~ .*
            S: s OK [READ-ONLY] Examine completed.
            C: a FETCH 1 (BODY[]<0.6> RFC822.TEXT)
            S: * 1 FETCH (BODY[]<0> {6}
            S: Return RFC822.TEXT {54}
            S: Hi Bob,
            S:
            S: are we still on for Friday?
            S:
            S~ --\\s
            S: Alice
            S: )
            S: a OK Fetch completed.
            C: b FETCH 1 FLAGS
            S: * 1 FETCH (FLAGS ())
            S: b OK Fetch completed.
            """,
        )
        c.close()


# ---- IMAP4rev1 and IMAP4rev2 -----------------------------------------------------------


def test_rev1_and_rev2_differences(tmp_path: Path) -> None:
    """RFC 9051 Appendix E: no \\Recent in IMAP4rev2; message/global has a
    structure only in IMAP4rev2 (RFC 9051 §7.5.2, RFC 3501 has none); 8-bit
    strings are literals for IMAP4rev1 clients and quoted when they are UTF-8
    for rev2 (RFC 9051 §4.3 quoted = UTF-8 allowed)."""
    glob = corpus("message_global")
    eight = corpus("eight_bit_headers")
    with server(tmp_path, messages={"alice": {"INBOX": [glob, eight]}}) as srv:
        c1 = connect(srv)
        c2 = connect(srv, rev2=True)
        raw(c1, "s SELECT INBOX")
        raw(c2, "s SELECT INBOX")
        r1 = _one(raw(c1, "a FETCH 1 (FLAGS BODYSTRUCTURE)"))
        r2 = _one(raw(c2, "a FETCH 1 (FLAGS BODYSTRUCTURE)"))
        assert r1["FLAGS"] == ["\\Recent"] and r2["FLAGS"] == []
        part1, part2 = r1["BODYSTRUCTURE"][0], r2["BODYSTRUCTURE"][0]
        assert part1[:2] == part2[:2] == [b"message", b"global"]
        assert len(part1) == 11  # basic part: no envelope, body, lines
        assert isinstance(part2[7], list) and len(part2[7]) == 10  # envelope
        assert isinstance(part2[8], list)  # body of the encapsulated message
        out1 = raw(c1, "b FETCH 2 ENVELOPE")
        out2 = raw(c2, "b FETCH 2 ENVELOPE")
        env1, env2 = _one(out1, 2)["ENVELOPE"], _one(out2, 2)["ENVELOPE"]
        assert env1 == env2
        eight_bit = [s for s in env1[:2] if isinstance(s, bytes) and not s.isascii()]
        for field in (env1[2], env1[5]):  # From, To
            eight_bit += [a[0] for a in field if isinstance(a[0], bytes) and not a[0].isascii()]
        assert len(eight_bit) == 3, env1
        for s in eight_bit:
            assert b"{%d}\r\n%s" % (len(s), s) in out1  # rev1: a literal
            try:
                s.decode("utf-8")
            except UnicodeDecodeError:  # not UTF-8: a literal for rev2 too
                assert b"{%d}\r\n%s" % (len(s), s) in out2
            else:
                assert b'"%s"' % s in out2  # rev2: a quoted UTF-8 string
        c1.close()
        c2.close()


# ---- expunged by another session ---------------------------------------------------


def test_fetch_of_message_expunged_elsewhere(tmp_path: Path) -> None:
    """RFC 9051 §7.5.1: no EXPUNGE during FETCH by sequence number, but during
    UID FETCH; the expunged message has no data left, so it gets no FETCH and
    the command completes with OK [EXPUNGEISSUED] (RFC 9051 §7.1). SEARCH
    matches nothing in it, whether over the store's columns (ALL) or over
    text keys alone, which skip them (the record still queued for the view)."""
    msgs = [SIMPLE, B64_SINGLE, SIMPLE]
    with server(tmp_path, messages={"alice": {"INBOX": msgs}}) as srv:
        c1 = connect(srv)
        c2 = connect(srv)
        raw(c1, "s SELECT INBOX")
        raw(c2, "s SELECT INBOX")
        expunge_elsewhere(srv, [2])
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: z SEARCH OR FROM alice SUBJECT b64
            S1: * SEARCH 1 3
            S1: z OK [EXPUNGEISSUED] Search completed.
            C1: a FETCH 1:3 (UID RFC822.SIZE BODY.PEEK[]<0.3>)
            S1: * 1 FETCH (UID 1 RFC822.SIZE 549 BODY[]<0> {3}
            S1: Ret)
            S1: * 3 FETCH (UID 3 RFC822.SIZE 549 BODY[]<0> {3}
            S1: Ret)
            S1: a OK [EXPUNGEISSUED] Some messages were already expunged.
            C1: b FETCH 2 (FLAGS BODY.PEEK[])
            S1: b OK [EXPUNGEISSUED] Some messages were already expunged.
            C1: c SEARCH ALL
            S1: * SEARCH 1 3
            S1: c OK [EXPUNGEISSUED] Search completed.
            C1: d UID FETCH 1:* (FLAGS)
            S1: * 1 FETCH (UID 1 FLAGS (\\Recent))
            S1: * 3 FETCH (UID 3 FLAGS (\\Recent))
            S1: * 2 EXPUNGE
            S1: d OK [EXPUNGEISSUED] Some messages were already expunged.
            C1: e FETCH 2 UID
            S1: * 2 FETCH (UID 3)
            S1: e OK Fetch completed.
            C2: f UID FETCH 1:* UID
            S2: * 1 FETCH (UID 1)
            S2: * 3 FETCH (UID 3)
            S2: * 2 EXPUNGE
            S2: f OK [EXPUNGEISSUED] Some messages were already expunged.
            """,
        )
        c1.close()
        c2.close()


# ---- big messages ------------------------------------------------------------------


def _big_message() -> tuple[bytes, bytes]:
    """A 20 MB text part and a base64 attachment of 4 MB (decoded)."""
    line = b"0123456789 the quick brown fox jumps over the lazy dog 0123456789\r\n"
    text_part = line * (20 * 1024 * 1024 // len(line))
    attachment = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
    data = (
        b"From: big@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        + text_part
        + b"\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(attachment).replace(b"\n", b"\r\n")
        + b"\r\n--b--\r\n"
    )
    return data, attachment


def _drain(c: Any, tag: str) -> tuple[list[bytes], list[str], bytes]:
    """Read a FETCH answer with big literals without keeping them: the
    response lines, the SHA-256 of each literal and the tagged line."""
    lines: list[bytes] = []
    digests: list[str] = []
    while True:
        while b"\r\n" not in c.buf:
            assert c._fill()
        line, c.buf = c.buf.split(b"\r\n", 1)
        lines.append(line)
        m = re.search(rb"~?\{(\d+)\}\Z", line)
        if m:
            left = int(m.group(1))
            h = hashlib.sha256()
            while left:
                if not c.buf:
                    assert c._fill()
                piece, c.buf = c.buf[:left], c.buf[left:]
                h.update(piece)
                left -= len(piece)
            digests.append(h.hexdigest())
            continue
        if line.startswith(tag.encode() + b" "):
            return lines, digests, line


def test_huge_message_is_streamed(tmp_path: Path) -> None:
    """DESIGN.md §3 / RFC 9051 §6.4.5: a 24 MB message is sent as streamed
    literals (BODY[], a partial range, BINARY of a base64 attachment) while the
    server allocates far less than the message size."""
    data, attachment = _big_message()
    with server(tmp_path, messages={"alice": {"INBOX": [data]}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        assert tagged(raw(c, "w FETCH 1 BODYSTRUCTURE")).startswith("w OK")
        # measure allocations in the server thread only
        peak: list[int] = []
        server_thread = next(t for t in threading.enumerate() if t.name == "mailbag-test-server")
        assert server_thread.is_alive()
        tracemalloc.start()
        try:
            c.send(
                b"a FETCH 1 (BODY.PEEK[] BODY.PEEK[]<15000000.1000000> BINARY.PEEK[2] "
                b"BINARY.SIZE[2] BINARY.PEEK[2]<1000000.100>)\r\n"
            )
            lines, digests, done = _drain(c, "a")
            peak.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert done == b"a OK Fetch completed."
        assert lines[0] == b"* 1 FETCH (BODY[] {%d}" % len(data)
        assert lines[1] == b" BODY[]<15000000> {1000000}"
        assert lines[2] == b" BINARY[2] ~{%d}" % len(attachment)
        assert lines[3] == b" BINARY.SIZE[2] %d BINARY[2]<1000000> ~{100}" % len(attachment)
        assert digests == [
            hashlib.sha256(data).hexdigest(),
            hashlib.sha256(data[15000000:16000000]).hexdigest(),
            hashlib.sha256(attachment).hexdigest(),
            hashlib.sha256(attachment[1000000:1000100]).hexdigest(),
        ]
        # 24 MB went out; the client side here keeps < 1 MB, the server a few chunks
        assert peak[0] < 8 * 1024 * 1024, peak
        started = time.monotonic()
        assert tagged(raw(c, "n NOOP")) == "n OK NOOP completed."
        assert time.monotonic() - started < 2
        c.close()


def test_expunge_while_streaming_ends_only_that_connection(tmp_path: Path) -> None:
    """DESIGN.md §2.6: when a streamed message is expunged by another session
    before all of its literal is out, the announced length can no longer be
    honoured: that connection is closed; the server carries on."""
    data, _attachment = _big_message()
    with server(tmp_path, messages={"alice": {"INBOX": [data]}}) as srv:
        c = connect(srv)
        raw(c, "s EXAMINE INBOX")
        c.send(b"a FETCH 1 BODY.PEEK[]\r\n")
        time.sleep(0.3)  # the server fills the socket buffers and waits
        expunge_elsewhere(srv, [1])
        received = len(c.buf)
        c.sock.settimeout(10)
        while chunk := c.sock.recv(1 << 20):
            received += len(chunk)
        assert 0 < received < len(data)
        c.close()
        with connect(srv) as other:
            assert tagged(raw(other, "n NOOP")) == "n OK NOOP completed."
