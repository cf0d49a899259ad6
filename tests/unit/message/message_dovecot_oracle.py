"""Ask a private Dovecot what it answers for the messages of tests/corpus/.

Dovecot (2.3.19, Debian `dovecot-imapd`) is the reference for the choices the
RFCs leave open. This module runs its `imap` binary pre-authenticated on
stdin/stdout against a throw-away Maildir (no daemon, no ports), fetches
ENVELOPE, BODYSTRUCTURE, BODY and every section of every message, and returns
the answers as JSON-compatible structures in the same shape as
:mod:`mailbag.message` produces (str / int / None / lists), so tests can
compare the two directly.

Run as a script to (re)write the expected answers stored beside the corpus:

    python tests/unit/message/message_dovecot_oracle.py

Strings are decoded from bytes as UTF-8 with `surrogateescape`, the same
convention mailbag.message uses, so 8-bit bytes survive a JSON round trip.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

IMAP_BINARY = "/usr/lib/dovecot/imap"
CORPUS = pathlib.Path(__file__).resolve().parents[2] / "corpus"
EXPECTED = CORPUS / "dovecot-2.3.19"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
protocols = imap
ssl = no
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{root}/mail
imap_max_line_length = 1M
"""


def available() -> bool:
    return os.path.exists(IMAP_BINARY)


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class _Parser:
    """Just enough of the IMAP response grammar to read FETCH answers."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def skip_spaces(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] == 0x20:
            self.pos += 1

    def value(self) -> Any:
        self.skip_spaces()
        c = self.data[self.pos : self.pos + 1]
        if c == b"(":
            self.pos += 1
            out = []
            while True:
                self.skip_spaces()
                if self.data[self.pos : self.pos + 1] == b")":
                    self.pos += 1
                    return out
                out.append(self.value())
        if c == b'"':
            self.pos += 1
            buf = bytearray()
            while True:
                ch = self.data[self.pos]
                self.pos += 1
                if ch == 0x5C:
                    buf.append(self.data[self.pos])
                    self.pos += 1
                elif ch == 0x22:
                    return _text(bytes(buf))
                else:
                    buf.append(ch)
        if c == b"~" and self.data[self.pos + 1 : self.pos + 2] == b"{":
            self.pos += 1
            c = b"{"
        if c == b"{":
            end = self.data.index(b"}", self.pos)
            n = int(self.data[self.pos + 1 : end])
            start = end + 3  # "}\r\n"
            self.pos = start + n
            return _text(self.data[start : start + n])
        m = re.compile(rb"[^ ()\r\n]+(\[[^\]]*\])?(<\d+>)?").match(self.data, self.pos)
        assert m is not None, self.data[self.pos : self.pos + 40]
        self.pos = m.end()
        atom = m.group(0)
        if atom == b"NIL":
            return None
        if atom.isdigit():
            return int(atom)
        return _text(atom)


def parse_fetch_items(line_rest: bytes) -> dict[str, Any]:
    p = _Parser(line_rest)
    items = p.value()
    return {items[i]: items[i + 1] for i in range(0, len(items), 2)}


def _sections(bs: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(section, kind) for every part of a BODYSTRUCTURE; kind is
    'multipart', 'message' (message/rfc822) or 'leaf'."""
    out: list[tuple[str, str]] = []
    if isinstance(bs[0], list):  # multipart
        for n, child in enumerate(bs, 1):
            if not isinstance(child, list):
                break
            out.extend(_part_sections(child, f"{prefix}{n}"))
        return out
    return _part_sections(bs, prefix + "1") if not prefix else out


def _part_sections(bs: Any, sec: str) -> list[tuple[str, str]]:
    if isinstance(bs[0], list):
        return [(sec, "multipart"), *_sections(bs, sec + ".")]
    if len(bs) > 9 and isinstance(bs[7], list) and isinstance(bs[8], list):
        inner = bs[8]
        sub: list[tuple[str, str]] = [(sec, "message")]
        if isinstance(inner[0], list):
            sub.extend(_sections(inner, sec + "."))
        else:
            sub.extend(_part_sections(inner, sec + ".1"))
        return sub
    return [(sec, "leaf")]


class Dovecot:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        for d in ("run", "state", "mail/cur", "mail/new", "mail/tmp", "home"):
            (root / d).mkdir(parents=True, exist_ok=True)
        uid = 65534 if os.geteuid() == 0 else os.geteuid()
        gid = 65534 if os.geteuid() == 0 else os.getegid()
        (root / "dovecot.conf").write_text(_CONFIG.format(root=root, uid=uid, gid=gid))
        if os.geteuid() == 0:
            os.chmod(root, 0o755)
            for dirpath, _dirs, _files in os.walk(root):
                os.chown(dirpath, uid, gid)
        self.count = 0

    def add(self, data: bytes) -> int:
        self.count += 1
        path = self.root / "mail" / "cur" / f"{1000000 + self.count}.M{self.count}P1.oracle:2,S"
        path.write_bytes(data)
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
        return self.count

    def run(self, commands: list[str]) -> bytes:
        script = "a0 SELECT INBOX\r\n"
        script += "".join(f"t{i} {c}\r\n" for i, c in enumerate(commands, 1))
        script += "z LOGOUT\r\n"
        env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "USER": "oracle",
            "HOME": str(self.root / "home"),
            "MAIL": f"maildir:{self.root}/mail",
        }
        proc = subprocess.run(
            [IMAP_BINARY, "-c", str(self.root / "dovecot.conf")],
            input=script.encode(),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        return proc.stdout

    def fetch(self, seq: int, items: list[str]) -> tuple[dict[str, Any], str]:
        """One FETCH per item list; returns (items, tagged status line)."""
        out = self.run([f"FETCH {seq} ({' '.join(items)})"])
        result: dict[str, Any] = {}
        status = ""
        pos = 0
        while pos < len(out):
            m = re.compile(rb"\* (\d+) FETCH ").match(out, pos)
            if m:
                p = _Parser(out)
                p.pos = m.end()
                v = p.value()
                result.update({v[i]: v[i + 1] for i in range(0, len(v), 2)})
                pos = out.index(b"\r\n", p.pos) + 2
                continue
            end = out.find(b"\r\n", pos)
            if end < 0:
                break
            line = out[pos:end]
            if line.startswith(b"t1 "):
                status = line[3:].decode("utf-8", "replace")
                status = re.sub(r" \(\d+\.\d+ \+ .*secs\)\.", "", status)
            pos = end + 2
        return result, status


def ask(data: bytes) -> dict[str, Any]:
    """Everything Dovecot says about one message, keyed by FETCH item."""
    with tempfile.TemporaryDirectory(prefix="mb-dovecot-") as tmp:
        dv = Dovecot(pathlib.Path(tmp))
        seq = dv.add(data)
        base = [
            "ENVELOPE",
            "BODYSTRUCTURE",
            "BODY",
            "RFC822.SIZE",
            "BODY.PEEK[HEADER]",
            "BODY.PEEK[TEXT]",
            "BODY.PEEK[]",
        ]
        items, status = dv.fetch(seq, base)
        answer: dict[str, Any] = {
            k.replace(".PEEK", ""): items.get(k.replace(".PEEK", "")) for k in base
        }
        answer["sections"] = {}
        if items.get("BODYSTRUCTURE") is None:
            answer["status"] = status
            return answer
        for sec, kind in _sections(items["BODYSTRUCTURE"]):
            names = [f"BODY.PEEK[{sec}]", f"BODY.PEEK[{sec}.MIME]"]
            if kind == "message":
                names += [f"BODY.PEEK[{sec}.HEADER]", f"BODY.PEEK[{sec}.TEXT]"]
            got, _ = dv.fetch(seq, names)
            entry: dict[str, Any] = {"kind": kind}
            for n in names:
                entry[n.replace(".PEEK", "")] = got.get(n.replace(".PEEK", ""))
            if kind == "leaf":
                # asked apart: Dovecot 2.3.19 fails every BINARY.SIZE of a
                # message as soon as one of its parts has an unknown encoding
                got, st = dv.fetch(seq, [f"BINARY.PEEK[{sec}]"])
                entry["BINARY"] = got.get(f"BINARY[{sec}]")
                if not st.startswith("OK"):
                    entry["BINARY.status"] = st
                got, st = dv.fetch(seq, [f"BINARY.SIZE[{sec}]"])
                entry["BINARY.SIZE"] = got.get(f"BINARY.SIZE[{sec}]")
                if not st.startswith("OK"):
                    entry["BINARY.SIZE.status"] = st
            answer["sections"][sec] = entry
        return answer


_INLINE_MAX = 2000


def _compact(value: Any) -> Any:
    """Long section texts are stored as their length and SHA-256."""
    if isinstance(value, str) and len(value) > _INLINE_MAX:
        raw = value.encode("utf-8", "surrogateescape")
        return {"length": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    return value


def regenerate(names: list[str] | None = None) -> None:
    EXPECTED.mkdir(exist_ok=True)
    for eml in sorted(CORPUS.glob("*.eml")):
        if names and eml.stem not in names:
            continue
        answer = _compact(ask(eml.read_bytes()))
        (EXPECTED / (eml.stem + ".json")).write_text(
            json.dumps(answer, indent=1, ensure_ascii=True) + "\n"
        )
        print(eml.stem)


if __name__ == "__main__":
    if not available() or shutil.which("doveadm") is None:
        sys.exit("dovecot-imapd is not installed")
    regenerate(sys.argv[1:] or None)
