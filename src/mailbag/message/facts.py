"""Facts computed once when a message enters the store (DESIGN.md §3)."""

from __future__ import annotations

from ..store.models import MessageFacts
from .headers import header_fields, split_header


def compute_facts(data: bytes) -> MessageFacts:
    """Parse what FETCH and SEARCH will need. Never raises on any input."""
    header, body_offset = split_header(data)
    body = data[body_offset:]
    body_lines = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
    return MessageFacts(
        header_size=body_offset,
        body_lines=body_lines,
        header_fields=header_fields(header),
    )
