"""Message parsing: facts computed once at delivery, served by FETCH and SEARCH.

Entry point: :func:`compute_facts` (never raises). The structures it stores
and the helpers that serve them:

* :mod:`.envelope` — ENVELOPE shape;
* :mod:`.bodystructure` — BODYSTRUCTURE shape, BODY via
  :func:`body_from_bodystructure`, :func:`rev1` for IMAP4rev1 clients;
* :mod:`.sections` — the part tree, :func:`resolve_section` for
  BODY[section] byte ranges, :func:`binary_section` / :func:`binary_size`
  for BINARY (raising :class:`UnknownCTE`), :func:`header_subset` for
  HEADER.FIELDS;
* :mod:`.search` — decoded header and body text for SEARCH;
* :mod:`.headers` — :func:`wire` turns a structure string back into octets.
"""

from .bodystructure import body_from_bodystructure, rev1
from .decode import UnknownCTE, decode_transfer
from .facts import compute_facts, compute_facts_off_loop
from .headers import decode_value, wire
from .search import body_text, contains, header_text, header_values, message_text
from .sections import binary_section, binary_size, find_part, header_subset, resolve_section

__all__ = [
    "UnknownCTE",
    "binary_section",
    "binary_size",
    "body_from_bodystructure",
    "body_text",
    "compute_facts",
    "compute_facts_off_loop",
    "contains",
    "decode_transfer",
    "decode_value",
    "find_part",
    "header_subset",
    "header_text",
    "header_values",
    "message_text",
    "resolve_section",
    "rev1",
    "wire",
]
