"""Sans-I/O IMAP codec: client bytes → typed commands, typed responses → bytes.

- :mod:`.receiver` frames input (lines, literals, limits) and yields events;
- :mod:`.grammar` lexes lines and parses token lists into :mod:`.commands`;
- :mod:`.seqset`, :mod:`.search`, :mod:`.fetch` are the argument types;
- :mod:`.responses` serialises server responses for an :class:`EncodingContext`;
- :mod:`.mutf7` is the IMAP4rev1 mailbox-name encoding.
"""

from .receiver import (
    CommandError,
    ContinuationRequest,
    Event,
    IMAPReceiver,
    Limits,
    RawLine,
)
from .responses import REV1, REV2, EncodingContext

__all__ = [
    "REV1",
    "REV2",
    "CommandError",
    "ContinuationRequest",
    "EncodingContext",
    "Event",
    "IMAPReceiver",
    "Limits",
    "RawLine",
]
