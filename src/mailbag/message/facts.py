"""Facts computed once when a message enters the store (DESIGN.md §3).

:func:`compute_facts` is the entry point; it never raises. What it fills:

* `envelope` — ENVELOPE, see :mod:`mailbag.message.envelope`;
* `bodystructure` — BODYSTRUCTURE, see :mod:`mailbag.message.bodystructure`
  (BODY is `body_from_bodystructure(bodystructure)`);
* `parts` — the MIME part tree with byte offsets for BODY[section],
  BINARY[section] and BINARY.SIZE, see :mod:`mailbag.message.sections`;
* `header_size` — octets of the top-level header block incl. the blank line
  (BODY[HEADER] is data[:header_size], BODY[TEXT] data[header_size:]);
* `body_lines` — LF count of the top-level body;
* `header_fields` — decoded values of the headers SEARCH/SORT/THREAD use;
* `sent_date` — the first Date: header as an aware datetime, or None;
* `forms` — ENVELOPE, BODY and BODYSTRUCTURE serialised for IMAP, when they
  are the same for every client (`mailbag.proto.imap.structures`).

All strings in envelope/bodystructure are `str` that may carry undecodable
bytes as lone surrogates; `mailbag.message.headers.wire(s)` gives the octets
to send. Sizes are octets of the bytes given, which the store keeps with CRLF
line ends (a message with bare LFs gets sizes that count them as one octet,
consistent with serving those bytes unchanged).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging

from ..proto.imap.structures import response_forms
from ..store.models import MessageFacts, ResponseForms
from . import mime
from .bodystructure import body_from_bodystructure, bodystructure, rev1
from .envelope import envelope
from .headers import decode_value, indexed_fields, split_header
from .sections import part_tree

log = logging.getLogger(__name__)


def parse_date(raw: str | bytes | None) -> dt.datetime | None:
    """An RFC 5322 date-time as an aware datetime (UTC when the zone is
    unknown, "-0000"), or None when it does not parse."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = decode_value(raw)
    try:
        parsed = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _compute(data: bytes) -> MessageFacts:
    root = mime.split(data)
    fields = indexed_fields(root.fields)
    env = envelope(root.fields)
    bs = bodystructure(root, data)
    return MessageFacts(
        envelope=env,
        bodystructure=bs,
        header_size=root.body_start,
        body_lines=data.count(b"\n", root.body_start),
        header_fields=fields,
        sent_date=parse_date(fields.get("date")),
        parts=part_tree(root, data),
        forms=forms_of(env, bs),
    )


def forms_of(env: object, bs: object) -> ResponseForms | None:
    forms = response_forms(env, bs, body_from_bodystructure, rev1)
    return ResponseForms(*forms) if forms is not None else None


def _fallback(data: bytes) -> MessageFacts:
    """Minimal facts describing the message as one text/plain body."""
    _header, body_start = split_header(data)
    size = len(data) - body_start
    lines = data.count(b"\n", body_start)
    return MessageFacts(
        envelope=[None] * 10,
        bodystructure=["text", "plain", ["charset", "us-ascii"], None, None, "7bit", size, lines]
        + [None] * 4,
        header_size=body_start,
        body_lines=lines,
        header_fields={},
        sent_date=None,
        parts=[0, body_start, len(data), 0, "text/plain", "", "", size, []],
    )


def compute_facts(data: bytes) -> MessageFacts:
    """Parse what FETCH and SEARCH will need. Never raises on any input."""
    try:
        return _compute(data)
    except Exception:  # a bug must not lose a delivered message
        log.exception("could not parse a message of %d octets; storing minimal facts", len(data))
        return _fallback(data)


# Bigger messages are parsed in a worker thread by compute_facts_off_loop:
# ~30 ms of CPU per MB would otherwise hold the event loop.
PARSE_IN_LOOP = 256 * 1024


async def compute_facts_off_loop(data: bytes) -> MessageFacts:
    """`compute_facts` for a caller on an event loop."""
    if len(data) > PARSE_IN_LOOP:
        return await asyncio.to_thread(compute_facts, data)
    return compute_facts(data)
