"""User names are mail addresses; a bare local part means the default domain."""

from __future__ import annotations

from ..errors import MailbagError


class BadAddress(MailbagError):
    pass


MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3 path limit, minus the brackets


def normalize_address(name: str, default_domain: str) -> str:
    """`Alice` → `Alice@localhost`; `alice@Example.ORG` → `alice@example.org`.

    The local part keeps its case (RFC 5321 §2.4 says it may be case-sensitive)
    but lookups are case-insensitive on it, like Dovecot's default; we store the
    lower-cased form so `Alice` and `alice` are one account.
    """
    name = name.strip()
    if not name or len(name) > MAX_ADDRESS:
        raise BadAddress("empty or overlong address")
    if any(c in name for c in ' \t\r\n\0<>,;"()[]\\'):
        raise BadAddress(f"invalid character in address {name!r}")
    local, at, domain = name.rpartition("@")
    if not at:
        local, domain = name, default_domain
    if not local or not domain or "@" in local:
        raise BadAddress(f"invalid address {name!r}")
    return f"{local.lower()}@{domain.lower()}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
