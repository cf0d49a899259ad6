"""When may a client send a password in the clear?"""

from __future__ import annotations

from ..config import Config
from ..session.base import Channel


def plaintext_auth_allowed(config: Config, channel: Channel) -> bool:
    """RFC 2595 §2.2 / RFC 5034 §4 / RFC 9051 §11.1: no cleartext passwords over
    an unencrypted connection. Loopback is exempt by default (nothing crosses a
    wire; Dovecot does the same), unless `[tls] plaintext_auth_loopback = false`.
    """
    if channel.is_tls or config.allow_plaintext_auth:
        return True
    return channel.is_loopback and config.plaintext_auth_loopback
