"""mailbag: a mail server with IMAP, POP3, SMTP and LMTP on one durable store."""

__version__ = "0.1.0"
