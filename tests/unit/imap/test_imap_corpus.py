"""Every command form: client input and the events the receiver must produce.

Each entry is fed whole, one byte at a time, in every two-chunk split, and
all together as one stream in random chunks: the events must be the same.
Examples marked with an RFC section are copied from that section.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from mailbag.proto.imap.commands import (
    AppendCommand,
    AppendMessage,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExamineCommand,
    ExpungeCommand,
    FetchCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    QResyncParams,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTLSCommand,
    StatusCommand,
    StoreCommand,
    StoreMode,
    SubscribeCommand,
    UIDExpungeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from mailbag.proto.imap.fetch import (
    MACROS,
    Attr,
    BinarySection,
    BinarySize,
    BodySection,
    Partial,
    Section,
)
from mailbag.proto.imap.receiver import CommandError, ContinuationRequest, Event, IMAPReceiver
from mailbag.proto.imap.search import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NewKey,
    NotKey,
    OrKey,
    SeqKey,
    SizeKey,
    StringKey,
    UIDKey,
)
from mailbag.proto.imap.seqset import SeqSet


def S(text: str) -> SeqSet:
    return SeqSet.parse(text)


def tz(hours: int, minutes: int = 0) -> dt.timezone:
    sign = -1 if hours < 0 else 1
    return dt.timezone(sign * dt.timedelta(hours=abs(hours), minutes=minutes))


MSG = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n"
assert len(MSG) == 79

CORPUS: list[tuple[bytes, list[Event]]] = [
    # -- any state (RFC 9051 §6.1) ------------------------------------------------
    (b"abcd CAPABILITY\r\n", [CapabilityCommand("abcd")]),
    (b"a002 noop\r\n", [NoopCommand("a002")]),
    (b"A023 LOGOUT\r\n", [LogoutCommand("A023")]),
    # -- not authenticated (RFC 9051 §6.2) ----------------------------------------
    (b"a001 STARTTLS\r\n", [StartTLSCommand("a001")]),
    (b"A001 AUTHENTICATE GSSAPI\r\n", [AuthenticateCommand("A001", "GSSAPI")]),
    # RFC 4959 §3 SASL-IR
    (
        b"a01 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
        [AuthenticateCommand("a01", "PLAIN", b"\x00alice\x00secret")],
    ),
    (b"a02 authenticate plain =\r\n", [AuthenticateCommand("a02", "PLAIN", b"")]),
    (b"a001 LOGIN SMITH SESAME\r\n", [LoginCommand("a001", "SMITH", "SESAME")]),
    (b'a2 LOGIN "pass word" "a\\"b\\\\c"\r\n', [LoginCommand("a2", "pass word", 'a"b\\c')]),
    # RFC 7888 §3: non-synchronizing literals, the space after FOOBAR is the separator
    (
        b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n",
        [LoginCommand("A001", "FRED FOOBAR", "fat man")],
    ),
    (
        b"a3 LOGIN {5}\r\nalice {0}\r\n\r\n",
        [
            ContinuationRequest("a3", "LOGIN", 5),
            # RFC 9051 §4.3: even {0} needs a continuation request
            ContinuationRequest("a3", "LOGIN", 0),
            LoginCommand("a3", "alice", ""),
        ],
    ),
    # -- authenticated (RFC 9051 §6.3) ----------------------------------------------
    (b"t2 ENABLE CONDSTORE X-GOOD-IDEA\r\n", [EnableCommand("t2", ("CONDSTORE", "X-GOOD-IDEA"))]),
    (
        b"babc enable imap4rev2 utf8=accept\r\n",
        [EnableCommand("babc", ("IMAP4REV2", "UTF8=ACCEPT"))],
    ),
    (b"A142 SELECT INBOX\r\n", [SelectCommand("A142", "INBOX")]),
    (b"a002 select inbox\r\n", [SelectCommand("a002", "INBOX")]),
    (b'A1 SELECT "iNbOx"\r\n', [SelectCommand("A1", "INBOX")]),
    (b"A932 EXAMINE blurdybloop\r\n", [ExamineCommand("A932", "blurdybloop")]),
    # RFC 7162 §3.1.8
    (b"a SELECT INBOX (CONDSTORE)\r\n", [SelectCommand("a", "INBOX", condstore=True)]),
    (b"b examine Sent (condstore)\r\n", [ExamineCommand("b", "Sent", condstore=True)]),
    # RFC 7162 §3.2.5.2
    (
        b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        [
            SelectCommand(
                "A02",
                "INBOX",
                qresync=QResyncParams(67890007, 20050715194045000, S("41,43:211,214:541")),
            )
        ],
    ),
    (
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,"
        b"9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,"
        b"29997)))\r\n",
        [
            SelectCommand(
                "B04",
                "INBOX",
                qresync=QResyncParams(
                    67890007,
                    90060115194045000,
                    S("1:29997"),
                    S("5000,7500,9000,9990:9999"),
                    S(
                        "15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997"
                    ),
                ),
            )
        ],
    ),
    (
        b"C1 EXAMINE INBOX (QRESYNC (1 2 (3:4 5:6)))\r\n",
        [ExamineCommand("C1", "INBOX", qresync=QResyncParams(1, 2, None, S("3:4"), S("5:6")))],
    ),
    (b"A003 CREATE owatagusiam/\r\n", [CreateCommand("A003", "owatagusiam/")]),
    # RFC 6154 §5.3
    (
        b"t1 CREATE MySpecial (USE (\\Drafts \\sent))\r\n",
        [CreateCommand("t1", "MySpecial", ("\\Drafts", "\\Sent"))],
    ),
    (b"A683 DELETE blurdybloop\r\n", [DeleteCommand("A683", "blurdybloop")]),
    (b"A683 RENAME blurdybloop sarasoop\r\n", [RenameCommand("A683", "blurdybloop", "sarasoop")]),
    (
        b"A002 SUBSCRIBE #news.comp.mail.mime\r\n",
        [SubscribeCommand("A002", "#news.comp.mail.mime")],
    ),
    (
        b"A002 UNSUBSCRIBE #news.comp.mail.mime\r\n",
        [UnsubscribeCommand("A002", "#news.comp.mail.mime")],
    ),
    # RFC 3501 §5.1.3: modified UTF-7 names
    (
        b"A1 CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n",
        [CreateCommand("A1", "~peter/mail/台北/日本語")],
    ),
    (b"A2 SELECT &AOQ-&-\r\n", [SelectCommand("A2", "ä&")]),
    # -- LIST (RFC 9051 §6.3.9.8, RFC 5258 §5) ----------------------------------------
    (b'A101 LIST "" ""\r\n', [ListCommand("A101", "", ("",))]),
    (b'A103 LIST /usr/staff/jones ""\r\n', [ListCommand("A103", "/usr/staff/jones", ("",))]),
    (b"A202 LIST ~/Mail/ %\r\n", [ListCommand("A202", "~/Mail/", ("%",))]),
    (b'A02 LIST "" *\r\n', [ListCommand("A02", "", ("*",))]),
    (
        b'A02 LIST (SUBSCRIBED) "" "*"\r\n',
        [ListCommand("A02", "", ("*",), frozenset({"SUBSCRIBED"}), extended=True)],
    ),
    (
        b'A03 LIST () "" "%" RETURN (CHILDREN)\r\n',
        [ListCommand("A03", "", ("%",), returns=frozenset({"CHILDREN"}), extended=True)],
    ),
    (
        b'A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)\r\n',
        [
            ListCommand(
                "A04", "", ("%",), frozenset({"REMOTE"}), frozenset({"CHILDREN"}), extended=True
            )
        ],
    ),
    (
        b'A05 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (SUBSCRIBED)\r\n',
        [
            ListCommand(
                "A05",
                "",
                ("%",),
                frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
                frozenset({"SUBSCRIBED"}),
                extended=True,
            )
        ],
    ),
    (
        b'A06 LIST "" ("INBOX" "Drafts/*" %) RETURN (SPECIAL-USE)\r\n',
        [
            ListCommand(
                "A06",
                "",
                ("INBOX", "Drafts/*", "%"),
                returns=frozenset({"SPECIAL-USE"}),
                extended=True,
            )
        ],
    ),
    # RFC 6154 §5.3
    (
        b't3 LIST (SPECIAL-USE) "" "*"\r\n',
        [ListCommand("t3", "", ("*",), frozenset({"SPECIAL-USE"}), extended=True)],
    ),
    # RFC 5819 §3
    (
        b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))\r\n',
        [
            ListCommand(
                "A01",
                "",
                ("%",),
                returns=frozenset({"STATUS"}),
                status_items=("MESSAGES", "UNSEEN"),
                extended=True,
            )
        ],
    ),
    (b'A002 LSUB "#news." "comp.mail.*"\r\n', [LsubCommand("A002", "#news.", "comp.mail.*")]),
    (b"A001 NAMESPACE\r\n", [NamespaceCommand("A001")]),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        [StatusCommand("A042", "blurdybloop", ("UIDNEXT", "MESSAGES"))],
    ),
    (
        b"A1 status INBOX (recent unseen uidvalidity deleted size highestmodseq unseen)\r\n",
        [
            StatusCommand(
                "A1",
                "INBOX",
                ("RECENT", "UNSEEN", "UIDVALIDITY", "DELETED", "SIZE", "HIGHESTMODSEQ"),
            )
        ],
    ),
    # -- APPEND (RFC 9051 §6.3.12, RFC 3502, RFC 3516, RFC 6855) --------------------
    (
        b"A003 APPEND saved-messages (\\Seen) {79}\r\n" + MSG + b"\r\n",
        [
            ContinuationRequest("A003", "APPEND", 79),
            AppendCommand("A003", "saved-messages", (AppendMessage(("\\Seen",), None, MSG),)),
        ],
    ),
    (
        b'A4 APPEND INBOX (\\Seen $Forwarded) " 7-Feb-1994 21:52:25 -0800" {5+}\r\nhello\r\n',
        [
            AppendCommand(
                "A4",
                "INBOX",
                (
                    AppendMessage(
                        ("\\Seen", "$Forwarded"),
                        dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=tz(-8)),
                        b"hello",
                    ),
                ),
            )
        ],
    ),
    (
        b'A5 APPEND INBOX "17-Jul-1996 02:44:25 +0530" {2+}\r\nhi\r\n',
        [
            AppendCommand(
                "A5",
                "INBOX",
                (AppendMessage((), dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz(5, 30)), b"hi"),),
            )
        ],
    ),
    # RFC 3502 §6 MULTIAPPEND, with a mix of literal forms
    (
        b"A003 APPEND saved-messages (\\Seen) {5}\r\nfirst"
        b' (\\Seen) " 1-Jul-2002 22:00:00 -0700" {6+}\r\nsecond {5}\r\nthird\r\n',
        [
            ContinuationRequest("A003", "APPEND", 5),
            ContinuationRequest("A003", "APPEND", 5),
            AppendCommand(
                "A003",
                "saved-messages",
                (
                    AppendMessage(("\\Seen",), None, b"first"),
                    AppendMessage(
                        ("\\Seen",), dt.datetime(2002, 7, 1, 22, 0, tzinfo=tz(-7)), b"second"
                    ),
                    AppendMessage((), None, b"third"),
                ),
            ),
        ],
    ),
    # RFC 3516 §4.4 literal8
    (
        b"A6 APPEND INBOX ~{4}\r\n\x00\r\n\x01\r\n",
        [
            ContinuationRequest("A6", "APPEND", 4, binary=True),
            AppendCommand("A6", "INBOX", (AppendMessage((), None, b"\x00\r\n\x01", binary=True),)),
        ],
    ),
    # RFC 6855 §4 UTF8 data extension
    (
        b"A7 APPEND INBOX () UTF8 (~{5+}\r\nS\xc3\xbc\xc3\xbc)\r\n",
        [
            AppendCommand(
                "A7",
                "INBOX",
                (AppendMessage((), None, "Süü".encode(), binary=True, utf8=True),),
            )
        ],
    ),
    (b"a047 IDLE\r\n", [IdleCommand("a047")]),
    # -- selected (RFC 9051 §6.4) ----------------------------------------------------
    (b"FXXZ CHECK\r\n", [CheckCommand("FXXZ")]),
    (b"A341 CLOSE\r\n", [CloseCommand("A341")]),
    (b"A342 UNSELECT\r\n", [UnselectCommand("A342")]),
    (b"A202 EXPUNGE\r\n", [ExpungeCommand("A202")]),
    # RFC 4315 §2.1
    (b"A003 UID EXPUNGE 3000:3002\r\n", [UIDExpungeCommand("A003", S("3000:3002"))]),
    # RFC 9051 §6.4.4
    (
        b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n',
        [
            SearchCommand(
                "A282",
                AndKey(
                    (
                        FlagKey("\\Flagged"),
                        DateKey("INTERNAL", "SINCE", dt.date(1994, 2, 1)),
                        NotKey(StringKey("FROM", "Smith")),
                    )
                ),
                return_options=frozenset({"MIN", "COUNT"}),
            )
        ],
    ),
    (
        b'A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n',
        [
            SearchCommand(
                "A283",
                AndKey(
                    (
                        FlagKey("\\Flagged"),
                        DateKey("INTERNAL", "SINCE", dt.date(1994, 2, 1)),
                        NotKey(StringKey("FROM", "Smith")),
                    )
                ),
                return_options=frozenset({"ALL"}),
            )
        ],
    ),
    (
        b'A284 SEARCH TEXT "string not in mailbox"\r\n',
        [SearchCommand("A284", StringKey("TEXT", "string not in mailbox"))],
    ),
    (
        b"A285 SEARCH CHARSET UTF-8 TEXT {12}\r\n" + "отпуск".encode() + b"\r\n",
        [
            ContinuationRequest("A285", "SEARCH", 12),
            SearchCommand("A285", StringKey("TEXT", "отпуск"), charset="UTF-8"),
        ],
    ),
    (
        b"A286 SEARCH CHARSET iso-8859-1 SUBJECT {4+}\r\ncaf\xe9\r\n",
        [SearchCommand("A286", StringKey("SUBJECT", "café"), charset="ISO-8859-1")],
    ),
    (
        b"A301 UID SEARCH UID $ SMALLER 4096\r\n",
        [
            SearchCommand(
                "A301",
                AndKey((UIDKey(SeqSet.last_result()), SizeKey(False, 4096))),
                uid=True,
            )
        ],
    ),
    (
        b"A282 SEARCH RETURN (SAVE) FLAGGED\r\n",
        [SearchCommand("A282", FlagKey("\\Flagged"), return_options=frozenset({"SAVE"}))],
    ),
    # RFC 7162 §3.1.5
    (
        b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n',
        [SearchCommand("a", ModSeqKey(620162338, "/flags/\\draft", "all"))],
    ),
    (
        b"t UID SEARCH OR (FROM a TO b) HEADER X-Spam yes UNKEYWORD $Junk LARGER 100"
        b' UID 1:* 2,4:7 NEW OLD RECENT UNDRAFT DRAFT SENTBEFORE "1-Feb-1994" SENTON'
        b" 2-Feb-1994 SENTSINCE 3-Feb-1994 BEFORE 4-Feb-1994 ON 5-Feb-1994 BCC c CC d"
        b" SUBJECT e BODY f ANSWERED UNANSWERED DELETED UNDELETED FLAGGED UNFLAGGED"
        b" SEEN UNSEEN KEYWORD NIL ALL MODSEQ 0 * $\r\n",
        [
            SearchCommand(
                "t",
                AndKey(
                    (
                        OrKey(
                            AndKey((StringKey("FROM", "a"), StringKey("TO", "b"))),
                            HeaderKey("X-Spam", "yes"),
                        ),
                        FlagKey("$Junk", False),
                        SizeKey(True, 100),
                        UIDKey(S("1:*")),
                        SeqKey(S("2,4:7")),
                        NewKey(),
                        FlagKey("\\Recent", False),
                        FlagKey("\\Recent", True),
                        FlagKey("\\Draft", False),
                        FlagKey("\\Draft", True),
                        DateKey("SENT", "BEFORE", dt.date(1994, 2, 1)),
                        DateKey("SENT", "ON", dt.date(1994, 2, 2)),
                        DateKey("SENT", "SINCE", dt.date(1994, 2, 3)),
                        DateKey("INTERNAL", "BEFORE", dt.date(1994, 2, 4)),
                        DateKey("INTERNAL", "ON", dt.date(1994, 2, 5)),
                        StringKey("BCC", "c"),
                        StringKey("CC", "d"),
                        StringKey("SUBJECT", "e"),
                        StringKey("BODY", "f"),
                        FlagKey("\\Answered", True),
                        FlagKey("\\Answered", False),
                        FlagKey("\\Deleted", True),
                        FlagKey("\\Deleted", False),
                        FlagKey("\\Flagged", True),
                        FlagKey("\\Flagged", False),
                        FlagKey("\\Seen", True),
                        FlagKey("\\Seen", False),
                        FlagKey("NIL", True),
                        AllKey(),
                        ModSeqKey(0),
                        SeqKey(S("*")),
                        SeqKey(SeqSet.last_result()),
                    )
                ),
                uid=True,
            )
        ],
    ),
    # -- FETCH (RFC 9051 §6.4.5) -------------------------------------------------------
    (
        b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
        [
            FetchCommand(
                "A654",
                S("2:4"),
                (
                    Attr.FLAGS,
                    BodySection(Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
                ),
            )
        ],
    ),
    (b"a003 fetch 12 full\r\n", [FetchCommand("a003", S("12"), MACROS["FULL"])]),
    (b"a1 FETCH 1:* ALL\r\n", [FetchCommand("a1", S("1:*"), MACROS["ALL"])]),
    (b"a2 FETCH * fast\r\n", [FetchCommand("a2", S("*"), MACROS["FAST"])]),
    (
        b"a004 fetch 12 body[header]\r\n",
        [FetchCommand("a004", S("12"), (BodySection(Section((), "HEADER")),))],
    ),
    (
        b"A283 FETCH $ (UID INTERNALDATE FLAGS RFC822.SIZE)\r\n",
        [
            FetchCommand(
                "A283",
                SeqSet.last_result(),
                (Attr.UID, Attr.INTERNALDATE, Attr.FLAGS, Attr.RFC822_SIZE),
            )
        ],
    ),
    (
        b"a5 UID FETCH 4:2,7 (BODY[] BODY.PEEK[1.2.MIME] body.peek[TEXT]<0.2048>"
        b" BODY[3.HEADER.FIELDS.NOT (Subject X-Y)]<10.20> BINARY[1.2] BINARY.PEEK[]<5.6>"
        b" BINARY.SIZE[3] RFC822 RFC822.HEADER RFC822.TEXT ENVELOPE BODYSTRUCTURE BODY"
        b" MODSEQ BODY[2.TEXT] BODY[4.1]<0.1>)\r\n",
        [
            FetchCommand(
                "a5",
                S("4:2,7"),
                (
                    BodySection(),
                    BodySection(Section((1, 2), "MIME"), peek=True),
                    BodySection(Section((), "TEXT"), Partial(0, 2048), peek=True),
                    BodySection(
                        Section((3,), "HEADER.FIELDS.NOT", ("Subject", "X-Y")), Partial(10, 20)
                    ),
                    BinarySection((1, 2)),
                    BinarySection((), Partial(5, 6), peek=True),
                    BinarySize((3,)),
                    Attr.RFC822,
                    Attr.RFC822_HEADER,
                    Attr.RFC822_TEXT,
                    Attr.ENVELOPE,
                    Attr.BODYSTRUCTURE,
                    Attr.BODY,
                    Attr.MODSEQ,
                    BodySection(Section((2,), "TEXT")),
                    BodySection(Section((4, 1)), Partial(0, 1)),
                ),
                uid=True,
            )
        ],
    ),
    # header names as quoted strings and literals
    (
        b'a6 FETCH 1 BODY.PEEK[HEADER.FIELDS ("From" {7}\r\nSubject)]\r\n',
        [
            ContinuationRequest("a6", "FETCH", 7),
            FetchCommand(
                "a6",
                S("1"),
                (BodySection(Section((), "HEADER.FIELDS", ("From", "Subject")), peek=True),),
            ),
        ],
    ),
    # RFC 7162 §3.1.4.1, §3.2.6
    (
        b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
        [FetchCommand("s100", S("1:*"), (Attr.FLAGS,), uid=True, changed_since=12345)],
    ),
    (
        b"A03 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 20090101000000 VANISHED)\r\n",
        [
            FetchCommand(
                "A03",
                S("1:*"),
                (Attr.FLAGS,),
                uid=True,
                changed_since=20090101000000,
                vanished=True,
            )
        ],
    ),
    # -- STORE / COPY / MOVE (RFC 9051 §6.4.6-8, RFC 7162 §3.1.3) -------------------
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        [StoreCommand("A003", S("2:4"), StoreMode.ADD, ("\\Deleted",))],
    ),
    (
        b"a005 store 12 +flags \\deleted\r\n",
        [StoreCommand("a005", S("12"), StoreMode.ADD, ("\\Deleted",))],
    ),
    (
        b"a6 STORE 1,3 FLAGS.SILENT \\Seen \\ANSWERED $Label1\r\n",
        [
            StoreCommand(
                "a6", S("1,3"), StoreMode.REPLACE, ("\\Seen", "\\Answered", "$Label1"), True
            )
        ],
    ),
    (b"a7 STORE * -FLAGS ()\r\n", [StoreCommand("a7", S("*"), StoreMode.REMOVE, ())]),
    (
        b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n",
        [
            StoreCommand(
                "a103",
                S("6,4,8"),
                StoreMode.ADD,
                ("\\Deleted",),
                silent=True,
                uid=True,
                unchanged_since=12121230045,
            )
        ],
    ),
    (b"A003 COPY 2:4 MEETING\r\n", [CopyCommand("A003", S("2:4"), "MEETING")]),
    (
        b"A004 UID COPY 304,319:320 meeting\r\n",
        [CopyCommand("A004", S("304,319:320"), "meeting", True)],
    ),
    (b"a MOVE 2:4 Trash\r\n", [MoveCommand("a", S("2:4"), "Trash")]),
    (b"a UID MOVE 42:69 foo\r\n", [MoveCommand("a", S("42:69"), "foo", True)]),
    # -- errors: answered, and the next command still parses ------------------------
    (
        b"A044 BLURDYBLOOP\r\n",
        [CommandError("A044", "Unknown command BLURDYBLOOP", command="BLURDYBLOOP")],
    ),
    (
        b"x1 SELECT\r\n",
        [
            CommandError(
                "x1",
                "Expected a space before the mailbox name, got the end of the command",
                command="SELECT",
            )
        ],
    ),
    (
        b"* NOOP\r\n",
        [CommandError(None, "Missing or invalid command tag", command="NOOP")],
    ),
    (
        b'x2 APPEND INBOX "bad-date" {3+}\r\nabc\r\n',
        [
            CommandError(
                "x2",
                'Invalid date-time (expected "dd-Mon-yyyy hh:mm:ss +zzzz")',
                command="APPEND",
            )
        ],
    ),
    (
        b"x3 SELECT foo {3}\r\n",
        [
            CommandError(
                "x3", 'Expected "(" to start SELECT parameters, got a literal', command="SELECT"
            )
        ],
    ),
    (
        b"x4 SELECT ~{3+}\r\nabc\r\n",
        [
            CommandError(
                "x4",
                "literal8 (~{n}) is only allowed for APPEND message data",
                command="SELECT",
            )
        ],
    ),
    (b"x5 NOOP\r\n", [NoopCommand("x5")]),
]


def feed_bytewise(data: bytes) -> list[Event]:
    r = IMAPReceiver()
    out: list[Event] = []
    for i in range(len(data)):
        out += r.feed(data[i : i + 1])
    return out


IDS = [data[:40].decode("latin-1").split("\r")[0] for data, _ in CORPUS]


# -- every corpus entry, whole and split ------------------------------------------


@pytest.mark.parametrize(("data", "expected"), CORPUS, ids=IDS)
def test_corpus_whole(data: bytes, expected: list[Event]) -> None:
    r = IMAPReceiver()
    assert r.feed(data) == expected
    assert r.buffered == 0
    assert r.at_command_boundary


@pytest.mark.parametrize(("data", "expected"), CORPUS, ids=IDS)
def test_corpus_byte_at_a_time(data: bytes, expected: list[Event]) -> None:
    assert feed_bytewise(data) == expected


@pytest.mark.parametrize(("data", "expected"), CORPUS, ids=IDS)
def test_corpus_every_two_chunk_split(data: bytes, expected: list[Event]) -> None:
    for cut in range(1, len(data)):
        r = IMAPReceiver()
        events = r.feed(data[:cut]) + r.feed(data[cut:])
        assert events == expected, f"split at {cut}"


def test_corpus_as_one_stream_in_random_chunks() -> None:
    stream = b"".join(data for data, _ in CORPUS)
    expected = [ev for _, evs in CORPUS for ev in evs]
    rng = random.Random(9051)
    for _ in range(20):
        r = IMAPReceiver()
        events: list[Event] = []
        i = 0
        while i < len(stream):
            n = rng.randint(1, 300)
            events += r.feed(stream[i : i + n])
            i += n
        assert events == expected
