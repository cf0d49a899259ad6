"""Real Debian clients against a real `mailbag serve` (issue 2: swaks, curl, fetchmail).

Skipped, with the reason, where a client is not installed; scripts/test installs them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailbag.testing.process import ServeProcess

PASSWORD = "correct horse battery staple"  # as in conftest.py

pytestmark = pytest.mark.slow

MESSAGE = (
    b"From: Interop <interop@example.net>\r\n"
    b"To: alice@localhost\r\n"
    b"Subject: interop \xc3\xa9t\xc3\xa9\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Caf\xc3\xa9 au lait.\r\n"
    b".leading dot\r\n"
    b"..two leading dots\r\n"
    b"end\r\n"
)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool}; scripts/test does)")
    return path


def stored_tail(raw: bytes) -> bytes:
    """The message as sent, after mailbag's Return-Path and Received headers."""
    start = raw.index(b"From: Interop")
    return raw[start:]


def pop_curl(served: ServeProcess, user: str, path: str, *extra: str) -> bytes:
    curl = need("curl")
    r = subprocess.run(
        [
            curl,
            "-s",
            "-S",
            "--max-time",
            "20",
            "-u",
            f"{user}:{PASSWORD}",
            *extra,
            f"pop3://127.0.0.1:{served.port('pop3')}/{path}",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_swaks_then_curl_pop3(served: ServeProcess, tmp_path: Path) -> None:
    swaks = need("swaks")
    eml = tmp_path / "m.eml"
    # swaks always appends CRLF "." CRLF, so a file that ends in CRLF would gain an
    # empty last line; give it the message without its final line end.
    eml.write_bytes(MESSAGE[:-2])
    r = subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{served.port('smtp')}",
            "--from",
            "interop@example.net",
            "--to",
            "alice@localhost",
            "--data",
            f"@{eml}",
            "--helo",
            "swaks.example.net",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    listing = pop_curl(served, "alice", "")
    assert listing.startswith(b"1 ")
    raw = pop_curl(served, "alice", "1")
    # curl undoes the dot-stuffing; what it prints is the stored message.
    assert stored_tail(raw) == MESSAGE
    # Clean up for the next test: DELE via a custom request, then QUIT.
    pop_curl(served, "alice", "1", "-X", "DELE", "-I")


def test_curl_smtp_upload(served: ServeProcess, tmp_path: Path) -> None:
    curl = need("curl")
    eml = tmp_path / "m.eml"
    eml.write_bytes(MESSAGE)
    r = subprocess.run(
        [
            curl,
            "-s",
            "-S",
            "--max-time",
            "20",
            f"smtp://127.0.0.1:{served.port('smtp')}",
            "--mail-from",
            "interop@example.net",
            "--mail-rcpt",
            "bob@localhost",
            "-T",
            str(eml),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    raw = pop_curl(served, "bob", "1")
    assert stored_tail(raw) == MESSAGE
    pop_curl(served, "bob", "1", "-X", "DELE", "-I")


def _fetchmail(served: ServeProcess, tmp_path: Path, keep: bool) -> list[bytes]:
    fetchmail = need("fetchmail")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    mda = tmp_path / "mda.sh"
    mda.write_text(f'#!/bin/sh\ncat > "{out}/msg.$$.$(date +%s%N)"\n')
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 with proto POP3 port {served.port('pop3')} timeout 20\n"
        f'  user "alice@localhost" there with password "{PASSWORD}" is "{getpass.getuser()}" here\n'
        f'  options {"keep" if keep else "nokeep"} fetchall sslproto ""\n'
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
    # 0 = mail retrieved, 1 = no mail
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    msgs = sorted(out.iterdir())
    result = [p.read_bytes() for p in msgs]
    for p in msgs:
        p.unlink()
    return result


def _send(served: ServeProcess, n: int) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        for _ in range(n):
            smtp.sendmail("interop@example.net", ["alice@localhost"], MESSAGE)


def test_fetchmail_keep_then_nokeep(served: ServeProcess, tmp_path: Path) -> None:
    _send(served, 2)
    kept = _fetchmail(served, tmp_path, keep=True)
    assert len(kept) == 2
    # fetchmail hands the MDA LF line ends; otherwise the bytes are what was sent.
    for raw in kept:
        assert stored_tail(raw) == MESSAGE.replace(b"\r\n", b"\n")
    listing = pop_curl(served, "alice", "")
    assert len(listing.splitlines()) == 2  # keep: still on the server
    removed = _fetchmail(served, tmp_path, keep=False)
    assert len(removed) == 2
    assert pop_curl(served, "alice", "").strip() == b""  # curl prints CRLF for an empty LIST
