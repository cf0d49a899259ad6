"""A deterministic corpus of realistic messages, generated from a seed.

Plain text, multipart/alternative, multipart/mixed with base64 attachments,
log-normal sizes (median ~8 KB, capped at ~300 KB), threads with
In-Reply-To/References, RFC 2047 subjects. Planted words have known counts so
searches can be checked, not just timed.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass, field
from email.header import Header

WORDS = (
    "meeting",
    "project",
    "report",
    "budget",
    "invoice",
    "schedule",
    "review",
    "draft",
    "release",
    "server",
    "customer",
    "update",
    "deadline",
    "quarter",
    "travel",
    "lunch",
    "team",
    "design",
    "storage",
    "network",
    "contract",
    "offer",
    "payment",
    "delivery",
    "support",
    "ticket",
    "question",
    "answer",
    "weekend",
)
PLANTED = ("zebraquartz", "plumbago", "xylophonist")
NAMES = ["Alice Archer", "Bob Baker", "Carol Cho", "Dmitri Dunn", "Émile Ève", "Fatima Farah"]


@dataclass
class Corpus:
    messages: list[bytes]
    planted: dict[str, int] = field(default_factory=dict)  # word -> messages containing it
    from_counts: dict[str, int] = field(default_factory=dict)


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    line: list[str] = []
    while n < size:
        w = rng.choice(WORDS)
        line.append(w)
        n += len(w) + 1
        if len(line) >= 12:
            out.append(" ".join(line))
            line = []
    out.append(" ".join(line))
    return "\r\n".join(out) + "\r\n"


def _display(name: str) -> str:
    return name if name.isascii() else Header(name, "utf-8").encode()


def _subject(rng: random.Random, i: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    if rng.random() < 0.2:
        enc = base64.b64encode(f"Résumé {words}".encode()).decode()
        return f"=?UTF-8?B?{enc}?="
    return f"{words} #{i}"


def generate(n: int, seed: int = 42) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus(messages=[], planted=dict.fromkeys(PLANTED, 0))
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(n):
        size = min(140_000, max(300, int(rng.lognormvariate(8.85, 1.0))))  # median ~8 KB
        name = rng.choice(NAMES)
        addr = name.split()[0].lower().replace("é", "e") + "@example.net"
        corpus.from_counts[addr] = corpus.from_counts.get(addr, 0) + 1
        date = base + dt.timedelta(minutes=37 * i)
        msgid = f"<msg{i}.{seed}@example.net>"
        headers = [
            f"From: {_display(name)} <{addr}>",
            "To: alice@localhost",
            f"Subject: {_subject(rng, i)}",
            f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            f"Message-ID: {msgid}",
        ]
        if i and rng.random() < 0.3:
            parent = f"<msg{rng.randrange(i)}.{seed}@example.net>"
            headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
        text = _text(rng, size)
        for word in PLANTED:
            if rng.random() < 0.05:
                text = f"planted {word} here\r\n" + text
                corpus.planted[word] += 1
        kind = rng.random()
        if kind < 0.5:
            headers.append("Content-Type: text/plain; charset=utf-8")
            body = text
        elif kind < 0.8:
            b = f"alt{i}"
            headers += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{b}"']
            html = (
                "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
            )
            body = (
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}"
                f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}--{b}--\r\n"
            )
        else:
            b = f"mix{i}"
            half = text[: text.rfind("\r\n", 0, max(2, size // 2)) + 2]  # whole lines only
            blob = rng.randbytes(max(100, size // 3))
            enc = base64.encodebytes(blob).decode().replace("\n", "\r\n")
            headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{b}"']
            body = (
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{half}"
                f'\r\n--{b}\r\nContent-Type: application/octet-stream; name="file{i}.bin"\r\n'
                f'Content-Disposition: attachment; filename="file{i}.bin"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{enc}--{b}--\r\n"
            )
        corpus.messages.append(("\r\n".join(headers) + "\r\n\r\n" + body).encode())
    return corpus
