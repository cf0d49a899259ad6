"""ENVELOPE (RFC 9051 §7.5.2) from a header block.

The result is a list of ten items in the order of the grammar::

    [date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]

`date`, `subject`, `in-reply-to` and `message-id` are `str` or None (NIL);
the six address fields are None (NIL) or a list of addresses, each a list
`[name, adl, mailbox, host]` of `str` or None. A group is written the RFC way:
`[None, None, "group name", None]` opens it, `[None, None, None, None]` closes
it.

Choices where the RFC leaves room, taken from Dovecot 2.3 so that clients see
what they are used to:

* strings are *not* decoded: encoded-words stay as they are (RFC 9051 says
  ENVELOPE strings are raw), 8-bit bytes stay as they are (see
  :func:`mailbag.message.headers.text` for how they are carried in `str`);
* the subject is cleaned for humans: runs of white space (folding included)
  become one space, leading and trailing white space is removed; the other
  strings only lose their CR/LF (unfolding);
* when a header appears more than once, the last one wins for the strings and
  the address lists are concatenated;
* Sender and Reply-To default to From when absent or empty (RFC 9051
  §7.5.2); an empty From is NIL;
* addresses that do not parse are filled in with MISSING_MAILBOX /
  MISSING_DOMAIN rather than dropped, so a client still sees that there was
  something;
* address fields are parsed up to MAX_ADDRESS_FIELD octets each and
  MAX_ADDRESS_TOTAL in all (a bound against hostile input).
"""

from __future__ import annotations

from typing import Any

from .headers import for_humans, nolf, text
from .rfc822 import parse_addresses

_ADDRESS_FIELDS = {b"from": 0, b"sender": 1, b"reply-to": 2, b"to": 3, b"cc": 4, b"bcc": 5}
_STRING_FIELDS = {b"date": 0, b"subject": 1, b"in-reply-to": 2, b"message-id": 3}

Envelope = list[Any]


def _nstring(value: bytes | None) -> str | None:
    return None if value is None else text(nolf(value))


def _addresses(value: bytes) -> list[list[str | None]]:
    return [
        [_nstring(a.name), _nstring(a.route), _nstring(a.mailbox), _nstring(a.domain)]
        for a in parse_addresses(value)
    ]


# Address parsing is linear but slow per byte in Python; these bounds keep a
# hostile header from costing more than a fraction of a second. Real address
# lists are far smaller.
MAX_ADDRESS_FIELD = 64 * 1024
MAX_ADDRESS_TOTAL = 256 * 1024


def envelope(fields: list[tuple[bytes, bytes]]) -> Envelope:
    """The ENVELOPE of a message given its header fields (lower-case names)."""
    strings: list[bytes | None] = [None, None, None, None]
    addrs: list[list[list[str | None]] | None] = [None] * 6
    budget = MAX_ADDRESS_TOTAL
    for name, value in fields:
        i = _STRING_FIELDS.get(name)
        if i is not None:
            strings[i] = value
            continue
        i = _ADDRESS_FIELDS.get(name)
        if i is not None and budget > 0:
            value = value[: min(MAX_ADDRESS_FIELD, budget)]
            budget -= len(value)
            parsed = _addresses(value)
            if parsed:
                current = addrs[i]
                addrs[i] = parsed if current is None else current + parsed
    date, subject, in_reply_to, message_id = strings
    from_ = addrs[0]
    return [
        _nstring(date),
        None if subject is None else text(for_humans(subject)),
        from_,
        addrs[1] if addrs[1] is not None else from_,
        addrs[2] if addrs[2] is not None else from_,
        addrs[3],
        addrs[4],
        addrs[5],
        _nstring(in_reply_to),
        _nstring(message_id),
    ]
