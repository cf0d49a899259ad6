"""The one exception IMAP handlers raise for a tagged NO or BAD."""

from __future__ import annotations

from typing import Literal

from ...proto.imap.responses import ResponseCode


class IMAPError(Exception):
    def __init__(
        self, status: Literal["NO", "BAD"], text: str, code: ResponseCode | str | None = None
    ) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code
