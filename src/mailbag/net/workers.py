"""Several server processes on one store: `mailbag serve --workers N`.

One process runs all protocol handling on one core (README, "Cores"). With
workers, a parent process binds the listening sockets and starts N copies of
`mailbag serve` that inherit them; each worker accepts connections from the
shared sockets (a worker busy with a command is not waiting in epoll, so an
idle one takes the next connection) and runs its own event loop, store
connections and SQLite writer. What they share goes through the store:

- change records: each commit's records are in `change_log`, and every
  worker's follower publishes the others' (store/sqlite/follow.py);
- POP3 maildrop locks are flock()s, \\Recent claims are committed before
  SELECT answers (`SQLiteStore(multi_process=True)`);
- the background parser and full-text indexer run in worker 0 only.

The parent only supervises: a worker that dies is started again, SIGTERM or
SIGINT stops every worker and then the parent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType

from ..config import Config
from ..errors import ConfigError

log = logging.getLogger("mailbag.server")

# "index/count" of a worker process; absent in the parent and a lone server.
WORKER_ENV = "MAILBAG_WORKER"
# The inherited listening sockets: "imap=5,6;pop3=7".
FDS_ENV = "MAILBAG_LISTEN_FDS"
# A pipe a worker writes one byte to once it serves.
READY_ENV = "MAILBAG_READY_FD"
# How long the workers may take to start.
START_TIMEOUT = 60.0
LISTEN_BACKLOG = 1024
# More restarts than this per worker within RESTART_WINDOW seconds: give up.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# How long stopping workers may take before they are killed.
STOP_GRACE = 30.0
# How often a worker looks whether its parent is still there.
PARENT_CHECK = 1.0


def listen_error(protocol: str, host: str, port: int, e: OSError) -> ConfigError:
    import errno

    if e.errno == errno.EADDRINUSE:
        return ConfigError(
            f"{protocol}: port {port} on {host} is already in use "
            f"(choose another with --{protocol}-port, or 'off')"
        )
    return ConfigError(f"{protocol}: cannot listen on {host}:{port}: {e.strerror}")


def bind_listeners(cfg: Config) -> dict[str, list[socket.socket]]:
    """Listening sockets for every configured port, as asyncio would bind
    them (every address of the host; IPv6 sockets v6-only)."""
    out: dict[str, list[socket.socket]] = {}
    try:
        for protocol, port in cfg.ports.items():
            if port is None:
                continue
            try:
                infos = socket.getaddrinfo(
                    cfg.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
            except socket.gaierror as e:
                raise ConfigError(f"{protocol}: cannot resolve {cfg.host}: {e}") from None
            socks = out.setdefault(protocol, [])
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as e:
                    raise listen_error(protocol, cfg.host, port, e) from None
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
    except BaseException:
        for socks in out.values():
            for sock in socks:
                sock.close()
        raise
    return out


def worker_identity() -> tuple[int, int] | None:
    """(index, count) when this process is a worker of `serve --workers`."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    index, _, count = value.partition("/")
    return int(index), int(count)


def report_ready() -> None:
    """A worker serves now: tell the parent (once)."""
    fd = os.environ.pop(READY_ENV, None)
    if fd is not None:
        os.write(int(fd), b".")
        os.close(int(fd))


def watch_parent(loop: asyncio.AbstractEventLoop, on_gone: Callable[[], None]) -> None:
    """Call `on_gone` once the parent process is gone (checked every
    PARENT_CHECK seconds): a worker whose supervisor was killed must not go
    on serving the sockets alone, unsupervised and unstoppable by its
    SIGTERM."""
    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            log.error("the parent process is gone; stopping")
            on_gone()
        else:
            loop.call_later(PARENT_CHECK, check)

    loop.call_later(PARENT_CHECK, check)


def inherited_listeners() -> dict[str, list[socket.socket]]:
    out: dict[str, list[socket.socket]] = {}
    for item in filter(None, os.environ.get(FDS_ENV, "").split(";")):
        protocol, _, fds = item.partition("=")
        out[protocol] = [socket.socket(fileno=int(fd)) for fd in fds.split(",")]
    return out


class Supervisor:
    """The parent of `serve --workers`: starts the workers, restarts one
    that dies, and stops them all on SIGTERM/SIGINT."""

    def __init__(
        self, count: int, listeners: dict[str, list[socket.socket]], argv: Sequence[str]
    ) -> None:
        self.count = count
        self.listeners = listeners
        self.argv = list(argv)
        self.children: list[subprocess.Popen[bytes]] = []
        self._stopping = False
        self._restarts: list[deque[float]] = [deque() for _ in range(count)]
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        fds = {p: [s.fileno() for s in socks] for p, socks in self.listeners.items()}
        env = dict(os.environ)
        env[WORKER_ENV] = f"{index}/{self.count}"
        env[FDS_ENV] = ";".join(f"{p}={','.join(map(str, f))}" for p, f in fds.items())
        env[READY_ENV] = str(self._ready_w)
        return subprocess.Popen(
            [sys.executable, "-m", "mailbag", *self.argv],
            env=env,
            pass_fds=[self._ready_w, *(fd for f in fds.values() for fd in f)],
            stdin=subprocess.DEVNULL,
            # The parent prints what a person reads; workers log to stderr.
            stdout=subprocess.DEVNULL,
        )

    def _read_ready(self) -> int:
        try:
            return len(os.read(self._ready_r, 4096))
        except BlockingIOError:
            return 0

    def start(self) -> bool:
        """Start the workers and wait until each serves; False (all stopped)
        when one exits first or they take longer than START_TIMEOUT."""
        self.children = [self._spawn(i) for i in range(self.count)]
        ready = 0
        deadline = time.monotonic() + START_TIMEOUT
        while ready < self.count:
            ready += self._read_ready()
            if any(c.poll() is not None for c in self.children) or time.monotonic() > deadline:
                self._stop()
                return False
            time.sleep(0.02)
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def watch_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self) -> int:
        """Supervise the started workers until a signal; the exit status."""
        failed = False
        while not self._stopping:
            self._read_ready()  # restarted workers' bytes
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is None:
                    continue
                now = time.monotonic()
                recent = self._restarts[i]
                while recent and recent[0] < now - RESTART_WINDOW:
                    recent.popleft()
                if len(recent) >= MAX_RESTARTS:
                    log.error(
                        "worker %d exited with status %s %d times within %d s; stopping",
                        i,
                        code,
                        MAX_RESTARTS + 1,
                        RESTART_WINDOW,
                    )
                    failed = True
                    self._stopping = True
                    break
                log.error("worker %d exited with status %s; starting it again", i, code)
                recent.append(now)
                self.children[i] = self._spawn(i)
            time.sleep(0.1)
        return self._stop() or int(failed)

    def _stop(self) -> int:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        status = 0
        for child in self.children:
            try:
                code = child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            # SIGINT from a terminal reaches the workers too; that is a stop.
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                status = 1
        for socks in self.listeners.values():
            for sock in socks:
                sock.close()
        os.close(self._ready_r)
        os.close(self._ready_w)
        return status
