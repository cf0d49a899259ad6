"""Sans-I/O POP3 codec (RFC 1939, RFC 2449, RFC 5034 framing)."""

from .receiver import (
    LINE_TOO_LONG,
    MAX_COMMAND_LINE,
    MAX_SASL_LINE,
    BadLine,
    Command,
    Event,
    POP3Receiver,
    SASLResponse,
    parse_command,
    parse_number,
)
from .responses import (
    DotStuffer,
    TopLimiter,
    continuation,
    err,
    message_size,
    multiline,
    ok,
    stuff_message,
    stuff_whole,
    top_part,
)

__all__ = [
    "LINE_TOO_LONG",
    "MAX_COMMAND_LINE",
    "MAX_SASL_LINE",
    "BadLine",
    "Command",
    "DotStuffer",
    "Event",
    "POP3Receiver",
    "SASLResponse",
    "TopLimiter",
    "continuation",
    "err",
    "message_size",
    "multiline",
    "ok",
    "parse_command",
    "parse_number",
    "stuff_message",
    "stuff_whole",
    "top_part",
]
