"""ENVELOPE / BODYSTRUCTURE / BODY written out by hand for simple messages.

The values follow RFC 9051 §7.5.2; where the RFC leaves a choice the
expectations are Dovecot 2.3.19's answers (recorded in tests/corpus/).
"""

from __future__ import annotations

import datetime as dt
import json

from mailbag.message import body_from_bodystructure, compute_facts, rev1, wire
from mailbag.message.envelope import envelope
from mailbag.message.headers import parse_fields

US_ASCII = ["charset", "us-ascii"]


def _env(header: bytes) -> list[object]:
    return envelope(parse_fields(header, 0, len(header)))


def test_simple_message() -> None:
    msg = (
        b"Date: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
        b"From: Alice Example <alice@example.org>\r\n"
        b"To: Bob <bob@example.com>, carol@example.com\r\n"
        b"Subject: Lunch\r\n"
        b"Message-ID: <1@example.org>\r\n"
        b"\r\n"
        b"Hi Bob,\r\nsee you.\r\n"
    )
    facts = compute_facts(msg)
    alice = [["Alice Example", None, "alice", "example.org"]]
    assert facts.envelope == [
        "Mon, 2 Sep 2024 10:00:00 +0200",
        "Lunch",
        alice,
        alice,  # RFC 9051 §7.5.2: sender defaults to from
        alice,  # ... and so does reply-to
        [["Bob", None, "bob", "example.com"], [None, None, "carol", "example.com"]],
        None,
        None,
        None,
        "<1@example.org>",
    ]
    # a part with no Content-Type is text/plain; charset=us-ascii, 7bit
    assert facts.bodystructure == [
        "text", "plain", US_ASCII, None, None, "7bit", 19, 2, None, None, None, None
    ]  # fmt: skip
    assert body_from_bodystructure(facts.bodystructure) == [
        "text", "plain", US_ASCII, None, None, "7bit", 19, 2
    ]  # fmt: skip
    assert facts.header_size == msg.index(b"\r\n\r\n") + 4
    assert facts.body_lines == 2
    assert facts.sent_date == dt.datetime(2024, 9, 2, 8, 0, tzinfo=dt.UTC)
    assert facts.header_fields["subject"] == "Lunch"


def test_multipart_alternative_inside_mixed() -> None:
    msg = (
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
        b"--out\r\n"
        b"Content-Type: multipart/alternative; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n"
        b"--in\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"PGI+aDwvYj4=\r\n"
        b"--in--\r\n"
        b"--out\r\n"
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b'Content-Disposition: attachment; filename="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0=\r\n"
        b"--out--\r\n"
    )
    bs = compute_facts(msg).bodystructure
    assert bs == [
        [
            ["text", "plain", ["charset", "utf-8"], None, None, "7bit", 5, 0,
             None, None, None, None],
            ["text", "html", US_ASCII, None, None, "base64", 12, 0, None, None, None, None],
            "alternative", ["boundary", "in"], None, None, None,
        ],
        ["application", "pdf", ["name", "a.pdf"], None, None, "base64", 8, None,
         ["attachment", ["filename", "a.pdf"]], None, None],
        "mixed", ["boundary", "out"], None, None, None,
    ]  # fmt: skip
    assert body_from_bodystructure(bs) == [
        [
            ["text", "plain", ["charset", "utf-8"], None, None, "7bit", 5, 0],
            ["text", "html", US_ASCII, None, None, "base64", 12, 0],
            "alternative",
        ],
        ["application", "pdf", ["name", "a.pdf"], None, None, "base64", 8],
        "mixed",
    ]


def test_message_rfc822_part() -> None:
    inner = b"Subject: inner\r\nFrom: x@y.z\r\n\r\nline1\r\nline2\r\n"
    msg = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--b--\r\n"
    )
    bs = compute_facts(msg).bodystructure
    x = [[None, None, "x", "y.z"]]
    part = bs[0]
    size = len(inner) - 2  # the CRLF before the boundary is not part of the body
    assert part == [
        "message", "rfc822", None, None, None, "7bit", size,
        [None, "inner", x, x, x, None, None, None, None, None],
        ["text", "plain", US_ASCII, None, None, "7bit", 12, 1, None, None, None, None],
        4,
        None, None, None, None,
    ]  # fmt: skip
    assert body_from_bodystructure(part) == [
        "message", "rfc822", None, None, None, "7bit", size,
        [None, "inner", x, x, x, None, None, None, None, None],
        ["text", "plain", US_ASCII, None, None, "7bit", 12, 1],
        4,
    ]  # fmt: skip


def test_envelope_groups_and_routes() -> None:
    env = _env(
        b'From: Team: alice@example.org, "Bob B." <bob@example.org>;\r\n'
        b"To: undisclosed-recipients:;\r\n"
        b"Bcc: <@r1.example,@r2.example:user@example.com>\r\n"
    )
    assert env[2] == [
        [None, None, "Team", None],  # RFC 9051 §7.5.2: group start
        [None, None, "alice", "example.org"],
        ["Bob B.", None, "bob", "example.org"],
        [None, None, None, None],  # group end
    ]
    assert env[5] == [[None, None, "undisclosed-recipients", None], [None, None, None, None]]
    assert env[7] == [[None, "@r1.example,@r2.example", "user", "example.com"]]


def test_envelope_keeps_encoded_words_and_8bit() -> None:
    env = _env(
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"From: =?UTF-8?B?SsO2cmc=?= <j@example.de>\r\n"
        b"To: \xe9t\xe9 <latin1@example.fr>\r\n"
    )
    assert env[1] == "=?utf-8?q?Gr=C3=BC=C3=9Fe?="  # not decoded (RFC 9051 §7.5.2)
    assert env[2] == [["=?UTF-8?B?SsO2cmc=?=", None, "j", "example.de"]]
    name = env[5][0][0]  # type: ignore[index]
    assert wire(name) == b"\xe9t\xe9"  # the raw bytes survive
    assert json.loads(json.dumps(env)) == env


def test_envelope_sender_not_single_and_empty_fields() -> None:
    env = _env(
        b"From: one@example.org, two@example.org\r\n"
        b"Sender: s1@example.org, s2@example.org\r\n"
        b"Reply-To:\r\n"
        b"Subject:\r\n"
        b"Date:\r\n"
    )
    both = [[None, None, "one", "example.org"], [None, None, "two", "example.org"]]
    assert env[0] == ""
    assert env[1] == ""
    assert env[2] == both
    assert env[3] == [[None, None, "s1", "example.org"], [None, None, "s2", "example.org"]]
    assert env[4] == both  # empty Reply-To defaults to From


def test_envelope_broken_addresses_are_filled_in() -> None:
    env = _env(b'To: foo, <>, "unterminated <x@y>\r\nFrom:\r\n')
    assert env[2] is None and env[3] is None and env[4] is None
    assert env[5] == [
        [None, None, "foo", "MISSING_DOMAIN"],
        [None, None, "MISSING_MAILBOX", "MISSING_DOMAIN"],
        [None, None, "MISSING_MAILBOX", "MISSING_DOMAIN"],
    ]


def test_envelope_folding_and_whitespace() -> None:
    env = _env(
        b"Subject:  a\r\n  b\r\n\tc  \r\n"
        b"Message-ID:\r\n <id@x>\r\n"
        b"In-Reply-To: <a@b>\r\n\t<c@d>\r\n"
    )
    assert env[1] == "a b c"  # subject: white space collapsed for humans
    assert env[9] == " <id@x>"  # other strings are only unfolded
    assert env[8] == "<a@b>\t<c@d>"


def test_duplicate_fields() -> None:
    env = _env(b"Subject: one\r\nSubject: two\r\nFrom: a@x\r\nFrom: b@x\r\n")
    assert env[1] == "two"  # the last one wins (as Dovecot)
    assert env[2] == [[None, None, "a", "x"], [None, None, "b", "x"]]  # lists add up


def test_rfc2231_and_content_fields() -> None:
    msg = (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: TEXT/Plain; CHARSET="ISO-8859-1";\r\n'
        b" name*0*=utf-8''%E2%82%AC; name*1=\".txt\"\r\n"
        b"Content-ID: <id@x>\r\n"
        b"Content-Description: a\r\n b\r\n"
        b"Content-Language: en, de\r\n"
        b"Content-Location: http://x/y\r\n"
        b"Content-MD5: abc=\r\n"
        b"Content-Disposition: Inline; filename*=utf-8''%E2%82%AC.txt\r\n"
        b"\r\nx"
    )
    bs = compute_facts(msg).bodystructure
    assert bs == [
        "TEXT", "Plain", ["CHARSET", "ISO-8859-1", "name*", "utf-8''%E2%82%AC.txt"],
        "<id@x>", "a b", "7bit", 1, 0, "abc=",
        ["Inline", ["filename*", "utf-8''%E2%82%AC.txt"]], ["en", "de"], "http://x/y",
    ]  # fmt: skip


def test_message_global_and_rev1() -> None:
    inner = "Subject: Grüße\r\nFrom: jörg@bücher.example\r\n\r\nhallo\r\n".encode()
    msg = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=g\r\n\r\n"
        b"--g\r\nContent-Type: message/global\r\n\r\n" + inner + b"--g--\r\n"
    )
    bs = compute_facts(msg).bodystructure
    part = bs[0]
    assert part[:2] == ["message", "global"]
    assert part[7][1] == "Grüße"  # RFC 9051: envelope of the encapsulated message
    old = rev1(bs)  # RFC 3501 has no message/global: a basic part there
    assert old[0] == [*part[:7], None, None, None, None]
    assert old[1:] == bs[1:]
    assert rev1(body_from_bodystructure(bs))[0] == part[:7]


def test_digest_defaults_to_message_rfc822() -> None:
    msg = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\nSubject: one\r\n\r\nbody\r\n--d--\r\n"
    )
    part = compute_facts(msg).bodystructure[0]
    assert part[:2] == ["message", "rfc822"]  # RFC 2046 §5.1.5
    assert part[7][1] == "one"


def test_facts_are_json_compatible() -> None:
    msg = b'Subject: \xff\xfe\r\nContent-Type: text/plain; name="\xe9"\r\n\r\nx'
    facts = compute_facts(msg)
    for value in (facts.envelope, facts.bodystructure, facts.parts):
        assert json.loads(json.dumps(value)) == value
    assert wire(facts.envelope[1]) == b"\xff\xfe"
