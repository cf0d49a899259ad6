"""Sans-I/O SMTP (RFC 5321) and LMTP (RFC 2033) codec: no asyncio, no store."""

from .commands import (
    MAX_PATH,
    Command,
    CommandError,
    Data,
    Hello,
    Help,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
    parse_command,
)
from .receiver import (
    MAX_LINE,
    Event,
    InvalidCommand,
    LineTooLong,
    MessageReceived,
    SMTPReceiver,
)
from .replies import Reply

__all__ = [
    "MAX_LINE",
    "MAX_PATH",
    "Command",
    "CommandError",
    "Data",
    "Event",
    "Hello",
    "Help",
    "InvalidCommand",
    "LineTooLong",
    "Mail",
    "MessageReceived",
    "Noop",
    "Quit",
    "Rcpt",
    "Reply",
    "Rset",
    "SMTPReceiver",
    "StartTLS",
    "Vrfy",
    "parse_command",
]
