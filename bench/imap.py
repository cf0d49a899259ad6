"""IMAP/POP3/LMTP benchmark: mailbag against a private Dovecot, in one run.

    python bench/imap.py [--messages 2000] [--idle 200] [--only PHASES]
                         [--mailbag-only] [--json FILE] [--big] [--pyspy DIR]

Both servers get the same deterministic corpus (bench/corpus.py). Phases, in
the order they run (every answer is checked; a wrong one fails the run):

  append    APPEND N messages to INBOX, pipelined with LITERAL+ when offered
            (every 3rd message \\Seen, every 7th \\Flagged, INTERNALDATE = Date:)
  lmtp      LMTP delivery of N messages over 1 and over 4 connections, with
            DATA (one message in flight per connection: the client waits for
            each reply) and with BDAT (CHUNKING, RFC 3030: whole transactions
            pipelined, 16 in flight per connection); each run to its own user,
            so INBOX keeps exactly the appended messages
  select    SELECT INBOX cold (first SELECT after a server restart) and warm
  meta      UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)
  envelope  FETCH 1:* (ENVELOPE BODYSTRUCTURE)
  body      FETCH 1:* BODY.PEEK[] (MB/s; bytes compared with what was appended)
  search    SEARCH FROM, SUBJECT, TEXT, BODY, SINCE, UNSEEN (hit sets checked)
  store     STORE 1:* +FLAGS (\\Seen $label)
  mix       C clients for S seconds looping LOGIN, SELECT, FETCH of random
            messages, a random SEARCH, LOGOUT: ops/s, p50/p99 per command
  pop3      STAT, LIST, UIDL, RETR of every message (MB/s), TOP n 0
  idle      K sessions LOGIN+SELECT+IDLE on INBOX: server RSS/PSS before and
            after (whole process tree), then the latency from the LMTP 250 of a
            new message until every session has read its `* n EXISTS`; beside
            mailbag, the same for bench/idle_floor.c, a C loop that only writes
            that line to each socket (the floor this machine and client set)

"Cold" SELECT: the server process(es) restarted, the OS page cache left warm
(dropping it would disturb everything else on the machine). For mailbag that
is a fresh process with no in-memory state; for Dovecot a fresh master, and
imap processes that open dovecot.index and dovecot.index.cache from scratch.

Passwords: both servers verify argon2id with the same parameters (m=19 MiB,
t=2, p=1), so LOGIN costs the same password work on both (Dovecot via its
ARGON2ID scheme; `--dovecot-plain` gives Dovecot plaintext passwords instead).

--big: the 100,000-message variant (mailbag only; append, select, meta, search).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Corpus, generate
from imapload import (
    AsyncIMAP,
    BenchFailure,
    IdleSwarm,
    IMAPClient,
    LMTPClient,
    POP3Client,
    descendants,
    dot_stuff,
    lmtp_deliver,
    ok,
    percentile,
    quote,
    server_memory,
    wait_quiet,
)
from mailbag.auth.passwords import hash_password
from mailbag.testing.dovecot import PrivateDovecot, dovecot_binary
from mailbag.testing.process import ServeProcess

USER = "alice@localhost"
# LMTP runs: figure key -> (connections, BDAT window or 0 for DATA), and the
# user each delivers to (its INBOX then holds exactly N messages).
LMTP_RUNS = {"lmtp1": (1, 0), "lmtp4": (4, 0), "lmtpb1": (1, 16), "lmtpb4": (4, 16)}
LMTP_USERS = {key: f"{key}@localhost" for key in LMTP_RUNS}
IDLE_USER = "idle@localhost"  # with --idle-mailbox-size: idles on a small INBOX
PASSWORD = "bench-password"
PHASES = (
    "append",
    "lmtp",
    "select",
    "meta",
    "envelope",
    "body",
    "search",
    "store",
    "mix",
    "pop3",
    "idle",
)
BIG_PHASES = ("append", "select", "meta", "search")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ---- what the answers must be -------------------------------------------------------


@dataclass
class Expected:
    """Everything the servers' answers are checked against, from the corpus."""

    corpus: Corpus
    messages: list[bytes]
    flags: list[frozenset[bytes]]
    dates: list[dt.datetime]
    searches: dict[str, tuple[bytes, set[int]]]  # name -> (SEARCH args, corpus indexes)
    total_bytes: int

    @classmethod
    def build(cls, corpus: Corpus) -> Expected:
        msgs = corpus.messages
        flags = []
        dates = []
        subjects = []
        senders = []
        for i, m in enumerate(msgs):
            f = set()
            if i % 3 == 0:
                f.add(b"\\Seen")
            if i % 7 == 0:
                f.add(b"\\Flagged")
            flags.append(frozenset(f))
            head = m[: m.index(b"\r\n\r\n")].decode()
            fields = {}
            for line in head.split("\r\n"):
                name, _, value = line.partition(": ")
                fields[name.lower()] = value
            dates.append(parsedate_to_datetime(fields["date"]))
            subjects.append(str(make_header(decode_header(fields["subject"]))).lower())
            senders.append(fields["from"].lower())
        n = len(msgs)
        since = dates[(3 * n) // 4].date()
        since_arg = f"{since.day}-{MONTHS[since.month - 1]}-{since.year}".encode()
        sender = "carol@example.net"
        searches: dict[str, tuple[bytes, set[int]]] = {
            "from": (
                b"FROM " + quote(sender),
                {i for i, s in enumerate(senders) if sender in s},
            ),
            "subject": (
                b"SUBJECT budget",
                {i for i, s in enumerate(subjects) if "budget" in s},
            ),
            "text": (
                b"TEXT zebraquartz",
                {i for i, m in enumerate(msgs) if b"zebraquartz" in m},
            ),
            "body": (b"BODY plumbago", {i for i, m in enumerate(msgs) if b"plumbago" in m}),
            "since": (
                b"SINCE " + since_arg,
                {i for i, d in enumerate(dates) if d.date() >= since},
            ),
            "unseen": (b"UNSEEN", {i for i, f in enumerate(flags) if b"\\Seen" not in f}),
        }
        # The bench's own reading of the corpus must agree with the corpus's counts.
        if len(searches["from"][1]) != corpus.from_counts.get(sender, 0):
            raise BenchFailure("bench and corpus disagree on FROM count")
        for key, word in (("text", "zebraquartz"), ("body", "plumbago")):
            if len(searches[key][1]) != corpus.planted[word]:
                raise BenchFailure(f"bench and corpus disagree on planted {word}")
        return cls(corpus, msgs, flags, dates, searches, sum(map(len, msgs)))

    def internaldate(self, i: int) -> bytes:
        d = self.dates[i].astimezone(dt.UTC)
        return d.strftime('"%d-%b-%Y %H:%M:%S +0000"').encode()


# ---- servers ----------------------------------------------------------------------------


class BenchDovecot(PrivateDovecot):
    """PrivateDovecot with limits raised for K idle sessions and our own passdb."""

    def __init__(self, passwords: dict[str, str], processes: int) -> None:
        super().__init__(None, dict.fromkeys(passwords, "unused"))
        self.passwords = passwords
        self.processes = processes

    def config_text(self) -> str:
        text = super().config_text().replace(f"{self.root}/passwd", f"{self.root}/passwd-bench")
        p = self.processes
        # One imap process per session is Dovecot's default (client_limit=1);
        # only the caps move. mail_max_userip_connections defaults to 10.
        return (
            text
            + f"""
default_process_limit = {p}
default_client_limit = {4 * p + 1000}
protocol imap {{
  mail_max_userip_connections = {p}
}}
protocol pop3 {{
  mail_max_userip_connections = {p}
}}
"""
        )

    def start(self, timeout: float = 20) -> BenchDovecot:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "passwd-bench").write_text(
            "".join(f"{u}:{p}\n" for u, p in self.passwords.items())
        )
        super().start(timeout)
        return self

    def restart(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        assert self.binary is not None
        subprocess.run([self.binary, "-c", str(self.root / "dovecot.conf")], check=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                for port in self.ports.values():
                    with socket.create_connection(("127.0.0.1", port), 1):
                        pass
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


class Target:
    name = ""

    def port(self, proto: str) -> int:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def profile_pid(self) -> int | None:
        return None


class MailbagTarget(Target):
    name = "mailbag"

    def __init__(self, root: Path, event_loop: str = "asyncio", workers: int = 1) -> None:
        self.data_dir = root / "mailbag"
        self.event_loop = event_loop
        self.workers = workers
        # Server defaults, except: a session in IDLE is logged out after
        # command_timeout (300 s), not the 30-minute autologout (RFC 9051 §5.4,
        # RFC 2177 §3); setting up 10,000 idle sessions takes longer than that.
        self.config = root / "mailbag.toml"
        self.config.write_text("[limits]\ncommand_timeout = 1800\n")
        self.server = self._serve()
        for user in (USER, *LMTP_USERS.values(), IDLE_USER):
            self.server.add_user(user, PASSWORD)

    def port(self, proto: str) -> int:
        return self.server.port(proto)

    def pids(self) -> list[int]:
        assert self.server.proc is not None
        return descendants(self.server.proc.pid)

    def profile_pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc else None

    def _serve(self) -> ServeProcess:
        return ServeProcess(
            self.data_dir,
            extra_args=[
                "--log-level",
                "WARNING",
                "--event-loop",
                self.event_loop,
                "--workers",
                str(self.workers),
            ],
            config=self.config,
        ).start()

    def restart(self) -> None:
        self.server.stop()
        self.server = self._serve()

    def stop(self) -> None:
        code = self.server.stop()
        log = self.server.log()
        if "Too many open files" in log or "EMFILE" in log:
            print("mailbag: the server hit its open-files limit (EMFILE)", file=sys.stderr)
        if code not in (0, -signal.SIGTERM):
            print(f"mailbag serve exited with {code}", file=sys.stderr)


class DovecotTarget(Target):
    name = "dovecot"

    def __init__(self, processes: int, plain: bool) -> None:
        users = (USER, *LMTP_USERS.values(), IDLE_USER)
        secret = "{PLAIN}" + PASSWORD if plain else "{ARGON2ID}" + hash_password(PASSWORD)
        self.dv = BenchDovecot(dict.fromkeys(users, secret), processes).start()

    def port(self, proto: str) -> int:
        return self.dv.ports[proto]

    def pids(self) -> list[int]:
        return self.dv.child_pids()

    def restart(self) -> None:
        self.dv.restart()

    def stop(self) -> None:
        log = self.dv.log()
        for needle in ("Inotify instance limit", "process_limit", "Too many open files"):
            if needle in log:
                line = next(x for x in log.splitlines() if needle in x)
                print(f"dovecot log: {line[:300]}", file=sys.stderr)
        self.dv.stop()


# ---- the run -----------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    exp: Expected
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Per server: corpus index of each message by sequence number (seq - 1),
    # from the APPENDUIDs, so parallel loading may interleave UIDs.
    order: dict[str, list[int]] = field(default_factory=dict)
    uids: dict[str, list[int]] = field(default_factory=dict)  # by seq - 1, when known
    # Per server, for cross-checks between them: FETCH answers by seq.
    envelope_answers: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def message(self, t: Target, seq: int) -> tuple[int, bytes]:
        """The corpus index and bytes of message `seq` on this server."""
        i = self.order[t.name][seq - 1]
        return i, self.exp.messages[i]

    def seqs(self, t: Target, indexes: set[int]) -> set[int]:
        return {seq for seq, i in enumerate(self.order[t.name], 1) if i in indexes}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def check(self, server: str, phase: str, cond: bool, what: str) -> bool:
        if not cond:
            self.failures.append(f"{server} {phase}: {what}")
            self.log(f"  FAILED {server} {phase}: {what}")
        return cond


def login(t: Target, user: str = USER) -> IMAPClient:
    c = IMAPClient(t.port("imap"))
    c.login(user, PASSWORD)
    return c


def exists_of(untagged: list[list[bytes]]) -> int:
    for r in untagged:
        if r[0].endswith(b" EXISTS"):
            return int(r[0].split()[1])
    return -1


def search_hits(untagged: list[list[bytes]]) -> set[int]:
    hits: set[int] = set()
    for r in untagged:
        line = r[0]
        if line.startswith(b"* SEARCH"):
            hits.update(int(x) for x in line[8:].split())
    return hits


def append_commands(exp: Expected, indexes: range, literal_plus: bool) -> list[bytes]:
    return [
        b"APPEND INBOX ("
        + b" ".join(sorted(exp.flags[i]))
        + b") "
        + exp.internaldate(i)
        + b" {%d%s}\r\n" % (len(exp.messages[i]), b"+" if literal_plus else b"")
        + exp.messages[i]
        for i in indexes
    ]


def phase_append(run: Run, t: Target, out: dict[str, float]) -> None:
    """APPEND every message; with --load-connections C > 1, over C sessions
    at once (contiguous slices of the corpus), which interleaves UIDs."""
    exp = run.exp
    n = len(exp.messages)
    conns = run.args.load_connections
    clients = [login(t) for _ in range(conns)]
    literal_plus = all(b"LITERAL+" in c.capabilities for c in clients)
    bounds = [n * j // conns for j in range(conns + 1)]
    slices = [range(bounds[j], bounds[j + 1]) for j in range(conns)]
    work = [append_commands(exp, r, literal_plus) for r in slices]
    answers: list[list[bytes]] = [[] for _ in range(conns)]
    errors: list[BaseException] = []

    def load(j: int) -> None:
        c = clients[j]
        try:
            if literal_plus:
                answers[j] = [tagged for _u, tagged in c.pipeline(work[j])]
            else:
                answers[j] = [
                    c.append_sync(
                        "INBOX",
                        b" ".join(sorted(exp.flags[i])),
                        exp.internaldate(i),
                        exp.messages[i],
                    )
                    for i in slices[j]
                ]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=load, args=(j,)) for j in range(conns)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.perf_counter() - t0
    if errors:
        raise errors[0]
    uid_of: dict[int, int] = {}
    for r, tagged in zip(slices, answers, strict=True):
        for i, a in zip(r, tagged, strict=True):
            ok(a, "APPEND")
            if m := re.search(rb"APPENDUID \d+ (\d+)", a):
                uid_of[i] = int(m.group(1))
    if len(uid_of) == n:
        run.order[t.name] = sorted(range(n), key=uid_of.__getitem__)
        run.uids[t.name] = sorted(uid_of.values())
        moved = sum(1 for seq, i in enumerate(run.order[t.name]) if seq != i)
        if conns == 1 and moved:
            # Not wrong (RFC 9051 does not order pipelined APPENDs), but unlike
            # Dovecot: the mailbox order is not the order the client sent.
            run.notes.append(
                f"{t.name}: pipelined APPENDs got UIDs out of command order "
                f"({moved} of {n} messages not at their APPEND position)"
            )
    else:
        run.order[t.name] = list(range(n))
        if conns > 1:
            raise BenchFailure(f"{t.name}: no APPENDUID: cannot load over several connections")
        run.notes.append(f"{t.name}: no APPENDUID; assuming UIDs in APPEND order")
    status = clients[0].command(b"STATUS INBOX (MESSAGES)")
    m = re.search(rb"MESSAGES (\d+)", status[0][0]) if status else None
    got = int(m.group(1)) if m else -1
    run.check(t.name, "append", got == n, f"STATUS MESSAGES {got} != {n}")
    for c in clients:
        c.logout()
    prefix = "append" if conns == 1 else f"append{conns}"
    out[f"{prefix}_msgps"] = n / secs
    out[f"{prefix}_MBps"] = exp.total_bytes / secs / 1e6
    if not literal_plus:
        run.notes.append(f"{t.name}: no LITERAL+, APPEND ran one round trip per message")


def phase_lmtp(run: Run, t: Target, out: dict[str, float]) -> None:
    stuffed = [dot_stuff(m) for m in run.exp.messages]
    n = len(stuffed)
    for key, (conns, window) in LMTP_RUNS.items():
        user = LMTP_USERS[key]
        messages = list(run.exp.messages) if window else stuffed
        secs = lmtp_deliver(t.port("lmtp"), user, messages, conns, window)
        out[f"{key}_msgps"] = n / secs
        c = login(t, user)
        status = c.command(b"STATUS INBOX (MESSAGES)")
        m = re.search(rb"MESSAGES (\d+)", status[0][0]) if status else None
        got = int(m.group(1)) if m else -1
        run.check(t.name, key, got == n, f"{user} has {got} messages, not {n}")
        # These messages served only this figure. Expunged (untimed), they
        # cause no background work (mailbag parses and indexes after the
        # reply) that would lengthen the run's settling or weigh on later
        # phases: 4N more messages would more than double it.
        c.command(b"SELECT INBOX")
        c.command(b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
        c.command(b"CLOSE")
        c.logout()


def phase_select(run: Run, t: Target, out: dict[str, float]) -> None:
    n = len(run.exp.messages)
    # run_server restarted the server just before this phase.
    c = login(t)
    t0 = time.perf_counter()
    untagged = c.command(b"SELECT INBOX")
    out["select_cold_ms"] = (time.perf_counter() - t0) * 1e3
    run.check(t.name, "select", exists_of(untagged) == n, f"cold EXISTS {exists_of(untagged)}")
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        untagged = c.command(b"SELECT INBOX")
        warm.append((time.perf_counter() - t0) * 1e3)
        run.check(t.name, "select", exists_of(untagged) == n, "warm EXISTS")
    out["select_warm_ms"] = median(warm)
    c.logout()


META = re.compile(
    rb"\* (\d+) FETCH \((?=.*\bUID (\d+))(?=.*\bFLAGS \(([^)]*)\))"
    rb"(?=.*\bRFC822\.SIZE (\d+))(?=.*\bINTERNALDATE \"([^\"]+)\")"
)


def parse_internaldate(raw: bytes) -> dt.datetime:
    return dt.datetime.strptime(raw.decode().strip(), "%d-%b-%Y %H:%M:%S %z")


def settle(run: Run, t: Target, out: dict[str, float], after: str) -> None:
    """Let background work finish before a timed phase, so it neither steals
    the CPU from the phase nor goes unaccounted (mailbag indexes message text
    after it acknowledges delivery)."""
    secs = wait_quiet(t.pids)
    if secs > 3:  # the quiet spell itself takes 2 s
        out[f"settle_{after}_s"] = out.get(f"settle_{after}_s", 0) + secs
        run.log(f"  {t.name}: busy for {secs:.1f} s after {after}")


def phase_meta(run: Run, t: Target, out: dict[str, float]) -> None:
    exp = run.exp
    c = login(t)
    c.command(b"SELECT INBOX")
    t0 = time.perf_counter()
    untagged = c.command(b"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
    out["meta_ms"] = (time.perf_counter() - t0) * 1e3
    c.logout()
    rows = [r[0] for r in untagged if b" FETCH " in r[0]]
    run.check(t.name, "meta", len(rows) == len(exp.messages), f"{len(rows)} FETCH responses")
    bad = 0
    last_uid = 0
    for line in rows:
        m = META.match(line)
        if not m:
            bad += 1
            continue
        seq, uid = int(m.group(1)), int(m.group(2))
        if not 0 < seq <= len(exp.messages):
            bad += 1
            continue
        i, message = run.message(t, seq)
        flags = frozenset(m.group(3).split()) - {b"\\Recent"}
        if (
            uid <= last_uid
            or (t.name in run.uids and uid != run.uids[t.name][seq - 1])
            or int(m.group(4)) != len(message)
            or flags != exp.flags[i]
            or parse_internaldate(m.group(5)) != exp.dates[i]
        ):
            bad += 1
        last_uid = uid
    run.check(t.name, "meta", bad == 0, f"{bad} of {len(rows)} FETCH answers wrong")


def phase_envelope(run: Run, t: Target, out: dict[str, float]) -> None:
    exp = run.exp
    c = login(t)
    c.command(b"SELECT INBOX")
    t0 = time.perf_counter()
    untagged = c.command(b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    out["envelope_ms"] = (time.perf_counter() - t0) * 1e3
    c.logout()
    answers = [b"".join(r) for r in untagged if b" FETCH " in r[0]]
    run.check(t.name, "envelope", len(answers) == len(exp.messages), f"{len(answers)} answers")
    seed = run.args.seed
    bad = 0
    by_index: dict[int, bytes] = {}
    for a in answers:
        _star, seq, rest = a.split(b" ", 2)
        i, _m = run.message(t, int(seq))
        by_index[i] = rest
        if (
            b"ENVELOPE (" not in a
            or b"BODYSTRUCTURE (" not in a
            or f"<msg{i}.{seed}@example.net>".encode() not in a
        ):
            bad += 1
    run.check(t.name, "envelope", bad == 0, f"{bad} answers lack ENVELOPE/BODYSTRUCTURE/Message-ID")
    run.envelope_answers[t.name] = by_index


def phase_body(run: Run, t: Target, out: dict[str, float]) -> None:
    exp = run.exp
    c = login(t)
    c.command(b"SELECT INBOX")
    t0 = time.perf_counter()
    untagged = c.command(b"FETCH 1:* BODY.PEEK[]")
    secs = time.perf_counter() - t0
    c.logout()
    got = 0
    bad = 0
    for r in untagged:
        if b" FETCH " not in r[0]:
            continue
        got += 1
        if len(r) < 2 or r[1] != run.message(t, int(r[0].split(b" ", 2)[1]))[1]:
            bad += 1
    run.check(t.name, "body", got == len(exp.messages), f"{got} answers")
    run.check(t.name, "body", bad == 0, f"{bad} messages differ from what was appended")
    out["body_MBps"] = exp.total_bytes / secs / 1e6
    out["body_s"] = secs


def phase_search(run: Run, t: Target, out: dict[str, float]) -> None:
    c = login(t)
    c.command(b"SELECT INBOX")
    for name, (key, indexes) in run.exp.searches.items():
        want = run.seqs(t, indexes)
        times: list[float] = []
        # A second run (warm caches) only when the first was quick: on the
        # 10k corpus a slow scan would otherwise double the phase.
        while len(times) < 2 and (not times or times[0] < 2000):
            t0 = time.perf_counter()
            untagged = c.command(b"SEARCH " + key)
            times.append((time.perf_counter() - t0) * 1e3)
            got = search_hits(untagged)
            if not run.check(
                t.name,
                f"search {name}",
                got == want,
                f"SEARCH {key.decode()}: {len(got)} hits, corpus says {len(want)} "
                f"({len(got - want)} extra, {len(want - got)} missing)",
            ):
                break
        out[f"search_{name}_ms"] = min(times)
    c.logout()


def phase_store(run: Run, t: Target, out: dict[str, float]) -> None:
    n = len(run.exp.messages)
    c = login(t)
    c.command(b"SELECT INBOX")
    t0 = time.perf_counter()
    untagged = c.command(b"STORE 1:* +FLAGS (\\Seen $label)")
    out["store_ms"] = (time.perf_counter() - t0) * 1e3
    fetches = [r[0] for r in untagged if b" FETCH " in r[0]]
    good = sum(1 for f in fetches if b"\\Seen" in f and b"$label" in f)
    run.check(t.name, "store", good == n, f"{good} of {n} FETCH answers show \\Seen $label")
    hits = search_hits(c.command(b"SEARCH KEYWORD $label"))
    run.check(t.name, "store", len(hits) == n, f"KEYWORD $label finds {len(hits)}")
    hits = search_hits(c.command(b"SEARCH UNSEEN"))
    run.check(t.name, "store", not hits, f"UNSEEN finds {len(hits)} after STORE")
    c.logout()


def phase_mix(run: Run, t: Target, out: dict[str, float], stored: bool) -> None:
    exp = run.exp
    n = len(exp.messages)
    searches = dict(exp.searches)
    if stored:
        searches["unseen"] = (b"UNSEEN", set())
    keys = [(key, run.seqs(t, indexes)) for key, indexes in searches.values()]
    lat: dict[str, list[float]] = {
        k: [] for k in ("connect", "LOGIN", "SELECT", "FETCH", "SEARCH", "LOGOUT")
    }
    errors: list[str] = []
    seconds = run.args.mix_seconds
    login_cmd = b"LOGIN " + quote(USER) + b" " + quote(PASSWORD)

    async def client(seed: int, deadline: float) -> int:
        rng = random.Random(seed)
        loops = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            c = await AsyncIMAP.connect(t.port("imap"))
            t1 = time.perf_counter()
            lat["connect"].append(t1 - t0)
            await c.command(login_cmd, "LOGIN")
            t2 = time.perf_counter()
            lat["LOGIN"].append(t2 - t1)
            untagged = await c.command(b"SELECT INBOX")
            t3 = time.perf_counter()
            lat["SELECT"].append(t3 - t2)
            if exists_of(untagged) != n:
                errors.append(f"SELECT EXISTS {exists_of(untagged)}")
            seqs = sorted(rng.sample(range(1, n + 1), min(5, n)))
            untagged = await c.command(
                b"FETCH " + b",".join(b"%d" % s for s in seqs) + b" BODY.PEEK[]"
            )
            t4 = time.perf_counter()
            lat["FETCH"].append(t4 - t3)
            got = {int(r[0].split(b" ", 2)[1]): r[1] for r in untagged if len(r) > 1}
            if sorted(got) != seqs or any(got[s] != run.message(t, s)[1] for s in seqs):
                errors.append(f"FETCH {seqs}: wrong messages")
            key, want = rng.choice(keys)
            untagged = await c.command(b"SEARCH " + key)
            t5 = time.perf_counter()
            lat["SEARCH"].append(t5 - t4)
            if search_hits(untagged) != want:
                errors.append(f"SEARCH {key.decode()}: {len(search_hits(untagged))} hits")
            await c.command(b"LOGOUT")
            lat["LOGOUT"].append(time.perf_counter() - t5)
            c.close()
            loops += 1
        return loops

    async def main() -> int:
        deadline = time.perf_counter() + seconds
        loops = await asyncio.gather(*(client(i, deadline) for i in range(run.args.mix_clients)))
        return sum(loops)

    t0 = time.perf_counter()
    loops = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    run.check(t.name, "mix", not errors, f"{len(errors)} wrong answers, e.g. {errors[:2]}")
    ops = sum(len(v) for k, v in lat.items() if k != "connect")
    out["mix_ops_per_s"] = ops / elapsed
    out["mix_sessions_per_s"] = loops / elapsed
    for k, v in lat.items():
        out[f"mix_{k}_p50_ms"] = percentile(v, 50) * 1e3
        out[f"mix_{k}_p99_ms"] = percentile(v, 99) * 1e3


def phase_pop3(run: Run, t: Target, out: dict[str, float]) -> None:
    exp = run.exp
    n = len(exp.messages)
    name = t.name
    p = POP3Client(t.port("pop3"), USER, PASSWORD)
    t0 = time.perf_counter()
    stat = p.command(b"STAT").split()
    out["pop3_stat_ms"] = (time.perf_counter() - t0) * 1e3
    run.check(name, "pop3", int(stat[1]) == n, f"STAT count {stat[1]!r}")
    run.check(name, "pop3", int(stat[2]) == exp.total_bytes, f"STAT size {stat[2]!r}")
    t0 = time.perf_counter()
    listing = p.multiline(b"LIST")
    out["pop3_list_ms"] = (time.perf_counter() - t0) * 1e3
    sizes = [int(x.split()[1]) for x in listing.split(b"\r\n") if x]
    ordered = [exp.messages[i] for i in run.order[name]]
    run.check(name, "pop3", sizes == [len(m) for m in ordered], "LIST sizes")
    t0 = time.perf_counter()
    uidl = p.multiline(b"UIDL")
    out["pop3_uidl_ms"] = (time.perf_counter() - t0) * 1e3
    uids = [x.split()[1] for x in uidl.split(b"\r\n") if x]
    run.check(name, "pop3", len(set(uids)) == n, f"UIDL gives {len(set(uids))} distinct ids")
    t0 = time.perf_counter()
    bodies = p.pipelined([b"RETR %d" % i for i in range(1, n + 1)])
    secs = time.perf_counter() - t0
    out["pop3_retr_MBps"] = exp.total_bytes / secs / 1e6
    bad = sum(1 for b, m in zip(bodies, ordered, strict=True) if b != m)
    run.check(name, "pop3", bad == 0, f"RETR: {bad} messages differ from what was appended")
    del bodies
    t0 = time.perf_counter()
    tops = p.pipelined([b"TOP %d 0" % i for i in range(1, n + 1)])
    out["pop3_top0_ms"] = (time.perf_counter() - t0) * 1e3
    bad = sum(1 for b, m in zip(tops, ordered, strict=True) if b != m[: m.index(b"\r\n\r\n") + 4])
    run.check(name, "pop3", bad == 0, f"TOP n 0: {bad} header blocks differ")
    p.quit()


def phase_idle(run: Run, t: Target, out: dict[str, float], k: int, base_count: int) -> None:
    user = USER
    if run.args.idle_mailbox_size is not None:
        # A user whose INBOX holds only the first M corpus messages (untimed).
        user, base_count = IDLE_USER, run.args.idle_mailbox_size
        c = login(t, user)
        if b"LITERAL+" not in c.capabilities:
            raise BenchFailure(f"{t.name}: --idle-mailbox-size needs LITERAL+")
        for _u, tagged in c.pipeline(append_commands(run.exp, range(base_count), True)):
            ok(tagged, "APPEND")
        c.logout()
        settle(run, t, out, "phase")
    if isinstance(t, DovecotTarget):
        try:
            limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
        except (OSError, ValueError):
            limit = 0
        if limit and k > limit:
            run.notes.append(
                f"dovecot: K={k} idle imap processes exceed fs.inotify.max_user_instances="
                f"{limit} (all run as one uid): past that, Dovecot polls the mailbox every "
                "mailbox_idle_check_interval (30 s) instead of being woken by inotify"
            )
    # run_server restarted the server just before this phase: memory freed by
    # earlier phases would otherwise absorb the sessions' allocations.
    before = server_memory(t.pids())
    swarm = IdleSwarm(t.port("imap"), user, PASSWORD, "INBOX", k, window=run.args.idle_window)
    try:
        out["idle_setup_s"] = swarm.setup(progress=run.log)
        wrong = sum(1 for c in swarm.conns.values() if c.exists != base_count)
        run.check(t.name, "idle", wrong == 0, f"{wrong} sessions saw a wrong EXISTS at SELECT")
        time.sleep(1.0)  # let the server settle (buffers, pending frees) before measuring
        after = server_memory(t.pids())
        out["idle_conns"] = k
        out["idle_rss_before_MB"] = before["rss_MB"]
        out["idle_rss_after_MB"] = after["rss_MB"]
        out["idle_pss_before_MB"] = before["pss_MB"]
        out["idle_pss_after_MB"] = after["pss_MB"]
        out["idle_processes"] = after["processes"]
        out["idle_rss_per_conn_KB"] = (after["rss_MB"] - before["rss_MB"]) * 1024 / k
        out["idle_pss_per_conn_KB"] = (after["pss_MB"] - before["pss_MB"]) * 1024 / k
        run.log(
            f"  {t.name}: {k} idle sessions in {out['idle_setup_s']:.1f} s; PSS "
            f"{before['pss_MB']:.0f} -> {after['pss_MB']:.0f} MB"
        )
        from_250: list[float] = []
        from_data: list[float] = []
        client_cpu: list[float] = []
        client_span: list[float] = []
        early = 0
        lmtp = LMTPClient(t.port("lmtp"), user)
        for r in range(1, run.args.idle_rounds + 1):
            msg = dot_stuff(
                b"From: push@example.net\r\nTo: alice@localhost\r\n"
                b"Subject: push %d\r\nMessage-ID: <push%d@example.net>\r\n\r\nnew mail\r\n" % (r, r)
            )
            marks: list[float] = []
            fail: list[BaseException] = []

            def deliver(
                msg: bytes = msg, marks: list[float] = marks, fail: list[BaseException] = fail
            ) -> None:
                try:
                    marks.append(lmtp.send(msg))
                    marks.append(time.perf_counter())
                except BaseException as e:
                    fail.append(e)

            th = threading.Thread(target=deliver)
            th.start()
            try:
                seen = swarm.wait_exists(base_count + r, run.args.idle_timeout)
            finally:
                th.join()
            if fail:
                raise fail[0]
            data_sent, got_250 = marks
            client_cpu.append(swarm.read_cpu)
            client_span.append(swarm.read_span)
            for s in seen:
                if s < got_250:
                    early += 1
                from_250.append(max(0.0, s - got_250))
                from_data.append(s - data_sent)
        lmtp.close()
        out["idle_push_p50_ms"] = percentile(from_250, 50) * 1e3
        out["idle_push_p99_ms"] = percentile(from_250, 99) * 1e3
        out["idle_push_max_ms"] = max(from_250) * 1e3
        out["idle_push_data_p50_ms"] = percentile(from_data, 50) * 1e3
        out["idle_push_data_p99_ms"] = percentile(from_data, 99) * 1e3
        # From the first EXISTS read to the last, and the client's CPU in it.
        out["idle_read_span_ms"] = median(client_span) * 1e3
        out["idle_read_cpu_ms"] = median(client_cpu) * 1e3
        if early:
            run.notes.append(
                f"{t.name}: {early} of {len(from_250)} EXISTS arrived before the LMTP 250 "
                "reached the client (counted as 0 ms from the 250)"
            )
    finally:
        swarm.close()
    if isinstance(t, MailbagTarget):
        idle_floor(run, out, k)


def idle_floor(run: Run, out: dict[str, float], k: int) -> None:
    """The same K sessions and rounds against bench/idle_floor.c, a C loop
    that only writes the EXISTS line to each socket: the latency no server
    can beat on this machine with this client (the kernel's loopback TCP
    work on both sides, and the client's reads)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        run.notes.append("no C compiler: the IDLE push floor was not measured")
        return
    with tempfile.TemporaryDirectory(prefix="mailbag-floor-") as tmp:
        binary = Path(tmp) / "idle_floor"
        source = Path(__file__).with_name("idle_floor.c")
        subprocess.run([gcc, "-O2", "-pthread", "-o", str(binary), str(source)], check=True)
        # One writing thread, as mailbag's event loop; two, as many as the cores.
        for threads in (1, 2):
            idle_floor_run(run, out, k, binary, threads)


def idle_floor_run(run: Run, out: dict[str, float], k: int, binary: Path, threads: int) -> None:
    """One floor measurement: `threads` C threads share the writes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [str(binary), str(port), str(threads)], stdout=subprocess.PIPE, text=True
    )
    swarm: IdleSwarm | None = None
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise BenchFailure("idle_floor did not start")
        swarm = IdleSwarm(port, "floor", "floor", "INBOX", k, window=run.args.idle_window)
        swarm.setup()
        latencies: list[float] = []
        for r in range(1, run.args.idle_rounds + 1):
            time.sleep(0.3)
            t0 = time.perf_counter()
            os.kill(proc.pid, signal.SIGUSR1)
            latencies += [s - t0 for s in swarm.wait_exists(10 + r, run.args.idle_timeout)]
        out[f"idle_floor{threads}_p50_ms"] = percentile(latencies, 50) * 1e3
        out[f"idle_floor{threads}_p99_ms"] = percentile(latencies, 99) * 1e3
    finally:
        if swarm is not None:
            swarm.close()
        proc.terminate()
        proc.wait(10)


@contextmanager
def pyspy(run: Run, t: Target, phase: str) -> Iterator[None]:
    pid = t.profile_pid()
    if run.args.pyspy is None or pid is None:
        yield
        return
    run.args.pyspy.mkdir(parents=True, exist_ok=True)
    out = run.args.pyspy / f"{t.name}-{phase}.txt"
    command = ["py-spy", "record", "--format", "raw", "--nonblocking", "-r", "200"]
    proc = subprocess.Popen(
        [*command, "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def phases_after_load(phases: tuple[str, ...]) -> str | None:
    """The first phase that runs after the loading ones."""
    return next((p for p in PHASES if p in phases and p not in ("append", "lmtp")), None)


def run_server(run: Run, t: Target, k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    phases = run.args.only
    n = len(run.exp.messages)
    stored = False
    steps: list[tuple[str, Callable[[], None]]] = [
        ("append", lambda: phase_append(run, t, out)),
        ("lmtp", lambda: phase_lmtp(run, t, out)),
        ("select", lambda: phase_select(run, t, out)),
        ("meta", lambda: phase_meta(run, t, out)),
        ("envelope", lambda: phase_envelope(run, t, out)),
        ("body", lambda: phase_body(run, t, out)),
        ("search", lambda: phase_search(run, t, out)),
        ("store", lambda: phase_store(run, t, out)),
        ("mix", lambda: phase_mix(run, t, out, stored)),
        ("pop3", lambda: phase_pop3(run, t, out)),
        ("idle", lambda: phase_idle(run, t, out, k, n)),
    ]
    for name, step in steps:
        # The mailbox is always loaded: every later phase reads it.
        if name not in phases and name != "append":
            continue
        if name not in ("append", "lmtp"):
            settle(run, t, out, "load" if name == phases_after_load(phases) else "phase")
        if name in ("select", "idle"):
            # Cold SELECT; a clean baseline for memory. Outside the profiler,
            # which follows one process id.
            t.restart()
            settle(run, t, out, "restart")
        run.log(f"{t.name}: {name}")
        t0 = time.perf_counter()
        with pyspy(run, t, name):
            step()
        run.log(f"{t.name}: {name} done in {time.perf_counter() - t0:.1f} s")
        if name == "store":
            stored = True
        if name == "append" and name not in phases:
            for key in ("append_msgps", "append_MBps"):
                out.pop(key, None)
    return out


# ---- the table ---------------------------------------------------------------------------

HIGH, LOW = "higher", "lower"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    better: str
    target: float | None = None  # mailbag advantage (x) the issue asks for
    absolute: float | None = None  # an upper bound on mailbag's own value


def figures(mix_commands: tuple[str, ...], load_connections: int) -> list[Figure]:
    c = load_connections
    f = [
        Figure("append_msgps", "APPEND pipelined", "msg/s", HIGH, 10),
        Figure("append_MBps", "APPEND pipelined", "MB/s", HIGH),
        Figure(f"append{c}_msgps", f"APPEND pipelined, {c} sessions", "msg/s", HIGH),
        Figure(f"append{c}_MBps", f"APPEND pipelined, {c} sessions", "MB/s", HIGH),
        Figure("lmtp1_msgps", "LMTP DATA, 1 connection", "msg/s", HIGH, 10),
        Figure("lmtp4_msgps", "LMTP DATA, 4 connections", "msg/s", HIGH, 10),
        Figure("lmtpb1_msgps", "LMTP BDAT pipelined, 1 connection", "msg/s", HIGH, 10),
        Figure("lmtpb4_msgps", "LMTP BDAT pipelined, 4 connections", "msg/s", HIGH, 10),
        Figure("settle_load_s", "busy after load (background work)", "s", LOW),
        Figure("settle_restart_s", "busy after restart", "s", LOW),
        Figure("settle_phase_s", "busy after other phases", "s", LOW),
        Figure("select_cold_ms", "SELECT cold (after restart)", "ms", LOW, 1),
        Figure("select_warm_ms", "SELECT warm (median of 5)", "ms", LOW, 1),
        Figure("meta_ms", "UID FETCH 1:* (UID FLAGS SIZE DATE)", "ms", LOW, 1 / 1.5),
        Figure("envelope_ms", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)", "ms", LOW, 1),
        Figure("body_MBps", "FETCH 1:* BODY.PEEK[]", "MB/s", HIGH, 1),
        Figure("search_from_ms", "SEARCH FROM", "ms", LOW, 2),
        Figure("search_subject_ms", "SEARCH SUBJECT", "ms", LOW, 2),
        Figure("search_text_ms", "SEARCH TEXT", "ms", LOW, 20),
        Figure("search_body_ms", "SEARCH BODY", "ms", LOW, 20),
        Figure("search_since_ms", "SEARCH SINCE", "ms", LOW, 2),
        Figure("search_unseen_ms", "SEARCH UNSEEN", "ms", LOW),
        Figure("store_ms", "STORE 1:* +FLAGS (\\Seen $label)", "ms", LOW, 1),
        Figure("mix_ops_per_s", "mix: commands/s", "ops/s", HIGH, 1),
        Figure("mix_sessions_per_s", "mix: sessions/s", "/s", HIGH),
    ]
    for cmd in mix_commands:
        f.append(Figure(f"mix_{cmd}_p50_ms", f"mix: {cmd} p50", "ms", LOW))
        f.append(Figure(f"mix_{cmd}_p99_ms", f"mix: {cmd} p99", "ms", LOW))
    f += [
        Figure("pop3_stat_ms", "POP3 STAT", "ms", LOW),
        Figure("pop3_list_ms", "POP3 LIST", "ms", LOW),
        Figure("pop3_uidl_ms", "POP3 UIDL", "ms", LOW),
        Figure("pop3_retr_MBps", "POP3 RETR all (pipelined)", "MB/s", HIGH, 1),
        Figure("pop3_top0_ms", "POP3 TOP n 0, all (pipelined)", "ms", LOW),
        Figure("idle_conns", "IDLE sessions", "", HIGH),
        Figure("idle_setup_s", "IDLE: LOGIN+SELECT+IDLE all", "s", LOW),
        Figure("idle_rss_before_MB", "server RSS before", "MB", LOW),
        Figure("idle_rss_after_MB", "server RSS with sessions", "MB", LOW),
        Figure("idle_pss_before_MB", "server PSS before", "MB", LOW),
        Figure("idle_pss_after_MB", "server PSS with sessions", "MB", LOW),
        Figure("idle_rss_per_conn_KB", "RSS per idle session", "KB", LOW, None, 50),
        Figure("idle_pss_per_conn_KB", "PSS per idle session", "KB", LOW, None, 50),
        Figure("idle_push_p50_ms", "IDLE push p50 from LMTP 250", "ms", LOW, None, 50),
        Figure("idle_push_p99_ms", "IDLE push p99 from LMTP 250", "ms", LOW),
        Figure("idle_push_max_ms", "IDLE push max from LMTP 250", "ms", LOW),
        Figure("idle_push_data_p50_ms", "IDLE push p50 from end of DATA", "ms", LOW, None, 50),
        Figure("idle_push_data_p99_ms", "IDLE push p99 from end of DATA", "ms", LOW),
        Figure("idle_floor1_p50_ms", "IDLE push p50, C write loop (floor)", "ms", LOW),
        Figure("idle_floor1_p99_ms", "IDLE push p99, C write loop (floor)", "ms", LOW),
        Figure("idle_floor2_p50_ms", "IDLE push p50, C, 2 writing threads", "ms", LOW),
        Figure("idle_floor2_p99_ms", "IDLE push p99, C, 2 writing threads", "ms", LOW),
        Figure("idle_read_span_ms", "IDLE: first to last EXISTS read", "ms", LOW),
        Figure("idle_read_cpu_ms", "IDLE: bench client CPU in that", "ms", LOW),
    ]
    return f


def advantage(fig: Figure, m: float, d: float) -> float | None:
    """How many times better mailbag is (>1: mailbag better)."""
    try:
        return m / d if fig.better == HIGH else d / m
    except ZeroDivisionError:
        return None


def table(
    results: dict[str, dict[str, float]], mix_commands: tuple[str, ...], load_connections: int
) -> list[dict[str, Any]]:
    rows = []
    mb = results.get("mailbag", {})
    dv = results.get("dovecot", {})
    for fig in figures(mix_commands, load_connections):
        if fig.key not in mb and fig.key not in dv:
            continue
        m, d = mb.get(fig.key), dv.get(fig.key)
        adv = advantage(fig, m, d) if m is not None and d is not None else None
        status = ""
        if fig.target is not None and adv is not None:
            status = "ok" if adv >= fig.target else "MISS"
        if fig.absolute is not None and m is not None:
            status = "ok" if m <= fig.absolute else "MISS"
        rows.append(
            {
                "figure": fig.key,
                "label": fig.label,
                "unit": fig.unit,
                "better": fig.better,
                "mailbag": m,
                "dovecot": d,
                "advantage": adv,
                "target": (
                    f">={fig.target:.2g}x"
                    if fig.target is not None
                    else (f"<={fig.absolute:g} {fig.unit}" if fig.absolute is not None else "")
                ),
                "status": status,
            }
        )
    return rows


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v != v:  # NaN
        return "nan"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'figure':<38}{'unit':>7}{'mailbag':>11}{'dovecot':>11}"
        f"{'mailbag adv.':>14}{'target':>12}{'':>6}"
    )
    print(f"{'':<38}{'':>7}{'':>11}{'':>11}{'(>1 = better)':>14}")
    for r in rows:
        arrow = "↑" if r["better"] == HIGH else "↓"
        adv = f"{r['advantage']:.2f}x" if r["advantage"] is not None else "-"
        print(
            f"{r['label'][:36]:<36} {arrow}{r['unit']:>7}{fmt(r['mailbag']):>11}"
            f"{fmt(r['dovecot']):>11}{adv:>14}{r['target']:>12}{r['status']:>6}"
        )
    print("↑ higher is better, ↓ lower is better")
    print("mailbag adv. = dovecot/mailbag for ↓ figures, mailbag/dovecot for ↑ figures")


# ---- main -----------------------------------------------------------------------------------


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=None, help="N (default 1000; --big: 100000)")
    ap.add_argument("--idle", type=int, default=100, help="K idle sessions (default 100)")
    ap.add_argument("--idle-mailbag", type=int, default=None, help="K for mailbag if different")
    ap.add_argument("--idle-rounds", type=int, default=2, help="deliveries timed in the idle phase")
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument(
        "--idle-mailbox-size",
        type=int,
        default=None,
        help="idle on another user's INBOX of this many messages (default: the N-message INBOX)",
    )
    ap.add_argument("--idle-window", type=int, default=64, help="sessions set up at once")
    ap.add_argument(
        "--load-connections",
        type=int,
        default=None,
        help="APPEND over this many sessions at once (default 1; --big: 8)",
    )
    ap.add_argument("--mix-clients", type=int, default=20)
    ap.add_argument("--mix-seconds", type=float, default=10.0)
    ap.add_argument(
        "--only",
        type=lambda v: tuple(x.strip() for x in v.split(",") if x.strip()),
        default=None,
        help=f"comma-separated phases (default all: {','.join(PHASES)})",
    )
    ap.add_argument("--mailbag-only", action="store_true")
    ap.add_argument(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="mailbag's event loop (`mailbag serve --event-loop`)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="mailbag's server processes (`mailbag serve --workers`)",
    )
    ap.add_argument("--big", action="store_true", help="100k-message variant, mailbag only")
    ap.add_argument("--dovecot-plain", action="store_true", help="Dovecot with {PLAIN} passwords")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--pyspy", type=Path, default=None, help="py-spy raw profiles per phase here")
    args = ap.parse_args()
    if args.big:
        args.mailbag_only = True
        args.messages = args.messages or 100_000
        args.only = args.only or BIG_PHASES
        args.load_connections = args.load_connections or 8
    args.load_connections = args.load_connections or 1
    args.messages = args.messages or 1000
    args.only = args.only or PHASES
    unknown = set(args.only) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases: {', '.join(sorted(unknown))}")
    k_mailbag = args.idle_mailbag or args.idle
    nofile = raise_open_files()
    if "idle" in args.only and max(k_mailbag, args.idle) + 200 > nofile:
        print(
            f"open-files limit {nofile} is below K={max(k_mailbag, args.idle)} (+200): raise it "
            "(ulimit -n) for this shell; the servers inherit it",
            file=sys.stderr,
        )
        return 2

    started = time.perf_counter()
    t0 = time.perf_counter()
    corpus = generate(args.messages, args.seed)
    exp = Expected.build(corpus)
    run = Run(args, exp)
    mb = exp.total_bytes / 1e6
    run.log(f"corpus: {args.messages} messages, {mb:.1f} MB in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory(prefix="mailbag-bench-") as tmp:
        targets: list[Callable[[], Target]] = [
            lambda: MailbagTarget(Path(tmp), args.event_loop, args.workers)
        ]
        ks = [k_mailbag]
        if not args.mailbag_only:
            if dovecot_binary():
                procs = max(1000, args.idle + args.mix_clients + 200)
                targets.append(lambda: DovecotTarget(procs, args.dovecot_plain))
                ks.append(args.idle)
            else:
                run.notes.append("dovecot not installed: mailbag figures only")
        for make, k in zip(targets, ks, strict=True):
            target = make()
            try:
                run.results[target.name] = run_server(run, target, k)
            finally:
                target.stop()

    mix_commands = ("connect", "LOGIN", "SELECT", "FETCH", "SEARCH", "LOGOUT")
    if len(run.envelope_answers) == 2:
        a, b = run.envelope_answers["mailbag"], run.envelope_answers["dovecot"]
        diff = sorted(i for i in a if a[i] != b.get(i))
        if diff:
            i = diff[0]
            run.notes.append(
                f"ENVELOPE/BODYSTRUCTURE: {len(diff)} of {len(a)} answers differ byte-for-byte "
                f"between mailbag and Dovecot; first, corpus message {i}:\n"
                f"  mailbag: {a[i][:400]!r}\n  dovecot: {b[i][:400]!r}"
            )
        else:
            run.notes.append(f"ENVELOPE/BODYSTRUCTURE: all {len(a)} answers identical to Dovecot's")
    rows = table(run.results, mix_commands, args.load_connections)
    servers = " vs ".join(run.results)
    idle = f"K={k_mailbag}" + ("" if args.mailbag_only else f"/{args.idle}")
    print(
        f"\n{servers}: N={args.messages} messages ({mb:.1f} MB); mailbag on {args.event_loop}"
        + (f" x {args.workers} workers" if args.workers > 1 else "")
        + ";"
        f" phases {','.join(args.only)}"
        + (f"; {idle} idle" if "idle" in args.only else "")
        + (
            f"; mix {args.mix_clients} clients x {args.mix_seconds:g} s"
            if "mix" in args.only
            else ""
        )
    )
    print_table(rows)
    for note in run.notes:
        print(f"note: {note}")
    total = time.perf_counter() - started
    print(f"total run time {total:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "messages": args.messages,
                    "event_loop": args.event_loop,
                    "workers": args.workers,
                    "MB": mb,
                    "idle": {"mailbag": k_mailbag, "dovecot": args.idle},
                    "phases": list(args.only),
                    "results": run.results,
                    "table": rows,
                    "failures": run.failures,
                    "notes": run.notes,
                    "seconds": total,
                },
                indent=2,
            )
        )
    if run.failures:
        print(f"\nFAILED ({len(run.failures)}):")
        for f in run.failures:
            print(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
