"""Command grammar: invalid forms get a tagged BAD, plus the finer points of valid ones.

Valid forms of every command are in test_imap_corpus.py.
"""

from __future__ import annotations

import pytest

from mailbag.proto.imap.commands import (
    AppendCommand,
    ListCommand,
    LoginCommand,
    NoopCommand,
    SearchCommand,
    SelectCommand,
    StoreCommand,
    StoreMode,
)
from mailbag.proto.imap.grammar import ParseError, parse_line
from mailbag.proto.imap.receiver import CommandError, IMAPReceiver
from mailbag.proto.imap.search import FlagKey, StringKey
from mailbag.proto.imap.seqset import SeqSet

INVALID = [
    # (command line, a fragment of the error text)
    (b"a CAPABILITY now", "end of the CAPABILITY command"),
    (b"a NOOP ", "end of the NOOP command"),
    (b"a  NOOP", "command name"),
    (b"a SELECT a b", "SELECT parameters"),
    (b"a SELECT (CONDSTORE)", "mailbox name"),
    (b"a SELECT INBOX (FOO)", "Unknown SELECT parameter FOO"),
    (b"a SELECT INBOX (CONDSTORE CONDSTORE)", "Duplicate"),
    (b"a SELECT INBOX (QRESYNC (0 1))", "UIDVALIDITY"),
    (b"a SELECT INBOX (QRESYNC (1 2 1:*))", '"*" is not allowed'),
    (b"a SELECT INBOX (QRESYNC (1 2 1:5 (1:2)))", "known UID set"),
    (b"a SELECT &Jjo", "modified UTF-7"),
    (b"a SELECT &AGE-", "modified UTF-7"),  # "a" must not be base64 (RFC 3501 §5.1.3)
    (b"a SELECT &U,BTFw-&ZeVnLIqe-", "modified UTF-7"),  # RFC 3501 §5.1.3 example
    (b"a SELECT foo\\bar", "Invalid characters"),
    (b"a SELECT fo%", "Invalid characters"),
    (b'a LOGIN "\xff" pw', "not valid UTF-8"),
    (b"a LOGIN onlyuser", "password"),
    (b"a LOGIN us*er pw", "Invalid characters in a user name"),
    (b"a LOGIN us\xc3\xa4r pw", "8-bit characters"),
    (b'a LOGIN "unterminated pw', "quoted string"),
    (b'a LOGIN "bad \\n escape" pw', "quoted string"),
    (b"a AUTHENTICATE", "SASL mechanism"),
    (b"a AUTHENTICATE PLAIN !!!", "base64"),
    (b"a AUTHENTICATE PLAIN AGF", "base64"),
    (b"a ENABLE", "capability name"),
    (b"a CREATE foo (USE (Drafts))", "special-use"),
    (b"a CREATE foo (FOO)", "Unknown CREATE parameter"),
    (b"a RENAME a b (X)", "RENAME parameters"),
    (b'a LIST (RECURSIVEMATCH) "" *', "RECURSIVEMATCH"),
    (b'a LIST (REMOTE RECURSIVEMATCH) "" *', "RECURSIVEMATCH"),  # RFC 9051 §6.3.9
    (b'a LIST (FOO) "" *', "Unknown LIST selection option FOO"),
    (b'a LIST "" * RETURN (FOO)', "Unknown LIST return option FOO"),
    (b'a LIST "" * FOO (CHILDREN)', "RETURN"),
    (b'a LIST "" ()', "mailbox pattern"),
    (b"a LIST", "LIST arguments"),
    (b'a LSUB "" * x', "end of the LSUB command"),
    (b"a STATUS INBOX ()", "status item"),
    (b"a STATUS INBOX (FOO)", "Unknown status item FOO"),
    (b"a STATUS INBOX MESSAGES", "status items"),
    (b"a APPEND INBOX", "message"),
    (b"a APPEND INBOX (\\Seen)", "message"),
    (b'a APPEND INBOX "hello"', "date-time"),
    (b'a APPEND INBOX "31-Feb-2020 00:00:00 +0000"', "date-time"),
    (b"a APPEND INBOX hello", "message as a literal"),
    (b"a FETCH 0 FLAGS", "sequence set"),
    (b"a FETCH 4294967296 FLAGS", "sequence set"),
    (b"a FETCH 1,$ FLAGS", "sequence set"),
    (b"a FETCH 1: FLAGS", "sequence set"),
    (b"a FETCH 1 (FLAGS", "fetch items"),
    (b"a FETCH 1 FLAGS)", "Unbalanced"),
    (b"a FETCH 1 (ALL)", "Unknown fetch item ALL"),  # macros stand alone (RFC 9051 §6.4.5)
    (b"a FETCH 1 FOO", "Unknown fetch item FOO"),
    (b"a FETCH 1 BODY[HEADER.FIELDS]", "HEADER.FIELDS"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "header field name"),
    (b"a FETCH 1 BODY[HEADER.FIELDS (a:b)]", "header field name"),
    (b"a FETCH 1 BODY[MIME]", "fetch section"),  # MIME needs a part number
    (b"a FETCH 1 BODY[1.]", "fetch section"),
    (b"a FETCH 1 BODY[0]", "fetch section"),
    (b"a FETCH 1 BODY[1.0.2]", "fetch section"),
    (b"a FETCH 1 BODY[TEXT.1]", "fetch section"),
    (b"a FETCH 1 BODY[]<0.0>", "Partial"),
    (b"a FETCH 1 BODY[]<5>", "partial"),
    (b"a FETCH 1 BODY[", '"]"'),
    (b"a FETCH 1 BINARY[HEADER]", "part numbers only"),
    (b"a FETCH 1 BINARY.SIZE[1]<0.5>", "BINARY.SIZE"),
    (b"a FETCH 1 BODY.PEEK", "Unknown fetch item"),
    (b"a FETCH 1 FLAGS (FOO)", "Unknown FETCH modifier"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", "VANISHED"),  # RFC 7162 §3.2.6
    (b"a UID FETCH 1 FLAGS (VANISHED)", "VANISHED"),
    (b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "Duplicate"),
    (b"a STORE 1 FLAGS \\*", "Invalid flag"),
    (b"a STORE 1 FLAGS (\\Seen \\*)", "Invalid flag"),
    (b"a STORE 1 XFLAGS (\\Seen)", "FLAGS, +FLAGS or -FLAGS"),
    (b"a STORE 1 (UNCHANGEDSINCE) FLAGS ()", "mod-sequence"),
    (b"a STORE 1 (FOO 1) FLAGS ()", "Unknown STORE modifier"),
    (b"a STORE 1 +FLAGS (\\Seen", "flag list"),
    (b"a STORE 1 +FLAGS", "flags"),
    (b"a COPY 1", "mailbox name"),
    (b"a MOVE 1:2", "mailbox name"),
    (b"a UID FOO 1", "Unknown UID command FOO"),
    (b"a UID", "UID subcommand"),
    (b"a UID EXPUNGE", "UID set"),
    (b"a SEARCH", "search criteria"),
    (b"a SEARCH FOO", "Unknown search key FOO"),
    (b"a SEARCH ()", "search key"),
    (b"a SEARCH NOT", "negated key"),
    (b"a SEARCH OR ALL", "second OR key"),
    (b"a SEARCH BEFORE 30-Feb-2020", "Invalid date"),
    (b"a SEARCH BEFORE 1-Foo-2020", "Invalid date"),
    (b"a SEARCH SINCE 1-Feb-94", "Invalid date"),
    (b"a SEARCH RETURN (FOO) ALL", "Unknown SEARCH return option FOO"),
    (b"a SEARCH LARGER x", "size"),
    (b"a SEARCH LARGER 99999999999999999999", "size"),
    (b"a SEARCH KEYWORD \\Seen", "keyword"),
    (b'a SEARCH MODSEQ "/flags/x" bogus 5', "priv, shared or all"),
    (b"a SEARCH CHARSET UTF-8", "search criteria"),
    (b"a SEARCH CHARSET US-ASCII FROM {3+}\r\n\xe4\xe4\xe4", "not valid US-ASCII"),
    (b"a FROB", "Unknown command FROB"),
]


@pytest.mark.parametrize(
    ("line", "fragment"), INVALID, ids=[i[0].decode("latin-1") for i in INVALID]
)
def test_invalid_command_gets_tagged_bad_and_parsing_continues(line: bytes, fragment: str) -> None:
    r = IMAPReceiver()
    events = r.feed(line + b"\r\nb NOOP\r\n")
    assert len(events) == 2, events
    err = events[0]
    assert isinstance(err, CommandError)
    assert (err.tag, err.status) == ("a", "BAD")
    assert fragment in err.text
    assert events[1] == NoopCommand("b")


def test_unknown_search_charset_is_no_badcharset() -> None:
    # RFC 9051 §6.4.4: an unsupported charset is a NO with BADCHARSET, not BAD.
    (err,) = IMAPReceiver().feed(b"a SEARCH CHARSET X-UNKNOWN TEXT a\r\n")
    assert isinstance(err, CommandError)
    assert (err.tag, err.status, err.code) == ("a", "NO", "BADCHARSET (US-ASCII UTF-8)")


def test_inbox_is_case_insensitive_in_every_string_form() -> None:
    # RFC 9051 §5.1 / §9 `mailbox`
    r = IMAPReceiver()
    events = r.feed(b'a SELECT inBOX\r\nb SELECT "Inbox"\r\nc SELECT {5+}\r\niNbOx\r\n')
    assert [e.mailbox for e in events if isinstance(e, SelectCommand)] == ["INBOX"] * 3
    # … but only the whole name: children keep their spelling here.
    assert parse_line(b"d SELECT inbox/Sub") == SelectCommand("d", "inbox/Sub")


def test_utf8_names_when_enabled() -> None:
    r = IMAPReceiver(utf8_names=True)
    events = r.feed(
        b'a SELECT "Entw\xc3\xbcrfe"\r\n'
        b"b SELECT {4+}\r\n\xe6\x97\xa5x\r\n"
        b'c LIST "" "Entw\xc3\xbc*"\r\n'
        b'd SELECT "\xff"\r\n'
    )
    assert events[0] == SelectCommand("a", "Entwürfe")
    assert events[1] == SelectCommand("b", "日x")
    assert isinstance(events[2], ListCommand) and events[2].patterns == ("Entwü*",)
    assert isinstance(events[3], CommandError) and "UTF-8" in events[3].text


def test_list_patterns_are_modified_utf7_in_rev1() -> None:
    cmd = parse_line(b'a LIST "" &AOQ-%')
    assert isinstance(cmd, ListCommand) and cmd.patterns == ("ä%",)
    assert not cmd.extended  # RFC 9051 §6.3.9: the basic syntax


def test_keywords_named_like_nil() -> None:
    # RFC 9051 §4.5: NIL is never an atom's meaning; a keyword may be called NIL.
    assert parse_line(b"a STORE 1 +FLAGS (NIL \\seen)") == StoreCommand(
        "a", SeqSet.parse("1"), StoreMode.ADD, ("NIL", "\\Seen")
    )
    cmd = parse_line(b"a SEARCH KEYWORD NIL")
    assert isinstance(cmd, SearchCommand) and cmd.criteria == FlagKey("NIL")
    # A mailbox called NIL, in atom form.
    assert parse_line(b"a SELECT NIL") == SelectCommand("a", "NIL")


def test_flag_extensions_and_system_flag_case() -> None:
    cmd = parse_line(b"a STORE 1 FLAGS (\\DELETED \\Recent \\X-Custom $MDNSent)")
    assert isinstance(cmd, StoreCommand)
    # \Recent is syntactically a flag-extension; the session refuses to set it.
    assert cmd.flags == ("\\Deleted", "\\Recent", "\\X-Custom", "$MDNSent")


def test_astring_atoms_may_contain_close_bracket() -> None:
    # RFC 9051 §9: ASTRING-CHAR = ATOM-CHAR / "]"
    assert parse_line(b"a LOGIN user] p]w") == LoginCommand("a", "user]", "p]w")


def test_search_with_empty_return_is_esearch_all() -> None:
    cmd = parse_line(b"a UID SEARCH RETURN () ALL")
    assert isinstance(cmd, SearchCommand)
    assert cmd.uid and cmd.return_options == frozenset({"ALL"})
    plain = parse_line(b"b SEARCH FROM x")
    assert isinstance(plain, SearchCommand) and plain.return_options is None
    assert plain.criteria == StringKey("FROM", "x")


def test_append_with_literal_mailbox_and_literal8_marker_positions() -> None:
    r = IMAPReceiver()
    events = r.feed(b"a APPEND {5+}\r\nDraft (\\Draft) ~{2+}\r\n\x00\x01\r\n")
    (cmd,) = events
    assert isinstance(cmd, AppendCommand)
    assert cmd.mailbox == "Draft"
    assert cmd.messages[0].flags == ("\\Draft",) and cmd.messages[0].data == b"\x00\x01"


def test_parse_line_rejects_unbalanced_parentheses() -> None:
    with pytest.raises(ParseError):
        parse_line(b"a FETCH 1 (FLAGS")
