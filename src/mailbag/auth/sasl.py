"""SASL mechanisms as sans-I/O exchanges, shared by POP3 AUTH and IMAP AUTHENTICATE.

The protocol layer base64-decodes client responses and encodes challenges;
these classes see raw bytes only. A mechanism either asks for more
(`Challenge`) or finishes with credentials (`Credentials`) for the
Authenticator to check. `*` cancel is handled by the protocol layer.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..errors import MailbagError


class SASLError(MailbagError):
    """Malformed client response: the protocol answers with a failure."""


@dataclass(slots=True, frozen=True)
class Challenge:
    data: bytes


@dataclass(slots=True, frozen=True)
class Credentials:
    authzid: str
    authcid: str
    password: str


Step = Challenge | Credentials


class Mechanism:
    name = ""

    def start(self, initial: bytes | None) -> Step:
        raise NotImplementedError

    def step(self, response: bytes) -> Step:
        raise NotImplementedError


def _utf8(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("credentials are not UTF-8") from None
    if "\0" in text:
        raise SASLError("NUL in credential")
    return text


class Plain(Mechanism):
    """RFC 4616: [authzid] NUL authcid NUL passwd."""

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        parts = response.split(b"\0")
        if len(parts) != 3 or not parts[1] or len(response) > 1024:
            raise SASLError("malformed PLAIN response")
        return Credentials(_utf8(parts[0]), _utf8(parts[1]), _utf8(parts[2]))


class Login(Mechanism):
    """draft-murchison-sasl-login: `Username:` then `Password:` challenges."""

    name = "LOGIN"

    def __init__(self) -> None:
        self._user: str | None = None

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if len(response) > 512:
            raise SASLError("LOGIN response too long")
        if self._user is None:
            self._user = _utf8(response)
            if not self._user:
                raise SASLError("empty user name")
            return Challenge(b"Password:")
        return Credentials("", self._user, _utf8(response))


MECHANISMS: dict[str, type[Mechanism]] = {"PLAIN": Plain, "LOGIN": Login}


def new_mechanism(name: str) -> Mechanism | None:
    cls = MECHANISMS.get(name.upper())
    return cls() if cls else None


def decode_response(line: bytes) -> bytes:
    """Base64 of a client response; `=` is the empty response (RFC 4959 §3)."""
    line = line.strip()
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise SASLError("invalid base64") from None


def encode_challenge(data: bytes) -> bytes:
    return base64.b64encode(data)
