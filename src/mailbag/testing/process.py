"""A real `mailbag serve` process, as a user would run it.

Used by end-to-end tests and benchmarks: starts the console script with every
port set to 0, reads the `mailbag: PROTO listening on HOST:PORT` lines, and
stops it with SIGTERM (or SIGKILL for crash tests).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import PROTOCOLS

LISTEN_RE = re.compile(r"^mailbag: (\w+) listening on (\S+):(\d+)$")


def mailbag_command() -> list[str]:
    """How to run the CLI: the installed script next to this Python, else -m."""
    script = Path(sys.executable).with_name("mailbag")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mailbag"]


def run_cli(
    args: Sequence[str], data_dir: Path, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MAILBAG_DATA_DIR=str(data_dir))
    return subprocess.run(
        [*mailbag_command(), *args],
        input=input,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    def __init__(
        self,
        data_dir: Path,
        extra_args: Sequence[str] = (),
        ports: dict[str, str] | None = None,
        config: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.port_args = dict.fromkeys(PROTOCOLS, "0")
        self.port_args.update(ports or {})
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}
        self.host = "127.0.0.1"
        self.stdout_lines: list[str] = []
        self.stderr_path = data_dir.parent / f"{data_dir.name}-serve.log"
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*mailbag_command(), "serve", "--data-dir", str(self.data_dir), "--host", self.host]
        if self.config is not None:
            args += ["--config", str(self.config)]
        for proto, value in self.port_args.items():
            args += [f"--{proto}-port", value]
        args += self.extra_args
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        stderr.close()
        wanted = {p for p, v in self.port_args.items() if v != "off"}
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            m = LISTEN_RE.match(line)
            if m:
                self.ports[m.group(1)] = int(m.group(3))
            if line.startswith("mailbag: TLS certificate"):
                break
        missing = wanted - set(self.ports) - {"imap", "imaps"}
        if missing or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(
                f"mailbag serve did not start ({missing=}): {self.stdout_lines} "
                f"{self.stderr_path.read_text(errors='replace')[-3000:]}"
            )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))

    def port(self, protocol: str) -> int:
        return self.ports[protocol]

    def add_user(self, address: str, password: str) -> None:
        r = run_cli(
            ["user", "add", address, "--password-stdin"],
            self.data_dir,
            input=password.encode() + b"\n",
        )
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
