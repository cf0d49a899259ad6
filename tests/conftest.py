"""Put the folders that hold shared test helpers on sys.path.

pytest runs with --import-mode=importlib (test files in different folders may
share a name), which does not add test folders to sys.path; helper modules
(smtp_support, pop3_helpers, imap_support, imap_wire, the Dovecot oracle) are
imported by their plain names from here on.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _folder in ("session", "session/imap", "interop", "unit/message"):
    _path = str(_HERE / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)
