"""Exceptions shared across layers.

Sessions turn these into protocol statuses in one place each (IMAP `NO [CODE]`,
POP3 `-ERR [CODE]`, SMTP 4xx/5xx).
"""

from __future__ import annotations


class MailbagError(Exception):
    """Base class of every error mailbag raises on purpose."""


class ConfigError(MailbagError):
    """A bad configuration value; the message names the key and the problem."""


class StoreError(MailbagError):
    """A store operation failed."""


class NotFound(StoreError):
    """Account, mailbox or message does not exist (IMAP [NONEXISTENT])."""


class AlreadyExists(StoreError):
    """The target exists already (IMAP [ALREADYEXISTS])."""


class Cannot(StoreError):
    """The operation is never allowed, e.g. deleting INBOX (IMAP [CANNOT])."""


class StoreUnavailable(StoreError):
    """A temporary failure: disk full, database locked (IMAP [UNAVAILABLE], 4xx)."""


class ProtocolError(MailbagError):
    """Input that breaks a codec's grammar or limits."""
