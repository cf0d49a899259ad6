"""The repository's own rules, checked where CI runs: ruff clean, mypy --strict on src/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check_and_format() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    r = run(ruff, "check", "src", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(ruff, "format", "--check", "src", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_strict_on_src() -> None:
    r = run(sys.executable, "-m", "mypy", "src")
    assert r.returncode == 0, r.stdout + r.stderr
