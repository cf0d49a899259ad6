"""Delivery and POP3 benchmark: mailbag against a private Dovecot, same run.

    python bench/delivery.py [--messages 2000] [--connections 4] [--json out.json]

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
import poplib
import smtplib
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


def deliver(port: int, messages: list[bytes], connections: int, lmtp: bool) -> float:
    """Deliver all messages over `connections` parallel clients; return seconds."""
    chunks = [messages[i::connections] for i in range(connections)]
    errors: list[BaseException] = []

    def worker(chunk: list[bytes]) -> None:
        try:
            client = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port)
            client.ehlo("bench")
            for msg in chunk:
                refused = client.sendmail("bench@example.net", [USER], msg)
                if refused:
                    raise RuntimeError(f"refused: {refused}")
            client.quit()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
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


def pop3_phase(port: int, expected: list[bytes]) -> dict[str, float]:
    pop = poplib.POP3("127.0.0.1", port)
    pop.user(USER)
    pop.pass_(PASSWORD)
    t0 = time.perf_counter()
    count, _ = pop.stat()
    t_stat = time.perf_counter() - t0
    if count != len(expected):
        raise AssertionError(f"POP3 STAT {count} != {len(expected)}")
    t0 = time.perf_counter()
    uidl = pop.uidl()[1]
    t_uidl = time.perf_counter() - t0
    if len(set(uidl)) != count:
        raise AssertionError("UIDL not unique")
    t0 = time.perf_counter()
    total = 0
    got: list[bytes] = []
    for i in range(1, count + 1):
        _, lines, octets = pop.retr(i)
        total += octets
        raw = b"\r\n".join(lines) + b"\r\n"
        got.append(strip_trace(raw, b"From: "))
    t_retr = time.perf_counter() - t0
    pop.quit()
    if sorted(got) != sorted(expected):
        raise AssertionError("POP3 RETR bytes differ from what was delivered")
    return {"stat_s": t_stat, "uidl_s": t_uidl, "retr_s": t_retr, "retr_MBps": total / t_retr / 1e6}


def run_server(
    name: str,
    lmtp_port: int,
    pop3_port: int,
    smtp_port: int | None,
    messages: list[bytes],
    connections: int,
    reset: Callable[[], None],
) -> dict[str, float]:
    out: dict[str, float] = {}
    n = len(messages)
    secs = deliver(lmtp_port, messages, 1, lmtp=True)
    out["lmtp_1_msgps"] = n / secs
    out.update({f"pop3_{k}": v for k, v in pop3_phase(pop3_port, messages).items()})
    reset()
    secs = deliver(lmtp_port, messages, connections, lmtp=True)
    out[f"lmtp_{connections}_msgps"] = n / secs
    reset()
    if smtp_port is not None:
        secs = deliver(smtp_port, messages, connections, lmtp=False)
        out[f"smtp_{connections}_msgps"] = n / secs
        reset()
    print(f"{name}: done", file=sys.stderr)
    return out


def empty_inbox(port: int) -> Callable[[], None]:
    def reset() -> None:
        pop = poplib.POP3("127.0.0.1", port)
        pop.user(USER)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        for i in range(1, count + 1):
            pop.dele(i)
        pop.quit()

    return reset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=4)
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
