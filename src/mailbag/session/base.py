"""What a session sees of its connection, and what the driver sees of a session.

Sessions never touch sockets: they write bytes and ask for STARTTLS through a
:class:`Channel` the net layer gives them (DESIGN.md §1).
"""

from __future__ import annotations

from typing import Protocol


class Channel(Protocol):
    peer_host: str
    peer_port: int
    local_port: int

    @property
    def is_tls(self) -> bool: ...

    @property
    def is_loopback(self) -> bool:
        """True when the peer is on this host (127.0.0.0/8, ::1)."""
        ...

    @property
    def tls_available(self) -> bool:
        """A certificate is configured, so STARTTLS/STLS can be offered."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes, waiting while the client is slow to read."""
        ...

    def write_nowait(self, data: bytes) -> bool:
        """Send bytes now if the connection can take them without waiting.

        Returns False, having written nothing, when the connection is closing or
        the client is slow to read (the output buffer is above its high-water
        mark); the caller must then use `write`. For pushes made from outside
        the session's own task (IMAP IDLE new-mail announcements)."""
        ...

    async def start_tls(self) -> None:
        """Upgrade to TLS. Unread plaintext is discarded first (never executed)."""
        ...

    def close(self) -> None: ...


class Session(Protocol):
    """A per-connection state machine driven by :func:`mailbag.net.driver.drive`."""

    @property
    def idle_timeout(self) -> float:
        """Seconds the driver waits for client bytes before calling `timed_out`."""
        ...

    @property
    def finished(self) -> bool:
        """True once the session wants the connection closed (after QUIT/LOGOUT)."""
        ...

    async def start(self) -> None:
        """Write the greeting."""
        ...

    async def data_received(self, data: bytes) -> None:
        """Feed bytes to the session's codec and handle every complete request."""
        ...

    async def timed_out(self) -> None:
        """The client was idle too long: say goodbye (the driver then closes)."""
        ...

    async def shutdown(self) -> None:
        """The server is stopping: say goodbye (called between requests)."""
        ...

    async def connection_lost(self) -> None:
        """Release what the session holds (locks, subscriptions). Never writes."""
        ...
