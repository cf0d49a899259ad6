"""IMAP mailbox commands over real sockets: CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB,
NAMESPACE and STATUS, in IMAP4rev1 and after ENABLE IMAP4rev2.

One server is shared by the module; every test logs in as a fresh user so the
tests do not see each other's mailboxes.
"""

from __future__ import annotations

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
    transcript,
)

from mailbag.store.models import AppendRequest
from mailbag.testing.server import ServerThread

DEFAULTS_LIST = """
S: * LIST (\\HasNoChildren) "/" INBOX
S: * LIST (\\HasNoChildren \\Archive) "/" Archive
S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
S: * LIST (\\HasNoChildren \\Junk) "/" Junk
S: * LIST (\\HasNoChildren \\Sent) "/" Sent
S: * LIST (\\HasNoChildren \\Trash) "/" Trash
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with server(tmp_path_factory.mktemp("mailboxes"), users={}) as s:
        yield s


@pytest.fixture
def user(srv: ServerThread) -> str:
    return fresh_user(srv)


@pytest.fixture(params=["rev1", "rev2"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def login(srv: ServerThread, user: str, rev2: bool = False) -> Client:
    return connect(srv, user, rev2=rev2)


# ---- CREATE -----------------------------------------------------------------------------


def test_create_makes_missing_parents(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.4: creating foo/bar/zap SHOULD create foo and foo/bar."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a CREATE a/b/c
            S: a OK Create completed.
            C: b LIST "" "a*"
            S: * LIST (\\HasChildren) "/" a
            S: * LIST (\\HasChildren) "/" a/b
            S: * LIST (\\HasNoChildren) "/" a/b/c
            S: b OK List completed.
            C: c SELECT a/b
            S~ .* FLAGS .*
            """,
        )
    assert {"a", "a/b", "a/b/c"} <= set(mailbox_names(srv, user))


def test_create_trailing_separator_is_stripped(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.4: a trailing separator declares intent to create children;
    the name created is without it."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE owatagusiam/
            S: a OK Create completed.
            C: b CREATE owatagusiam/blurdybloop
            S: b OK Create completed.
            C: c LIST "" "owa*"
            S: * LIST (\\HasChildren) "/" owatagusiam
            S: * LIST (\\HasNoChildren) "/" owatagusiam/blurdybloop
            S: c OK List completed.
            C: d CREATE owatagusiam/
            S: d NO [ALREADYEXISTS] Mailbox already exists
            """,
        )


def test_create_errors(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.4: creating INBOX (any case) or an existing name fails with
    [ALREADYEXISTS] (RFC 5530); names the server refuses get [CANNOT]:
    wildcards, a leading separator, empty levels, control characters, and our
    limits of 255 octets per level and 1024 per name."""
    long_level = "x" * 256
    long_name = "/".join(["y" * 200] * 6)
    with login(srv, user) as c:
        transcript(
            c,
            f"""
            C: a CREATE INBOX
            S: a NO [ALREADYEXISTS] Mailbox already exists
            C: b CREATE inBox
            S: b NO [ALREADYEXISTS] Mailbox already exists
            C: c CREATE Drafts
            S: c NO [ALREADYEXISTS] Mailbox already exists
            C: d CREATE "a*b"
            S: d NO [CANNOT] Invalid mailbox name: Contains the wildcards '*' or '%'
            C: e CREATE "a%b"
            S: e NO [CANNOT] Invalid mailbox name: Contains the wildcards '*' or '%'
            C: f CREATE /lead
            S: f NO [CANNOT] Invalid mailbox name: Begins with hierarchy separator
            C: g CREATE a//b
            S: g NO [CANNOT] Invalid mailbox name: Has adjacent hierarchy separators
            C: h CREATE ""
            S: h NO [CANNOT] Invalid mailbox name: Name is empty
            C: i CREATE "tab&AAk-here"
            S: i NO [CANNOT] Invalid mailbox name: Contains control characters
            C: j CREATE {long_level}
            S: j NO [CANNOT] Invalid mailbox name: A level is longer than 255 octets
            C: k CREATE {long_name}
            S: k NO [CANNOT] Invalid mailbox name: Longer than 1024 octets
            C: l CREATE {"x" * 255}
            S: l OK Create completed.
            """,
        )
    assert not any(name.startswith(("a", "/")) for name in mailbox_names(srv, user))


def test_create_inbox_child_is_case_insensitive(srv: ServerThread, user: str) -> None:
    """RFC 9051 §5.1: INBOX is case-insensitive, also as a hierarchy prefix."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE inbox/sub
            S: a OK Create completed.
            C: b LIST "" "INBOX*"
            S: * LIST (\\HasChildren) "/" INBOX
            S: * LIST (\\HasNoChildren) "/" INBOX/sub
            S: b OK List completed.
            """,
        )


def test_create_special_use(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 6154 §3: CREATE with USE; an attribute the server cannot create (or
    a combination) gets NO [USEATTR]. \\All and \\Flagged would need virtual
    mailboxes."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a CREATE MyDrafts (USE (\\Drafts))
            S: a OK Create completed.
            C: b CREATE Other (USE (\\Bogus))
            S: b NO [USEATTR] Unsupported special-use attribute \\Bogus
            C: c CREATE Other (USE (\\All))
            S: c NO [USEATTR] Unsupported special-use attribute \\All
            C: d CREATE Other (USE (\\Sent \\Trash))
            S: d NO [USEATTR] Only one special-use attribute per mailbox
            C: e LIST "" "My*"
            S: * LIST (\\HasNoChildren \\Drafts) "/" MyDrafts
            S: e OK List completed.
            C: f LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)
            S: * LIST (\\HasNoChildren \\Archive) "/" Archive
            S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
            S: * LIST (\\HasNoChildren \\Junk) "/" Junk
            S: * LIST (\\HasNoChildren \\Drafts) "/" MyDrafts
            S: * LIST (\\HasNoChildren \\Sent) "/" Sent
            S: * LIST (\\HasNoChildren \\Trash) "/" Trash
            S: f OK List completed.
            """,
        )
    assert "Other" not in mailbox_names(srv, user)


def test_utf8_names_mutf7_in_rev1_utf8_in_rev2(srv: ServerThread, user: str) -> None:
    """RFC 3501 §5.1.3: rev1 names are modified UTF-7; RFC 9051 §5.1: rev2
    names are UTF-8 (and must be NFC, so a decomposed name is refused)."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE "&AMk-t&AOk-"
            S: a OK Create completed.
            C: b LIST "" "&AMk-*"
            S: * LIST (\\HasNoChildren) "/" &AMk-t&AOk-
            S: b OK List completed.
            """,
        )
    assert "Été" in mailbox_names(srv, user)
    with login(srv, user, rev2=True) as c:
        c.send('b LIST "" "Ét*"\r\n'.encode())
        # 8-bit names are quoted strings: an atom is ASCII only (RFC 9051 §9).
        assert c.line() == '* LIST (\\HasNoChildren) "/" "Été"'
        assert c.line() == "b OK List completed."
        c.send('c CREATE "Cafe\u0301"\r\n'.encode())
        assert c.line() == "c NO [CANNOT] Invalid mailbox name: Not in Unicode normalization form C"
        c.send('d CREATE "Café"\r\n'.encode())
        assert c.line() == "d OK Create completed."
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: e LIST "" "Caf*"
            S: * LIST (\\HasNoChildren) "/" Caf&AOk-
            S: e OK List completed.
            """,
        )


# ---- DELETE -----------------------------------------------------------------------------


def test_delete(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.5: DELETE removes the mailbox; INBOX cannot be deleted
    ([CANNOT]); a missing name gets [NONEXISTENT] (RFC 5530)."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a CREATE gone
            S: a OK Create completed.
            C: b DELETE gone
            S: b OK Delete completed.
            C: c DELETE gone
            S: c NO [NONEXISTENT] Mailbox doesn't exist: gone
            C: d DELETE INBOX
            S: d NO [CANNOT] INBOX can't be deleted.
            C: e DELETE inbox
            S: e NO [CANNOT] INBOX can't be deleted.
            C: f LIST "" "gone"
            S: f OK List completed.
            """,
        )


def test_delete_with_children_keeps_them(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.5: deleting a mailbox with inferiors keeps them and the
    name becomes \\Noselect (Dovecot does the same); deleting that \\Noselect
    name while it has inferiors is an error: NO [HASCHILDREN] (RFC 9051 §7.1)."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE p/q
            S: a OK Create completed.
            C: b DELETE p
            S: b OK Delete completed.
            C: c LIST "" "p*"
            S: * LIST (\\Noselect \\HasChildren) "/" p
            S: * LIST (\\HasNoChildren) "/" p/q
            S: c OK List completed.
            C: d SELECT p
            S: d NO [NONEXISTENT] Mailbox doesn't exist: p
            C: e DELETE p
            S: e NO [HASCHILDREN] Mailbox has children, delete them first
            C: f DELETE p/q
            S: f OK Delete completed.
            C: g LIST "" "p*"
            S: g OK List completed.
            C: h CREATE p/q
            S: h OK Create completed.
            C: i LIST "" "p"
            S: * LIST (\\HasChildren) "/" p
            S: i OK List completed.
            """,
        )


def test_delete_keeps_subscription(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.7: the server SHOULD NOT remove a name from the
    subscriptions when the mailbox goes; LIST (SUBSCRIBED) then shows it
    \\NonExistent (RFC 9051 §6.3.9.1, §7.3.1)."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE r
            S: a OK Create completed.
            C: b SUBSCRIBE r
            S: b OK Subscribe completed.
            C: c DELETE r
            S: c OK Delete completed.
            C: d LIST (SUBSCRIBED) "" "r"
            S: * LIST (\\NonExistent \\Subscribed \\HasNoChildren) "/" r
            S: d OK List completed.
            C: e LSUB "" "r"
            S: * LSUB () "/" r
            S: e OK Lsub completed.
            C: f LIST "" "r"
            S: f OK List completed.
            """,
        )


def test_delete_selected_mailbox_of_other_session(srv: ServerThread, user: str) -> None:
    """RFC 9051 §7.1.5: a session whose selected mailbox was deleted gets BYE
    (Dovecot: "Selected mailbox was deleted, have to disconnect"); in IDLE at
    once, otherwise with its next command."""
    with login(srv, user) as c1, login(srv, user) as c2, login(srv, user) as c3:
        c1.command("a CREATE work")
        assert c2.command("s SELECT work")[-1].startswith("s OK")
        assert c3.command("s SELECT work")[-1].startswith("s OK")
        transcript(
            {"C1": c1, "C2": c2, "C3": c3},
            """
            C3: i IDLE
            S3: + idling
            C1: d DELETE work
            S1: d OK Delete completed.
            S3: * BYE Selected mailbox was deleted, have to disconnect
            S3: <closed>
            C2: n NOOP
            S2: * BYE Selected mailbox was deleted, have to disconnect
            S2~ n OK .*
            S2: <closed>
            """,
        )


def test_delete_own_selected_mailbox(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.5 / §7.1.5: deleting the mailbox this session has selected
    succeeds; the session then ends with BYE, as with Dovecot."""
    with login(srv, user) as c:
        c.command("a CREATE mine")
        c.command("s SELECT mine")
        transcript(
            c,
            """
            C: d DELETE mine
            S: * BYE Selected mailbox was deleted, have to disconnect
            S: d OK Delete completed.
            S: <closed>
            """,
        )


# ---- RENAME -----------------------------------------------------------------------------


def test_rename_moves_children(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.6: renaming a mailbox renames its inferiors too; missing
    parents of the new name are created; UIDVALIDITY stays."""
    with login(srv, user, rev2=mode == "rev2") as c:
        c.command("a CREATE old/kid")
        add_messages(srv, user, "old/kid", [make_message()])
        caps = transcript(
            c,
            """
            C: b STATUS old/kid (UIDVALIDITY MESSAGES)
            S~ \\* STATUS old/kid \\(UIDVALIDITY (?P<uv>\\d+) MESSAGES 1\\)
            S: b OK Status completed.
            C: c RENAME old new/deep/place
            S: c OK Rename completed.
            C: d LIST "" "new*"
            S: * LIST (\\HasChildren) "/" new
            S: * LIST (\\HasChildren) "/" new/deep
            S: * LIST (\\HasChildren) "/" new/deep/place
            S: * LIST (\\HasNoChildren) "/" new/deep/place/kid
            S: d OK List completed.
            C: e STATUS new/deep/place/kid (UIDVALIDITY MESSAGES)
            S: * STATUS new/deep/place/kid (UIDVALIDITY ${uv} MESSAGES 1)
            S: e OK Status completed.
            C: f LIST "" "old*"
            S: f OK List completed.
            """,
        )
        assert caps["uv"]


def test_rename_errors(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.6: renaming to an existing name fails ([ALREADYEXISTS]),
    renaming a missing mailbox fails ([NONEXISTENT]); like Dovecot, a mailbox
    cannot move under its own child, nor be renamed to itself."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE p
            S: a OK Create completed.
            C: b RENAME p Drafts
            S: b NO [ALREADYEXISTS] Target mailbox already exists
            C: c RENAME p p
            S: c NO [ALREADYEXISTS] Can't rename mailbox to itself
            C: d RENAME p p/child
            S: d NO [CANNOT] Can't rename mailbox under its own child
            C: e RENAME nothere q
            S: e NO [NONEXISTENT] Mailbox doesn't exist: nothere
            C: f RENAME p "q*"
            S: f NO [CANNOT] Invalid mailbox name: Contains the wildcards '*' or '%'
            C: g RENAME p inbox
            S: g NO [ALREADYEXISTS] Target mailbox already exists
            C: h RENAME p q/
            S: h OK Rename completed.
            C: i LIST "" "q"
            S: * LIST (\\HasNoChildren) "/" q
            S: i OK List completed.
            # q/x would land on the existing z/q/x: refused before anything changes.
            C: j CREATE q/x
            S: j OK Create completed.
            C: k CREATE z/q/x
            S: k OK Create completed.
            C: l DELETE z/q
            S: l OK Delete completed.
            C: m RENAME q z/q
            S: m NO [ALREADYEXISTS] Target mailbox already exists
            C: n LIST "" "z*"
            S: * LIST (\\HasChildren) "/" z
            S: * LIST (\\Noselect \\HasChildren) "/" z/q
            S: * LIST (\\HasNoChildren) "/" z/q/x
            S: n OK List completed.
            """,
        )


def test_rename_inbox_moves_messages(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.6: renaming INBOX moves all its messages to a new mailbox
    with the given name and leaves INBOX empty; inferiors of INBOX stay."""
    add_messages(srv, user, "INBOX", [make_message("one"), make_message("two")])
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: z CREATE INBOX/kid
            S: z OK Create completed.
            C: a RENAME INBOX old-mail
            S: a OK Rename completed.
            C: b STATUS INBOX (MESSAGES)
            S: * STATUS INBOX (MESSAGES 0)
            S: b OK Status completed.
            C: c STATUS old-mail (MESSAGES)
            S: * STATUS old-mail (MESSAGES 2)
            S: c OK Status completed.
            C: d LIST "" "INBOX*"
            S: * LIST (\\HasChildren) "/" INBOX
            S: * LIST (\\HasNoChildren) "/" INBOX/kid
            S: d OK List completed.
            C: e RENAME INBOX INBOX/older
            S: e OK Rename completed.
            """,
        )
    assert [m.uid for m in store_messages(srv, user, "old-mail")] == [1, 2]


def test_rename_selected_mailbox_of_other_session(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.6: a rename keeps the mailbox (and its UIDs); a session
    that has it selected keeps working on it under the new name."""
    add_messages(srv, user, "before", [make_message()])
    with login(srv, user) as c1, login(srv, user) as c2:
        c2.command("s SELECT before")
        transcript(
            {"C1": c1, "C2": c2},
            """
            C1: r RENAME before after
            S1: r OK Rename completed.
            C2: n NOOP
            S2: n OK NOOP completed.
            C2: t STORE 1 +FLAGS (\\Flagged)
            S2: * 1 FETCH (FLAGS (\\Flagged \\Recent))
            S2: t OK Store completed.
            C1: a APPEND after {3+}
            C1: abc
            S1~ a OK \\[APPENDUID \\d+ 2\\] Append completed.
            C2: m NOOP
            S2: * 2 EXISTS
            S2: * 2 RECENT
            S2: m OK NOOP completed.
            """,
        )


# ---- SUBSCRIBE / UNSUBSCRIBE / LSUB -----------------------------------------------------


def test_subscribe_unsubscribe(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.7, §6.3.8: SUBSCRIBE of a missing mailbox fails (the server
    MAY check; Dovecot does), UNSUBSCRIBE of a name that is not subscribed is
    OK (Dovecot); the \\Subscribed attribute follows."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a SUBSCRIBE nothere
            S: a NO [NONEXISTENT] Mailbox doesn't exist: nothere
            C: b CREATE box
            S: b OK Create completed.
            C: c LIST "" "box" RETURN (SUBSCRIBED)
            S: * LIST (\\HasNoChildren) "/" box
            S: c OK List completed.
            C: d SUBSCRIBE box
            S: d OK Subscribe completed.
            C: e LIST "" "box" RETURN (SUBSCRIBED)
            S: * LIST (\\Subscribed \\HasNoChildren) "/" box
            S: e OK List completed.
            C: f UNSUBSCRIBE box
            S: f OK Unsubscribe completed.
            C: g UNSUBSCRIBE box
            S: g OK Unsubscribe completed.
            C: h LIST (SUBSCRIBED) "" "box"
            S: h OK List completed.
            """,
        )


def test_lsub(srv: ServerThread, user: str) -> None:
    """RFC 3501 §6.3.9: LSUB lists subscribed names; with "%" a subscribed
    foo/bar under an unsubscribed foo returns foo with \\Noselect."""
    with login(srv, user) as c:
        transcript(
            c,
            """
            C: a CREATE foo/bar
            S: a OK Create completed.
            C: b SUBSCRIBE foo/bar
            S: b OK Subscribe completed.
            C: c LSUB "" "f%"
            S: * LSUB (\\Noselect) "/" foo
            S: c OK Lsub completed.
            C: d LSUB "" "foo/%"
            S: * LSUB () "/" foo/bar
            S: d OK Lsub completed.
            C: e LSUB "foo/" "*"
            S: * LSUB () "/" foo/bar
            S: e OK Lsub completed.
            C: f LSUB "" "*"
            S: * LSUB () "/" INBOX
            S: * LSUB (\\Archive) "/" Archive
            S: * LSUB (\\Drafts) "/" Drafts
            S: * LSUB (\\Junk) "/" Junk
            S: * LSUB (\\Sent) "/" Sent
            S: * LSUB (\\Trash) "/" Trash
            S: * LSUB () "/" foo/bar
            S: f OK Lsub completed.
            C: g SUBSCRIBE foo
            S: g OK Subscribe completed.
            C: h LSUB "" "f%"
            S: * LSUB () "/" foo
            S: h OK Lsub completed.
            C: i LSUB "" ""
            S: i OK Lsub completed.
            """,
        )


# ---- LIST ----------------------------------------------------------------------------------


def test_list_delimiter_request(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.9: in the basic syntax an empty pattern asks for the
    delimiter and the root of the reference; in the extended syntax empty
    patterns are ignored."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a LIST "" ""
            S: * LIST (\\Noselect) "/" ""
            S: a OK List completed.
            C: b LIST "a/b/c" ""
            S: * LIST (\\Noselect) "/" a/
            S: b OK List completed.
            C: c LIST "foo" ""
            S: * LIST (\\Noselect) "/" ""
            S: c OK List completed.
            C: d LIST () "" ""
            S: d OK List completed.
            C: e LIST "" ("")
            S: e OK List completed.
            """,
        )


def test_list_wildcards(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.9: "*" matches across levels, "%" within one; "%" at the
    end also returns levels of hierarchy. \\HasChildren/\\HasNoChildren are
    always sent (RFC 9051 §6.3.9.5 allows it; Dovecot does)."""
    with login(srv, user, rev2=mode == "rev2") as c:
        c.command("a CREATE w/x/y")
        c.command("b CREATE w2")
        transcript(
            c,
            f"""
            C: c LIST "" "*"
            {DEFAULTS_LIST}
            S: * LIST (\\HasChildren) "/" w
            S: * LIST (\\HasChildren) "/" w/x
            S: * LIST (\\HasNoChildren) "/" w/x/y
            S: * LIST (\\HasNoChildren) "/" w2
            S: c OK List completed.
            C: d LIST "" "%"
            {DEFAULTS_LIST}
            S: * LIST (\\HasChildren) "/" w
            S: * LIST (\\HasNoChildren) "/" w2
            S: d OK List completed.
            C: e LIST "" "w/%"
            S: * LIST (\\HasChildren) "/" w/x
            S: e OK List completed.
            C: f LIST "" "w%"
            S: * LIST (\\HasChildren) "/" w
            S: * LIST (\\HasNoChildren) "/" w2
            S: f OK List completed.
            C: g LIST "" "%/%/y"
            S: * LIST (\\HasNoChildren) "/" w/x/y
            S: g OK List completed.
            C: h LIST "" "nothing*"
            S: h OK List completed.
            """,
        )


def test_list_reference(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.9: the canonical pattern is the reference with the
    pattern appended (no break-out characters here)."""
    with login(srv, user) as c:
        c.command("a CREATE archive/2024/q1")
        transcript(
            c,
            """
            C: b LIST "archive/" "%"
            S: * LIST (\\HasChildren) "/" archive/2024
            S: b OK List completed.
            C: c LIST "archive/" "*"
            S: * LIST (\\HasChildren) "/" archive/2024
            S: * LIST (\\HasNoChildren) "/" archive/2024/q1
            S: c OK List completed.
            C: d LIST "archive" "/2024"
            S: * LIST (\\HasChildren) "/" archive/2024
            S: d OK List completed.
            """,
        )


def test_list_inbox_case_insensitive(srv: ServerThread, user: str) -> None:
    """RFC 9051 §5.1, §6.3.9: INBOX matches whatever its case in the pattern."""
    with login(srv, user) as c:
        c.command("a CREATE INBOX/child")
        transcript(
            c,
            """
            C: b LIST "" "inbox"
            S: * LIST (\\HasChildren) "/" INBOX
            S: b OK List completed.
            C: c LIST "" "InBoX/%"
            S: * LIST (\\HasNoChildren) "/" INBOX/child
            S: c OK List completed.
            C: d LIST "" "inb*"
            S: * LIST (\\HasChildren) "/" INBOX
            S: * LIST (\\HasNoChildren) "/" INBOX/child
            S: d OK List completed.
            """,
        )


def test_list_multiple_patterns(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.9: the extended syntax takes several patterns; each name
    is listed once."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a LIST "" ("INBOX" "Dr*" "D%")
            S: * LIST (\\HasNoChildren) "/" INBOX
            S: * LIST (\\HasNoChildren \\Drafts) "/" Drafts
            S: a OK List completed.
            """,
        )


def test_list_subscribed_selection(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 9051 §6.3.9.1: SUBSCRIBED lists subscribed names (even missing ones,
    \\NonExistent), implies the SUBSCRIBED return option; RECURSIVEMATCH adds
    parents with CHILDINFO (§6.3.9.6) for subscribed descendants the pattern
    does not reach; REMOTE changes nothing here."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a CREATE Fruit/Banana
            S: a OK Create completed.
            C: b CREATE Fruit/Peach
            S: b OK Create completed.
            C: c CREATE Tofu
            S: c OK Create completed.
            C: d SUBSCRIBE Fruit/Banana
            S: d OK Subscribe completed.
            C: e SUBSCRIBE Fruit/Peach
            S: e OK Subscribe completed.
            C: f DELETE Fruit/Peach
            S: f OK Delete completed.
            C: g LIST (SUBSCRIBED) "" "Fruit/*"
            S: * LIST (\\Subscribed \\HasNoChildren) "/" Fruit/Banana
            S: * LIST (\\NonExistent \\Subscribed \\HasNoChildren) "/" Fruit/Peach
            S: g OK List completed.
            C: h LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
            S: * LIST (\\Subscribed \\HasNoChildren) "/" INBOX
            S: * LIST (\\Subscribed \\HasNoChildren \\Archive) "/" Archive
            S: * LIST (\\Subscribed \\HasNoChildren \\Drafts) "/" Drafts
            S: * LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))
            S: * LIST (\\Subscribed \\HasNoChildren \\Junk) "/" Junk
            S: * LIST (\\Subscribed \\HasNoChildren \\Sent) "/" Sent
            S: * LIST (\\Subscribed \\HasNoChildren \\Trash) "/" Trash
            S: h OK List completed.
            C: i LIST (SUBSCRIBED RECURSIVEMATCH) "" "Fruit*"
            S: * LIST (\\Subscribed \\HasNoChildren) "/" Fruit/Banana
            S: * LIST (\\NonExistent \\Subscribed \\HasNoChildren) "/" Fruit/Peach
            S: i OK List completed.
            C: j LIST (REMOTE SUBSCRIBED) "" "T*"
            S: * LIST (\\Subscribed \\HasNoChildren \\Trash) "/" Trash
            S: j OK List completed.
            C: k LIST (REMOTE) "" "T*"
            S: * LIST (\\HasNoChildren) "/" Tofu
            S: * LIST (\\HasNoChildren \\Trash) "/" Trash
            S: k OK List completed.
            C: l LIST "" "T*" RETURN (SUBSCRIBED CHILDREN)
            S: * LIST (\\HasNoChildren) "/" Tofu
            S: * LIST (\\Subscribed \\HasNoChildren \\Trash) "/" Trash
            S: l OK List completed.
            """,
        )


def test_list_bad_options(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.9.1: RECURSIVEMATCH alone is BAD; unknown options are BAD."""
    with login(srv, user) as c:
        lines = c.command('a LIST (RECURSIVEMATCH) "" "%"')
        assert lines == ["a BAD RECURSIVEMATCH needs another selection option (SUBSCRIBED)"]
        lines = c.command('b LIST (BOGUS) "" "%"')
        assert len(lines) == 1 and lines[0].startswith("b BAD "), lines
        lines = c.command('c LIST "" "%" RETURN (BOGUS)')
        assert len(lines) == 1 and lines[0].startswith("c BAD "), lines


def test_list_status(srv: ServerThread, user: str) -> None:
    """RFC 5819 / RFC 9051 §6.3.9.2: RETURN (STATUS …) puts a STATUS response
    right after the LIST of every selectable mailbox (none for \\Noselect)."""
    add_messages(
        srv,
        user,
        "ls/box",
        [make_message("a"), AppendRequest(make_message("b"), frozenset({"\\Seen", "\\Deleted"}))],
    )
    size = sum(m.size for m in store_messages(srv, user, "ls/box"))
    with login(srv, user) as c:
        c.command("a DELETE ls")
        transcript(
            c,
            f"""
            C: b LIST "" "ls*" RETURN (STATUS (MESSAGES UNSEEN DELETED SIZE UIDNEXT RECENT))
            S: * LIST (\\Noselect \\HasChildren) "/" ls
            S: * LIST (\\HasNoChildren) "/" ls/box
            S: * STATUS ls/box (MESSAGES 2 UNSEEN 1 DELETED 1 SIZE {size} UIDNEXT 3 RECENT 2)
            S: b OK List completed.
            """,
        )


def test_list_status_rev2(srv: ServerThread, user: str) -> None:
    """RFC 9051 Appendix E: RECENT is not a status item in IMAP4rev2, so it is
    BAD there, in LIST RETURN (STATUS) as in STATUS."""
    with login(srv, user, rev2=True) as c:
        transcript(
            c,
            """
            C: a LIST "" "INBOX" RETURN (STATUS (MESSAGES RECENT))
            S: a BAD Unknown status item RECENT (not in IMAP4rev2)
            C: b LIST "" "INBOX" RETURN (STATUS (MESSAGES UIDNEXT))
            S: * LIST (\\HasNoChildren) "/" INBOX
            S: * STATUS INBOX (MESSAGES 0 UIDNEXT 1)
            S: b OK List completed.
            """,
        )


def test_list_before_login_is_refused(srv: ServerThread) -> None:
    """RFC 9051 §6.3: mailbox commands need the authenticated state."""
    with connect(srv, login=False) as c:
        lines = c.command('a LIST "" "*"')
        assert lines == ["a BAD LIST not allowed before login"]
        lines = c.command("b CREATE x")
        assert lines == ["b BAD CREATE not allowed before login"]


# ---- NAMESPACE / STATUS -----------------------------------------------------------------------


def test_namespace(srv: ServerThread, user: str, mode: str) -> None:
    """RFC 2342 / RFC 9051 §6.3.10: one personal namespace with "/"."""
    with login(srv, user, rev2=mode == "rev2") as c:
        transcript(
            c,
            """
            C: a NAMESPACE
            S: * NAMESPACE (("" "/")) NIL NIL
            S: a OK Namespace completed.
            """,
        )


def test_status_rev1(srv: ServerThread, user: str) -> None:
    """RFC 3501 §6.3.10 / RFC 9051 §6.3.11: every status item, in the order
    asked; a missing mailbox gets [NONEXISTENT]; HIGHESTMODSEQ needs CONDSTORE
    (RFC 7162 §3.1.7), which is not advertised."""
    add_messages(
        srv,
        user,
        "INBOX",
        [make_message("1"), AppendRequest(make_message("2"), frozenset({"\\Seen", "\\Deleted"}))],
    )
    size = sum(m.size for m in store_messages(srv, user, "INBOX"))
    size_re = f"SIZE {size} UIDVALIDITY \\d+"
    with login(srv, user) as c:
        transcript(
            c,
            f"""
            C: a STATUS INBOX (UIDNEXT MESSAGES RECENT UNSEEN DELETED SIZE UIDVALIDITY)
            S~ \\* STATUS INBOX \\(UIDNEXT 3 MESSAGES 2 RECENT 2 UNSEEN 1 DELETED 1 {size_re}\\)
            S: a OK Status completed.
            C: b STATUS nothere (MESSAGES)
            S: b NO [NONEXISTENT] Mailbox doesn't exist: nothere
            C: c STATUS INBOX (HIGHESTMODSEQ)
            S: c BAD Unknown status item HIGHESTMODSEQ
            C: d STATUS INBOX ()
            S~ d BAD .*
            C: e STATUS INBOX (BOGUS)
            S~ e BAD .*
            C: f SELECT INBOX
            S~ \\* FLAGS .*
            S~ .*
            S: * 2 EXISTS
            S: * 2 RECENT
            S~ .*
            S~ .*
            S~ .*
            S: f OK [READ-WRITE] Select completed.
            C: g STATUS INBOX (MESSAGES RECENT)
            S: * STATUS INBOX (MESSAGES 2 RECENT 0)
            S: g OK [CLIENTBUG] Status on selected mailbox completed.
            """,
        )


def test_status_rev2(srv: ServerThread, user: str) -> None:
    """RFC 9051 §6.3.11: DELETED and SIZE are rev2 items; RECENT is gone
    (Appendix E), so it is BAD after ENABLE IMAP4rev2."""
    add_messages(srv, user, "INBOX", [make_message("x")])
    with login(srv, user, rev2=True) as c:
        transcript(
            c,
            """
            C: a STATUS INBOX (MESSAGES DELETED UNSEEN)
            S: * STATUS INBOX (MESSAGES 1 DELETED 0 UNSEEN 1)
            S: a OK Status completed.
            C: b STATUS INBOX (MESSAGES RECENT)
            S: b BAD Unknown status item RECENT (not in IMAP4rev2)
            C: c STATUS inbox (MESSAGES)
            S: * STATUS INBOX (MESSAGES 1)
            S: c OK Status completed.
            """,
        )


def test_per_test_server(tmp_path: Path) -> None:
    """RFC 9051 §6.3.4: a brand-new account has the default mailboxes and
    CREATE/LIST work on a server started just for this test."""
    with server(tmp_path) as s, connect(s) as c:
        transcript(
            c,
            f"""
            C: a LIST "" "*"
            {DEFAULTS_LIST}
            S: a OK List completed.
            """,
        )
