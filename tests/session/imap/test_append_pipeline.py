"""Pipelined APPENDs (RFC 7888 LITERAL+) are stored together but answered in
order, with UIDs in the order sent; a bad command among them fails alone."""

from __future__ import annotations

import re
from pathlib import Path

import imap_support


def test_pipelined_appends_keep_order_and_fail_alone(tmp_path: Path) -> None:
    with imap_support.server(tmp_path) as srv:
        c = imap_support.connect(srv)
        imap_support.connect(srv).command("x CREATE Other")
        payload = b""
        bodies = []
        for i in range(30):
            body = imap_support.make_message(subject=f"pipelined {i}")
            bodies.append(body)
            box = b"Nope" if i == 7 else (b"Other" if i in (20, 21) else b"INBOX")
            payload += b"a%d APPEND %s {%d+}\r\n%s\r\n" % (i, box, len(body), body)
        c.send(payload)
        tagged: dict[int, str] = {}
        while len(tagged) < 30:
            line = c.line()
            m = re.match(r"a(\d+) ", line)
            if m:
                assert int(m.group(1)) == len(tagged), "responses out of order"
                tagged[int(m.group(1))] = line
        assert tagged[7].startswith("a7 NO [TRYCREATE]")
        uids = []
        for i, line in tagged.items():
            if i == 7:
                continue
            m = re.match(rf"a{i} OK \[APPENDUID \d+ (\d+)\]", line)
            assert m, line
            uids.append((i, int(m.group(1))))
        inbox = [(i, u) for i, u in uids if i not in (20, 21)]
        assert [u for _, u in inbox] == sorted(u for _, u in inbox)  # UIDs in send order
        stored = imap_support.stored_bytes(srv, "alice", "INBOX")
        expected = [bodies[i] for i, _ in inbox]
        assert stored == expected
        assert imap_support.stored_bytes(srv, "alice", "Other") == [bodies[20], bodies[21]]
