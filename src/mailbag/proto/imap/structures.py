"""ENVELOPE, BODY and BODYSTRUCTURE as FETCH values, and their serialised
forms cached at delivery (RFC 9051 §7.5.2, §9).

The message package computes these structures once per message as
JSON-compatible nested lists whose strings may carry raw header bytes as lone
surrogates (`mailbag.message.headers`). This module turns them into response
values, and into bytes once at delivery (:func:`response_forms`) so that a
FETCH of 10,000 ENVELOPEs copies stored bytes instead of walking 10,000
trees.

A cached form is only made when it is the same for every client: no 8-bit
octet anywhere (an IMAP4rev1 client gets 8-bit strings as literals, a UTF-8
one as quoted strings) and no message/global part (IMAP4rev1 clients get
those as basic parts, see `mailbag.message.bodystructure.rev1`). Anything
else is serialised per FETCH, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .responses import REV1, Adjacent, Value, _Writer


def _octets(value: str) -> bytes:
    # The inverse of mailbag.message.headers.text(): raw bytes ride as surrogates.
    return value.encode("utf-8", "surrogateescape")


def wire_tree(value: Any) -> Value:
    """A facts tree as a response value carrying the exact octets."""
    if isinstance(value, str):
        return _octets(value)
    if isinstance(value, list | tuple):
        return [wire_tree(v) for v in value]
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return _octets(str(value))


def envelope_value(env: Any) -> Value:
    """An ENVELOPE: the addresses of a list are written without spaces between
    them (RFC 9051 §9 `env-from = "(" 1*address ")"`), as Dovecot does."""
    if not isinstance(env, list) or len(env) != 10:
        return wire_tree(env)
    out: list[Value] = []
    for i, item in enumerate(env):
        if 2 <= i <= 7 and isinstance(item, list) and item:
            out.append([Adjacent(tuple(wire_tree(a) for a in item))])
        else:
            out.append(wire_tree(item))
    return out


def structure_value(bs: Any) -> Value:
    """A BODY/BODYSTRUCTURE: the parts of a multipart are written without
    spaces between them (RFC 9051 §9 `1*body`), as Dovecot does."""
    if not isinstance(bs, list) or not bs:
        return wire_tree(bs)
    if isinstance(bs[0], list):
        n = 0
        while n < len(bs) and isinstance(bs[n], list):
            n += 1
        children = Adjacent(tuple(structure_value(child) for child in bs[:n]))
        return [children, *(wire_tree(v) for v in bs[n:])]
    if len(bs) > 9 and isinstance(bs[7], list) and isinstance(bs[8], list):
        # message/rfc822: envelope, then the body of the encapsulated message
        return [
            *(wire_tree(v) for v in bs[:8]),
            structure_value(bs[8]),
            *(wire_tree(v) for v in bs[9:]),
        ]
    return wire_tree(bs)


def serialise(value: Value) -> bytes:
    """A value as an IMAP4rev1 client gets it (REV1 context)."""
    w = _Writer(REV1)
    w.value(value)
    out = w.finish()
    return b"".join(p for p in out if isinstance(p, bytes))


def response_forms(
    envelope: Any,
    bodystructure: Any,
    body_of: Callable[[Any], Any],
    rev1_of: Callable[[Any], Any],
) -> tuple[bytes, bytes, bytes] | None:
    """The serialised (ENVELOPE, BODY, BODYSTRUCTURE) when they are the same
    for every client (module docstring), else None.

    `body_of` gives the BODY form of a BODYSTRUCTURE and `rev1_of` its
    IMAP4rev1 form (passed in: they belong to the message package).
    """
    try:
        if rev1_of(bodystructure) != bodystructure:
            return None
        env = serialise(envelope_value(envelope))
        bs = serialise(structure_value(bodystructure))
        body = serialise(structure_value(body_of(bodystructure)))
    except (TypeError, ValueError, IndexError, UnicodeError):
        return None  # odd facts: FETCH serialises (or recomputes) them itself
    if not (env.isascii() and bs.isascii() and body.isascii()):
        return None
    return env, body, bs
