"""Response serialisation, checked against the RFCs' own examples."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from mailbag.proto.imap.fetch import BodySection, Section, response_name
from mailbag.proto.imap.responses import (
    CONTINUE_LITERAL,
    REV1,
    REV2,
    Atom,
    Binary,
    ByeResponse,
    CapabilityResponse,
    ContinuationResponse,
    EnabledResponse,
    EncodingContext,
    ESearchResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    ListResponse,
    MailboxName,
    MailboxStatusResponse,
    Namespace,
    NamespaceResponse,
    RecentResponse,
    ResponseCode,
    SearchResponse,
    StreamingLiteral,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
    flag_atoms,
    internal_date,
    iter_bytes,
    lsub_response,
)
from mailbag.proto.imap.seqset import SeqSet

UTF8 = EncodingContext(utf8=True)


def line(text: str) -> bytes:
    return text.encode() + b"\r\n"


# RFC 9051 §6.3.2 SELECT, §6.1.1 CAPABILITY, §6.1.2 NOOP, §6.1.3 LOGOUT,
# §6.3.12 APPEND, §6.4.7 COPY, §7.4.1, §7.5.1
@pytest.mark.parametrize(
    ("response", "wire"),
    [
        (ExistsResponse(172), "* 172 EXISTS"),
        (RecentResponse(1), "* 1 RECENT"),  # RFC 3501 §6.3.1
        (ExpungeResponse(44), "* 44 EXPUNGE"),
        (
            UntaggedStatus("OK", "UIDs valid", ResponseCode.uidvalidity(3857529045)),
            "* OK [UIDVALIDITY 3857529045] UIDs valid",
        ),
        (
            UntaggedStatus("OK", "Predicted next UID", ResponseCode.uidnext(4392)),
            "* OK [UIDNEXT 4392] Predicted next UID",
        ),
        (
            UntaggedStatus("OK", "Message 17 is the first unseen message", ResponseCode.unseen(17)),
            "* OK [UNSEEN 17] Message 17 is the first unseen message",  # RFC 3501 §6.3.1
        ),
        (
            FlagsResponse(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        ),
        (
            UntaggedStatus(
                "OK", "Limited", ResponseCode.permanent_flags(["\\Deleted", "\\Seen", "\\*"])
            ),
            "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited",
        ),
        (
            UntaggedStatus("OK", "No permanent flags permitted", ResponseCode.permanent_flags([])),
            "* OK [PERMANENTFLAGS ()] No permanent flags permitted",
        ),
        (
            TaggedResponse("A142", "OK", "SELECT completed", ResponseCode("READ-WRITE")),
            "A142 OK [READ-WRITE] SELECT completed",
        ),
        (
            CapabilityResponse(("IMAP4rev2", "STARTTLS", "AUTH=GSSAPI")),
            "* CAPABILITY IMAP4rev2 STARTTLS AUTH=GSSAPI",
        ),
        (
            UntaggedStatus(
                "OK",
                "IMAP4rev2 Service Ready",
                ResponseCode.capability(
                    ["STARTTLS", "AUTH=SCRAM-SHA-256", "LOGINDISABLED", "IMAP4rev2"]
                ),
            ),
            "* OK [CAPABILITY STARTTLS AUTH=SCRAM-SHA-256 LOGINDISABLED IMAP4rev2]"
            " IMAP4rev2 Service Ready",  # RFC 9051 §8
        ),
        (ByeResponse("IMAP4rev2 Server logging out"), "* BYE IMAP4rev2 Server logging out"),
        (
            TaggedResponse("A003", "OK", "APPEND completed", ResponseCode.appenduid(38505, 3955)),
            "A003 OK [APPENDUID 38505 3955] APPEND completed",
        ),
        (
            TaggedResponse(
                "A004",
                "OK",
                "Done",
                ResponseCode.copyuid(38505, SeqSet.parse("304,319:320"), SeqSet.parse("3956:3958")),
            ),
            "A004 OK [COPYUID 38505 304,319:320 3956:3958] Done",
        ),
        (
            TaggedResponse(
                "B283", "NO", "KOI8-R is not supported", ResponseCode.badcharset(["UTF-8"])
            ),
            "B283 NO [BADCHARSET (UTF-8)] KOI8-R is not supported",  # RFC 9051 §6.4.4.4
        ),
        (
            TaggedResponse("A044", "BAD", 'No such command as "BLURDYBLOOP"'),
            'A044 BAD No such command as "BLURDYBLOOP"',  # RFC 9051 §7.6
        ),
        # RFC 7162 §3.1.2.1, §3.1.3
        (
            UntaggedStatus("OK", "Highest", ResponseCode.highestmodseq(715194045007)),
            "* OK [HIGHESTMODSEQ 715194045007] Highest",
        ),
        (
            TaggedResponse(
                "a103", "OK", "Conditional STORE failed", ResponseCode.modified(SeqSet.parse("7,9"))
            ),
            "a103 OK [MODIFIED 7,9] Conditional STORE failed",
        ),
        (
            TaggedResponse("A1", "NO", "Message too large", "TOOBIG"),
            "A1 NO [TOOBIG] Message too large",
        ),
        (
            VanishedResponse(SeqSet.parse("300:310,405,411"), earlier=True),
            "* VANISHED (EARLIER) 300:310,405,411",
        ),
        (VanishedResponse(SeqSet.parse("405,407,410,425")), "* VANISHED 405,407,410,425"),
        # RFC 5161 §3.1
        (EnabledResponse(("X-GOOD-IDEA",)), "* ENABLED X-GOOD-IDEA"),
        (EnabledResponse(()), "* ENABLED"),
        (CONTINUE_LITERAL, "+ Ready for literal data"),
        (ContinuationResponse(data=b""), "+ "),
        (ContinuationResponse(data=b"\x00\x01"), "+ AAE="),
    ],
)
def test_status_and_simple_responses(response: object, wire: str) -> None:
    assert response.to_bytes() == line(wire)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("response", "wire"),
    [
        # RFC 9051 §6.3.9.8 / §7.3.1
        (ListResponse((), "/", "blurdybloop"), '* LIST () "/" blurdybloop'),
        (ListResponse(("\\Noselect",), "/", "foo"), '* LIST (\\Noselect) "/" foo'),
        (ListResponse((), ".", "foo.bar"), '* LIST () "." foo.bar'),
        (ListResponse(("\\Noselect",), "/", ""), '* LIST (\\Noselect) "/" ""'),
        (ListResponse(("\\Noselect",), ".", "#news."), '* LIST (\\Noselect) "." #news.'),
        (ListResponse(("\\Noselect",), "/", "~/Mail/foo"), '* LIST (\\Noselect) "/" ~/Mail/foo'),
        (ListResponse((), "/", "INBOX"), '* LIST () "/" INBOX'),
        (
            ListResponse((), "/", "NewMailbox", old_name="OldMailbox"),
            '* LIST () "/" NewMailbox ("OLDNAME" (OldMailbox))',
        ),
        (
            # RFC 5258 §5 example 9
            ListResponse(("\\Subscribed",), "/", "Foo", child_info=("SUBSCRIBED",)),
            '* LIST (\\Subscribed) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))',
        ),
        (ListResponse((), None, "flat"), "* LIST () NIL flat"),
        (ListResponse((), "\\", "a b"), '* LIST () "\\\\" "a b"'),
        (ListResponse((), "/", "NIL"), '* LIST () "/" "NIL"'),  # RFC 9051 §4.5
        (lsub_response((), ".", "#news.comp.mail.mime"), '* LSUB () "." #news.comp.mail.mime'),
        # RFC 9051 §6.3.11 / §7.3.3
        (
            MailboxStatusResponse("blurdybloop", (("MESSAGES", 231), ("UIDNEXT", 44292))),
            "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)",
        ),
        # RFC 3501 §7.2.5, RFC 7162 §3.1.5
        (SearchResponse((2, 84, 882)), "* SEARCH 2 84 882"),
        (SearchResponse(()), "* SEARCH"),
        (SearchResponse((2, 5, 6), modseq=917162500), "* SEARCH 2 5 6 (MODSEQ 917162500)"),
        # RFC 9051 §6.4.4 and §7.3.4
        (ESearchResponse("A282", min=2, count=3), '* ESEARCH (TAG "A282") MIN 2 COUNT 3'),
        (
            ESearchResponse("A283", all=SeqSet.parse("2,10:11")),
            '* ESEARCH (TAG "A283") ALL 2,10:11',
        ),
        (ESearchResponse("A284"), '* ESEARCH (TAG "A284")'),
        (
            ESearchResponse("A285", uid=True, min=7, max=3800),
            '* ESEARCH (TAG "A285") UID MIN 7 MAX 3800',
        ),
        (
            ESearchResponse("a567", uid=True, count=17, all=SeqSet.parse("4:18,21,28")),
            '* ESEARCH (TAG "a567") UID COUNT 17 ALL 4:18,21,28',
        ),
        (
            ESearchResponse(count=18, all=SeqSet.parse("1:17,21")),
            "* ESEARCH COUNT 18 ALL 1:17,21",
        ),
        (
            ESearchResponse("C286", min=2, max=21, count=8),
            '* ESEARCH (TAG "C286") MIN 2 MAX 21 COUNT 8',
        ),
        # RFC 9051 §6.3.10
        (NamespaceResponse((Namespace("", "/"),)), '* NAMESPACE (("" "/")) NIL NIL'),
        (NamespaceResponse(None, None, (Namespace("", "."),)), '* NAMESPACE NIL NIL (("" "."))'),
        (
            NamespaceResponse(
                (Namespace("", "/"),),
                (Namespace("~", "/"),),
                (
                    Namespace("#shared/", "/"),
                    Namespace("#public/", "/"),
                    Namespace("#ftp/", "/"),
                    Namespace("#news.", "."),
                ),
            ),
            '* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/")("#public/" "/")'
            '("#ftp/" "/")("#news." "."))',
        ),
        # RFC 9051 §6.1.2, §6.4.6, §6.4.9
        (
            FetchResponse(14, (("UID", 1305), ("FLAGS", flag_atoms(["\\Seen", "\\Deleted"])))),
            "* 14 FETCH (UID 1305 FLAGS (\\Seen \\Deleted))",
        ),
        (
            FetchResponse(3, (("FLAGS", flag_atoms(["\\Deleted"])),)),
            "* 3 FETCH (FLAGS (\\Deleted))",
        ),
        (
            FetchResponse(
                23, (("FLAGS", flag_atoms(["\\Seen"])), ("RFC822.SIZE", 44827), ("UID", 447))
            ),
            "* 23 FETCH (FLAGS (\\Seen) RFC822.SIZE 44827 UID 447)",
        ),
        (FetchResponse(50, (("MODSEQ", [12121231000]),)), "* 50 FETCH (MODSEQ (12121231000))"),
    ],
)
def test_mailbox_and_message_responses(response: object, wire: str) -> None:
    assert response.to_bytes() == line(wire)  # type: ignore[attr-defined]


def test_fetch_full_from_rfc9051_section_8() -> None:
    # RFC 9051 §8 sample connection, "a003 fetch 12 full" (line breaks removed).
    addr = [["Terry Gray", None, "gray", "cac.washington.edu"]]
    envelope = [
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "IMAP4rev2 WG mtg summary and minutes",
        addr,
        addr,
        addr,
        [[None, None, "imap", "cac.washington.edu"]],
        [
            [None, None, "minutes", "CNRI.Reston.VA.US"],
            ["John Klensin", None, "KLENSIN", "MIT.EDU"],
        ],
        None,
        None,
        "<B27397-0100000@cac.washington.ed>",
    ]
    body = ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 3028, 92]
    when = dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(-dt.timedelta(hours=7)))
    response = FetchResponse(
        12,
        (
            ("FLAGS", flag_atoms(["\\Seen"])),
            ("INTERNALDATE", internal_date(when)),
            ("RFC822.SIZE", 4286),
            ("ENVELOPE", envelope),
            ("BODY", body),
        ),
    )
    expected = (
        '* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286'
        ' ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and'
        ' minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray"'
        ' "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL'
        ' "imap" "cac.washington.edu")) ((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John'
        ' Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "<B27397-0100000@cac.washington.ed>")'
        ' BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))'
    )
    assert response.to_bytes() == line(expected)


def test_fetch_body_header_literal_from_rfc9051_section_8() -> None:
    header = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: x\r\n\r\n"
    name = response_name(BodySection(Section((), "HEADER")))
    wire = FetchResponse(12, ((name, header),)).to_bytes()
    assert wire == b"* 12 FETCH (BODY[HEADER] {%d}\r\n" % len(header) + header + b")\r\n"


def test_strings_choose_atom_quoted_or_literal() -> None:
    def item(value: object, ctx: EncodingContext = REV1) -> bytes:
        return FetchResponse(1, (("X", value),)).to_bytes(ctx)  # type: ignore[arg-type]

    assert item("plain") == b'* 1 FETCH (X "plain")\r\n'
    assert item('q"uo\\te') == b'* 1 FETCH (X "q\\"uo\\\\te")\r\n'
    assert item("") == b'* 1 FETCH (X "")\r\n'
    assert item(None) == b"* 1 FETCH (X NIL)\r\n"
    assert item("NIL") == b'* 1 FETCH (X "NIL")\r\n'  # RFC 9051 §4.5
    assert item([]) == b"* 1 FETCH (X ())\r\n"
    assert item("a\r\nb") == b"* 1 FETCH (X {4}\r\na\r\nb)\r\n"
    assert item(b"nul\x00") == b"* 1 FETCH (X {4}\r\nnul\x00)\r\n"
    assert item("x" * 2000).startswith(b"* 1 FETCH (X {2000}\r\nxxx")
    # 8-bit: a literal for rev1 clients, quoted for UTF-8 clients (RFC 9051 §4.3.1)
    assert item("Grüße") == "* 1 FETCH (X {7}\r\nGrüße)\r\n".encode()
    assert item("Grüße", REV2) == '* 1 FETCH (X "Grüße")\r\n'.encode()
    assert item("Grüße", UTF8) == '* 1 FETCH (X "Grüße")\r\n'.encode()
    assert item(b"\xff\xfe", REV2) == b"* 1 FETCH (X {2}\r\n\xff\xfe)\r\n"  # not UTF-8
    # RFC 3516 §4.2: binary data with NUL goes in a literal8
    assert item(Binary(b"a\x00b")) == b"* 1 FETCH (X ~{3}\r\na\x00b)\r\n"
    assert item(Binary(b"abc")) == b'* 1 FETCH (X "abc")\r\n'
    assert item(Atom("\\Seen")) == b"* 1 FETCH (X \\Seen)\r\n"
    assert item(MailboxName("Entwürfe")) == b"* 1 FETCH (X Entw&APw-rfe)\r\n"
    with pytest.raises(ValueError):
        item(-1)
    with pytest.raises(TypeError):
        item(True)
    with pytest.raises(ValueError):
        Atom("two words")


def test_mailbox_names_by_context() -> None:
    # RFC 3501 §5.1.3 for rev1 clients; UTF-8 after ENABLE (RFC 9051 §5.1, RFC 6855 §3)
    r = ListResponse((), "/", "~peter/mail/台北/日本語")
    assert r.to_bytes(REV1) == b'* LIST () "/" ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n'
    assert r.to_bytes(REV2) == '* LIST () "/" "~peter/mail/台北/日本語"\r\n'.encode()
    assert r.to_bytes(UTF8) == r.to_bytes(REV2)
    status = MailboxStatusResponse("a&b", (("MESSAGES", 1),))
    assert status.to_bytes(REV1) == b"* STATUS a&-b (MESSAGES 1)\r\n"
    assert status.to_bytes(REV2) == b"* STATUS a&b (MESSAGES 1)\r\n"
    ns = NamespaceResponse((Namespace("Entwürfe/", "/"),))
    assert ns.to_bytes(REV1) == b'* NAMESPACE (("Entw&APw-rfe/" "/")) NIL NIL\r\n'


def test_response_text_is_kept_on_one_line() -> None:
    r = TaggedResponse("a", "NO", "bad\r\nthing\x00 ü")
    assert r.to_bytes(REV1) == b"a NO bad  thing ?\r\n"
    assert r.to_bytes(REV2) == "a NO bad  thing ü\r\n".encode()
    # text that starts with "[" is not mistaken for a response code
    assert TaggedResponse("a", "OK", "[x]").to_bytes() == b"a OK  [x]\r\n"
    assert TaggedResponse("a", "OK", "").to_bytes() == b"a OK OK\r\n"
    with pytest.raises(ValueError):
        TaggedResponse("a", "NO", "x", "BAD]CODE").to_bytes()


def test_streaming_literal_pieces() -> None:
    body = [b"Subject: hi\r\n", b"\r\n", b"hello\r\n"]
    size = sum(map(len, body))
    stream = StreamingLiteral(size, iter(body))
    response = FetchResponse(7, (("UID", 9), ("BODY[]", stream)))
    pieces = response.pieces(REV1)
    assert pieces[0] == b"* 7 FETCH (UID 9 BODY[] {%d}\r\n" % size
    assert pieces[1] is stream
    assert pieces[2] == b")\r\n"
    chunks = list(iter_bytes(FetchResponse(7, (("BODY[]", StreamingLiteral(size, body)),))))
    assert chunks[1:4] == body  # written in the source's chunks, never joined
    assert b"".join(chunks) == b"* 7 FETCH (BODY[] {%d}\r\n" % size + b"".join(body) + b")\r\n"
    binary = FetchResponse(1, (("BINARY[]", StreamingLiteral(2, [b"\x00\x01"], binary=True)),))
    assert binary.to_bytes() == b"* 1 FETCH (BINARY[] ~{2}\r\n\x00\x01)\r\n"


def test_streaming_literal_size_is_enforced() -> None:
    short = FetchResponse(1, (("BODY[]", StreamingLiteral(10, [b"abc"])),))
    with pytest.raises(ValueError, match="fewer"):
        short.to_bytes()
    long = FetchResponse(1, (("BODY[]", StreamingLiteral(2, [b"abc"])),))
    with pytest.raises(ValueError, match="more"):
        long.to_bytes()

    async def source() -> AsyncIterator[bytes]:
        yield b"x"

    async_body = FetchResponse(1, (("BODY[]", StreamingLiteral(1, source())),))
    assert async_body.pieces()[1].chunks is not None  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="async"):
        async_body.to_bytes()


def test_datetime_from_stored_columns_equals_the_datetime_form() -> None:
    """wire.datetime_bytes_at (unix seconds + zone offset, as the store keeps
    them) writes what wire.datetime_bytes writes for the same moment, across
    zones east and west, half-hour zones, dates before 1970 and around
    midnight and the year boundary in the zone's own time."""
    import datetime as dt
    import random

    from mailbag.proto.imap.wire import datetime_bytes, datetime_bytes_at

    rng = random.Random(7)
    offsets = [0, 3600, -18000, 19800, -34200, 50400, -43200, 60]
    moments = [0, -1, 86399, 86400, -86401, 1_704_067_199, 1_704_067_200]
    moments += [rng.randrange(-2_000_000_000, 4_000_000_000) for _ in range(500)]
    for ts in moments:
        for off in offsets:
            when = dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(seconds=off)))
            assert datetime_bytes_at(ts, off) == datetime_bytes(when), (ts, off)
    assert datetime_bytes_at(-18000, -18000) == b"31-Dec-1969 14:00:00 -0500"
