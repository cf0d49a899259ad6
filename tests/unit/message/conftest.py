"""Make the Dovecot oracle next to these tests importable (pytest runs with
--import-mode=importlib, which does not put test folders on sys.path)."""

from __future__ import annotations

import pathlib
import sys

_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
