"""Real IMAP clients against a real `mailbag serve`: mbsync, offlineimap3, curl, fetchmail.

Each client talks plain IMAP to 127.0.0.1 (plaintext LOGIN is allowed on
loopback) and is checked by reading what it wrote (a Maildir, files from an
MDA, stdout) and what the server holds afterwards (over a raw connection,
tests/interop/imap_wire.py). Skipped, with the reason, where a client is not
installed; scripts/test installs them.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import imap_wire as w
import pytest

from mailbag.testing.process import ServeProcess

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"  # as in conftest.py
_users = iter(range(1, 10_000))


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {package}; scripts/test does)")
    return path


def new_user(served: ServeProcess, name: str) -> str:
    address = f"{name}{next(_users)}@localhost"
    served.add_user(address, PASSWORD)
    return address


def connect(served: ServeProcess, user: str) -> w.Connection:
    c = w.Connection("127.0.0.1", served.port("imap"))
    c.login(user, PASSWORD)
    return c


def numbered(i: int, origin: str = "server") -> bytes:
    """A small message that says which one it is in its Subject."""
    return (
        f"From: Sender {i} <sender{i}@example.org>\r\n"
        f"To: someone@localhost\r\n"
        f"Subject: {origin} message {i}\r\n"
        f"Message-ID: <{origin}-{i}@example.org>\r\n"
        f"Date: Wed, 4 Sep 2024 12:{i % 60:02d}:00 +0000\r\n"
        f"\r\n"
        f"Body of {origin} message {i}.\r\n" + "more text, line two\r\n" * (i % 5)
    ).encode()


SUBJECT = re.compile(rb"^Subject: (.*?)\r?$", re.M)


def subject_of(raw: bytes) -> str:
    m = SUBJECT.search(raw)
    assert m, raw[:200]
    return m.group(1).decode()


def server_view(served: ServeProcess, user: str, mailbox: str = "INBOX") -> dict[str, set[str]]:
    """Subject → flags (without \\Recent) of every message in a mailbox on the server."""
    c = connect(served, user)
    try:
        c.select(mailbox, examine=True)
        r = c.command("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if r.status != "OK":  # empty mailbox: "1:*" has nothing to name
            return {}
        out = {}
        for item in r.fetches().values():
            subject = subject_of(item["BODY[HEADER.FIELDS (SUBJECT)]"])
            out[subject] = {str(f) for f in item["FLAGS"]} - {"\\Recent"}
        return out
    finally:
        c.logout()


def server_bodies(served: ServeProcess, user: str, mailbox: str = "INBOX") -> dict[str, bytes]:
    c = connect(served, user)
    try:
        c.select(mailbox, examine=True)
        r = c.command("FETCH", "1:*", "(BODY.PEEK[])").ok()
        return {subject_of(i["BODY[]"]): i["BODY[]"] for i in r.fetches().values()}
    finally:
        c.logout()


# -- Maildir -----------------------------------------------------------------------

MAILDIR_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}


def maildir_view(folder: Path) -> dict[str, tuple[Path, set[str]]]:
    """Subject → (file, IMAP flags) for every message in a Maildir folder."""
    out: dict[str, tuple[Path, set[str]]] = {}
    for sub in ("new", "cur"):
        for f in (folder / sub).iterdir():
            info = f.name.split(":2,", 1)[1] if ":2," in f.name else ""
            flags = {MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS}
            subject = subject_of(f.read_bytes())
            assert subject not in out, f"{subject} twice in {folder}"
            out[subject] = (f, flags)
    return out


def set_maildir_flags(path: Path, letters: str) -> Path:
    base = path.name.split(":2,", 1)[0]
    target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(letters))}"
    path.rename(target)
    return target


def new_maildir_message(folder: Path, data: bytes) -> None:
    name = f"{time.time_ns()}.{os.getpid()}.mailbag-test"
    (folder / "tmp" / name).write_bytes(data)
    (folder / "tmp" / name).rename(folder / "new" / name)


def run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(args, capture_output=True, timeout=timeout, check=False, env=env)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, f"{args[0]} exited {r.returncode}:\n{out[-4000:]}"
    return out


def without_tuid(raw: bytes) -> bytes:
    """mbsync marks messages with `X-TUID:` to find their UIDs again."""
    return re.sub(rb"X-TUID: [^\r\n]*\r?\n", b"", raw)


# -- mbsync --------------------------------------------------------------------------


def mbsync_config(tmp: Path, served: ServeProcess, user: str) -> Path:
    maildir = tmp / "Mail"
    maildir.mkdir()
    cfg = tmp / "mbsyncrc"
    cfg.write_text(
        f"""IMAPAccount mailbag
Host 127.0.0.1
Port {served.port("imap")}
User {user}
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN
PipelineDepth 50
Timeout 30

IMAPStore mailbag-remote
Account mailbag

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel inbox
Far :mailbag-remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
"""
    )
    return cfg


def test_mbsync_two_way_1000_messages(served: ServeProcess, tmp_path: Path) -> None:
    """isync's mbsync: full two-way sync of 1,000 messages, flags and deletions
    on each side (RFC 9051 §6.4.5 FETCH, §6.4.6 STORE, §6.3.12 APPEND, UIDPLUS)."""
    mbsync = need("mbsync", "isync")
    user = new_user(served, "mbsync")
    total = 1000
    started = time.monotonic()
    c = connect(served, user)
    try:
        uids = c.append_many("INBOX", (numbered(i) for i in range(total)))
        assert len(uids) == total
        c.select("INBOX")
        c.command("UID STORE", str(uids[1]), "+FLAGS", "(\\Seen)").ok()
        c.command("UID STORE", str(uids[2]), "+FLAGS", "(\\Flagged \\Answered)").ok()
    finally:
        c.logout()
    loaded = time.monotonic() - started

    cfg = mbsync_config(tmp_path, served, user)
    inbox = tmp_path / "Mail" / "INBOX"
    run([mbsync, "-c", str(cfg), "-a"], timeout=60)
    local = maildir_view(inbox)
    assert len(local) == total
    assert local["server message 1"][1] == {"\\Seen"}
    assert local["server message 2"][1] == {"\\Flagged", "\\Answered"}
    assert local["server message 0"][1] == set()
    # Maildir keeps LF line ends (mbsync converts) and mbsync adds an X-TUID
    # field of its own; otherwise the bytes are the server's.
    bodies = server_bodies(served, user)
    for subject in ("server message 0", "server message 7", f"server message {total - 1}"):
        got = without_tuid(local[subject][0].read_bytes())
        assert got == bodies[subject].replace(b"\r\n", b"\n")

    # Changes on both sides.
    set_maildir_flags(local["server message 10"][0], "F")
    local["server message 11"][0].unlink()
    new_maildir_message(inbox, numbered(1, origin="near"))
    c = connect(served, user)
    try:
        c.select("INBOX")
        c.command("UID STORE", str(uids[20]), "+FLAGS", "(\\Seen \\Answered)").ok()
        c.command("UID STORE", str(uids[21]), "+FLAGS", "(\\Deleted)").ok()
        c.command("UID EXPUNGE", str(uids[21])).ok()
        c.append("INBOX", numbered(2, origin="far")).ok()
    finally:
        c.logout()

    run([mbsync, "-c", str(cfg), "-a"], timeout=60)
    remote = server_view(served, user)
    local = maildir_view(inbox)
    expected = {f"server message {i}" for i in range(total)} - {
        "server message 11",
        "server message 21",
    } | {"near message 1", "far message 2"}
    assert set(remote) == expected
    assert set(local) == expected
    assert remote["server message 10"] == {"\\Flagged"}
    assert local["server message 20"][1] == {"\\Seen", "\\Answered"}
    assert remote["server message 20"] == {"\\Seen", "\\Answered"}
    assert remote["server message 2"] == {"\\Flagged", "\\Answered"}
    near = server_bodies(served, user)["near message 1"]
    assert without_tuid(near) == numbered(1, origin="near")
    # flags agree everywhere
    assert {s: f for s, (_p, f) in local.items()} == remote
    # a third run has nothing left to do: both sides stay as they are
    run([mbsync, "-c", str(cfg), "-a"], timeout=60)
    assert server_view(served, user) == remote
    assert {s: f for s, (_p, f) in maildir_view(inbox).items()} == remote
    assert time.monotonic() - started < 60 + loaded, "mbsync run too slow"


# -- offlineimap3 ----------------------------------------------------------------------


def offlineimap_config(tmp: Path, served: ServeProcess, user: str) -> Path:
    cfg = tmp / "offlineimaprc"
    cfg.write_text(
        f"""[general]
accounts = test
metadata = {tmp}/offlineimap-meta
ui = basic

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {tmp}/OfflineMail

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {served.port("imap")}
remoteuser = {user}
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda folder: folder in ["INBOX", "Archive"]
"""
    )
    return cfg


def test_offlineimap3_two_way(served: ServeProcess, tmp_path: Path) -> None:
    """offlineimap3: download 30 messages in two folders, then push a flag, a
    deletion and a new message back (RFC 9051 §6.3.9 LIST, §6.4.6 STORE, UIDPLUS)."""
    offlineimap = need("offlineimap", "offlineimap3")
    user = new_user(served, "offlineimap")
    c = connect(served, user)
    try:
        c.append_many("INBOX", (numbered(i) for i in range(25)))
        c.append_many("Archive", (numbered(i, "archived") for i in range(5)), flags=["\\Seen"])
    finally:
        c.logout()
    cfg = offlineimap_config(tmp_path, served, user)
    env = dict(os.environ, HOME=str(tmp_path))
    run([offlineimap, "-c", str(cfg), "-o", "-u", "basic"], timeout=60, env=env)
    inbox = tmp_path / "OfflineMail" / "INBOX"
    local = maildir_view(inbox)
    assert set(local) == {f"server message {i}" for i in range(25)}
    archive = maildir_view(tmp_path / "OfflineMail" / "Archive")
    assert {s: f for s, (_p, f) in archive.items()} == {
        f"archived message {i}": {"\\Seen"} for i in range(5)
    }
    bodies = server_bodies(served, user)
    for subject, (path, _flags) in local.items():
        assert path.read_bytes().replace(b"\r\n", b"\n") == bodies[subject].replace(b"\r\n", b"\n")

    set_maildir_flags(local["server message 3"][0], "FS")
    local["server message 4"][0].unlink()
    new_maildir_message(inbox, numbered(9, origin="near"))
    run([offlineimap, "-c", str(cfg), "-o", "-u", "basic"], timeout=60, env=env)
    remote = server_view(served, user)
    assert remote["server message 3"] == {"\\Flagged", "\\Seen"}
    assert "server message 4" not in remote
    assert "near message 9" in remote
    assert len(remote) == 25


# -- curl ----------------------------------------------------------------------------


def curl(served: ServeProcess, user: str, path: str, *extra: str) -> bytes:
    tool = need("curl", "curl")
    r = subprocess.run(
        [
            tool,
            "-s",
            "-S",
            "--max-time",
            "20",
            "-u",
            f"{user}:{PASSWORD}",
            *extra,
            f"imap://127.0.0.1:{served.port('imap')}/{path}",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_curl_list_fetch_by_uid_and_search(served: ServeProcess) -> None:
    """curl's imap:// URLs (RFC 5092): LIST, UID FETCH BODY[] and SEARCH."""
    need("curl", "curl")
    user = new_user(served, "curl")
    messages = [numbered(i) for i in range(4)]
    messages[2] += b"\r\nCaf\xc3\xa9 \x01 binary-ish \xff bytes\r\n"
    c = connect(served, user)
    try:
        uids = c.append_many("INBOX", messages)
        # expunge the first, so UIDs and sequence numbers differ
        c.select("INBOX")
        c.command("UID STORE", str(uids[0]), "+FLAGS", "(\\Deleted)").ok()
        c.command("EXPUNGE").ok()
        uids, messages = uids[1:], messages[1:]
        c.command("CREATE", '"Projects/2024"').ok()
    finally:
        c.logout()
    listing = curl(served, user, "").decode()
    names = {line.rsplit(" ", 1)[-1].strip('"') for line in listing.splitlines()}
    assert {"INBOX", "Archive", "Sent", "Projects", "Projects/2024"} <= names, listing
    for uid, data in zip(uids, messages, strict=True):
        assert curl(served, user, f"INBOX;UID={uid}") == data
    # a section by UID
    assert curl(served, user, f"INBOX;UID={uids[2]};SECTION=HEADER.FIELDS%20(SUBJECT)") == (
        b"Subject: server message 3\r\n\r\n"
    )
    # curl sends SEARCH (not UID SEARCH): sequence numbers
    out = curl(served, user, "INBOX?SUBJECT%20%22message%202%22").decode()
    assert out.split() == ["*", "SEARCH", "2"]


# -- fetchmail -----------------------------------------------------------------------


def test_fetchmail_imap_keep(served: ServeProcess, tmp_path: Path) -> None:
    """fetchmail over IMAP with `keep`: all messages delivered to the MDA, all still
    on the server, now \\Seen (RFC 9051 §6.4.5: BODY[] sets \\Seen)."""
    fetchmail = need("fetchmail", "fetchmail")
    user = new_user(served, "fetchmail")
    messages = [numbered(i) for i in range(4)]
    c = connect(served, user)
    try:
        c.append_many("INBOX", messages)
    finally:
        c.logout()
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text(f'#!/bin/sh\ncat > "{out}/msg.$$.$(date +%s%N)"\n')
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 with proto IMAP port {served.port('imap')} timeout 20\n"
        f'  user "{user}" there with password "{PASSWORD}" is "{getpass.getuser()}" here\n'
        f'  options keep fetchall sslproto ""\n'
        f'  mda "{mda}"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(
        [fetchmail, "-f", str(rc), "--nosyslog", "--nodetach", "--invisible"],
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    got = sorted((p.read_bytes() for p in out.iterdir()), key=subject_of)
    # fetchmail hands the MDA LF line ends; otherwise the bytes are what was stored.
    assert got == sorted((m.replace(b"\r\n", b"\n") for m in messages), key=subject_of)
    remote = server_view(served, user)
    assert remote == {f"server message {i}": {"\\Seen"} for i in range(4)}


@pytest.fixture(autouse=True)
def _server_survives(served: ServeProcess) -> Iterator[None]:
    yield
    assert served.proc is not None and served.proc.poll() is None, served.log()[-3000:]
