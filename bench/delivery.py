"""Delivery and POP3 benchmark: mailbag against a private Dovecot, same run.

    python bench/delivery.py [--messages 2000] [--connections 1,4,16] [--json out.json]

Phases (each verified, a wrong answer fails the run):
  lmtp-1   LMTP delivery of N messages over one connection
  lmtp-C   LMTP delivery of N messages over C connections
  smtp-C   SMTP delivery over C connections (mailbag only: Dovecot has no SMTP server)
  pop3     STAT, UIDL, RETR of every message (MB/s), bytes compared with what was sent

Both servers store durably before they acknowledge: Dovecot fsyncs each
message; mailbag commits groups of messages per fsync.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate
from mailbag.testing.dovecot import PrivateDovecot, dovecot_binary
from mailbag.testing.process import ServeProcess

USER = "alice@localhost"
PASSWORD = "bench-password"


class RawLMTP:
    """A minimal pipelining LMTP/SMTP client, so the client costs little next to
    the server: messages are dot-stuffed before the clock starts and each
    transaction is two writes (MAIL+RCPT+DATA, then the data)."""

    def __init__(self, port: int, lmtp: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self._reply()
        self.sock.sendall(b"LHLO bench\r\n" if lmtp else b"EHLO bench\r\n")
        self._reply()

    def _reply(self) -> bytes:
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                return line

    def send(self, stuffed: bytes) -> None:
        self.sock.sendall(
            b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + USER.encode() + b">\r\nDATA\r\n"
        )
        for _ in range(3):
            line = self._reply()
            if line[:1] not in (b"2", b"3"):
                raise RuntimeError(f"refused: {line!r}")
        self.sock.sendall(stuffed)
        line = self._reply()
        if not line.startswith(b"250"):
            raise RuntimeError(f"not delivered: {line!r}")

    def close(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self._reply()
        self.sock.close()


def stuff(message: bytes) -> bytes:
    body = message.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


def deliver(port: int, messages: list[bytes], connections: int, lmtp: bool) -> float:
    """Deliver all messages over `connections` parallel clients; return seconds."""
    stuffed = [stuff(m) for m in messages]
    chunks = [stuffed[i::connections] for i in range(connections)]
    errors: list[BaseException] = []
    clients = [RawLMTP(port, lmtp) for _ in range(connections)]

    def worker(client: RawLMTP, chunk: list[bytes]) -> None:
        try:
            for msg in chunk:
                client.send(msg)
            client.close()
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=worker, args=(cl, ch))
        for cl, ch in zip(clients, chunks, strict=True)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"delivery failed: {errors[0]!r}")
    return elapsed


def strip_trace(raw: bytes, marker: bytes) -> bytes:
    return raw[raw.index(marker) :]


class RawPOP3:
    """Reads multi-line answers with large recv() calls, not line by line."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.line()
        self.command(f"USER {USER}")
        self.command(f"PASS {PASSWORD}")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"POP3 error: {line!r}")
        return line

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def multiline(self, text: str) -> bytes:
        self.command(text)
        # The body ends at CRLF "." CRLF; an empty body is just ".\r\n".
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        start = 0
        while (i := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(0, len(self.buf) - 4)
            self._more()
        body, self.buf = self.buf[: i + 2], self.buf[i + 5 :]
        return body.replace(b"\r\n..", b"\r\n.")


def pop3_phase(port: int, expected: list[bytes]) -> dict[str, float]:
    pop = RawPOP3(port)
    t0 = time.perf_counter()
    count = int(pop.command("STAT").split()[1])
    t_stat = time.perf_counter() - t0
    if count != len(expected):
        raise AssertionError(f"POP3 STAT {count} != {len(expected)}")
    t0 = time.perf_counter()
    uidl = pop.multiline("UIDL").split(b"\r\n")[:-1]
    t_uidl = time.perf_counter() - t0
    if len({u.split()[1] for u in uidl}) != count:
        raise AssertionError("UIDL not unique")
    t0 = time.perf_counter()
    pop.multiline("LIST")
    t_list = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = 0
    got: list[bytes] = []
    for i in range(1, count + 1):
        raw = pop.multiline(f"RETR {i}")
        total += len(raw)
        got.append(strip_trace(raw, b"From: "))
    t_retr = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        pop.multiline(f"TOP {i} 0")
    t_top = time.perf_counter() - t0
    pop.command("QUIT")
    if sorted(got) != sorted(expected):
        raise AssertionError("POP3 RETR bytes differ from what was delivered")
    return {
        "stat_s": t_stat,
        "list_s": t_list,
        "uidl_s": t_uidl,
        "top0_s": t_top,
        "retr_s": t_retr,
        "retr_MBps": total / t_retr / 1e6,
    }


def run_server(
    name: str,
    lmtp_port: int,
    pop3_port: int,
    smtp_port: int | None,
    messages: list[bytes],
    connections: list[int],
    reset: Callable[[], None],
) -> dict[str, float]:
    out: dict[str, float] = {}
    n = len(messages)
    for i, conns in enumerate(connections):
        secs = deliver(lmtp_port, messages, conns, lmtp=True)
        out[f"lmtp_{conns}_msgps"] = n / secs
        if i == 0:
            out.update({f"pop3_{k}": v for k, v in pop3_phase(pop3_port, messages).items()})
        reset()
    if smtp_port is not None:
        for conns in connections:
            secs = deliver(smtp_port, messages, conns, lmtp=False)
            out[f"smtp_{conns}_msgps"] = n / secs
            reset()
    print(f"{name}: done", file=sys.stderr)
    return out


def empty_inbox(port: int) -> Callable[[], None]:
    def reset() -> None:
        pop = RawPOP3(port)
        count = int(pop.command("STAT").split()[1])
        for i in range(1, count + 1):
            pop.command(f"DELE {i}")
        pop.command("QUIT")

    return reset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument(
        "--connections",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 4, 16],
        help="comma-separated connection counts (default 1,4,16)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    corpus = generate(args.messages, args.seed)
    mb = sum(map(len, corpus.messages)) / 1e6
    print(f"corpus: {args.messages} messages, {mb:.1f} MB", file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mailbag-bench-") as tmp:
        root = Path(tmp)
        with ServeProcess(root / "mailbag", extra_args=["--log-level", "WARNING"]) as server:
            server.add_user(USER, PASSWORD)
            results["mailbag"] = run_server(
                "mailbag",
                server.port("lmtp"),
                server.port("pop3"),
                server.port("smtp"),
                corpus.messages,
                args.connections,
                empty_inbox(server.port("pop3")),
            )
        if dovecot_binary():
            with PrivateDovecot(None, {USER: PASSWORD}) as dv:
                results["dovecot"] = run_server(
                    "dovecot",
                    dv.ports["lmtp"],
                    dv.ports["pop3"],
                    None,
                    corpus.messages,
                    args.connections,
                    empty_inbox(dv.ports["pop3"]),
                )
        else:
            print("dovecot not installed: mailbag figures only", file=sys.stderr)
    keys = list(results["mailbag"])
    print(f"\n{'figure':<22}{'mailbag':>12}{'dovecot':>12}{'ratio':>9}")
    for k in keys:
        m = results["mailbag"][k]
        d = results.get("dovecot", {}).get(k)
        # Higher is better for rates; lower is better for seconds.
        ratio = "" if d is None else f"{(m / d if not k.endswith('_s') else d / m):.2f}x"
        print(f"{k:<22}{m:>12.2f}{(f'{d:.2f}' if d is not None else '-'):>12}{ratio:>9}")
    if args.json:
        args.json.write_text(json.dumps({"messages": args.messages, "MB": mb, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
