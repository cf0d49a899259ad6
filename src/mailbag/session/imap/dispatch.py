"""The one table that says which IMAP command runs in which state (DESIGN.md §1).

`allows_expunge` is False for the commands during which RFC 9051 §7.5.1 (RFC
3501 §7.4.1) forbids untagged EXPUNGE: FETCH, STORE and SEARCH by sequence
number (the UID forms allow it; the session checks `command.uid`). It is also
False for commands after which the client may not expect numbers to move
(COPY by sequence number; RFC 9051 §5.5 ambiguity rules).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...proto.imap import commands as c
from ...proto.imap.responses import TaggedResponse
from .handlers import auth, fetch, mailboxes, messages, search, selection
from .state import ANY, AUTH, NOT_AUTH, SELECTED, State

Handler = Callable[[Any, Any], Awaitable[TaggedResponse | None]]


@dataclass(slots=True, frozen=True)
class CommandSpec:
    name: str
    states: frozenset[State]
    handler: Handler
    allows_expunge: bool = True


TABLE: dict[type, CommandSpec] = {
    c.CapabilityCommand: CommandSpec("CAPABILITY", ANY, auth.handle_capability),
    c.NoopCommand: CommandSpec("NOOP", ANY, auth.handle_noop),
    c.LogoutCommand: CommandSpec("LOGOUT", ANY, auth.handle_logout),
    c.StartTLSCommand: CommandSpec("STARTTLS", NOT_AUTH, auth.handle_starttls),
    c.AuthenticateCommand: CommandSpec("AUTHENTICATE", NOT_AUTH, auth.handle_authenticate),
    c.LoginCommand: CommandSpec("LOGIN", NOT_AUTH, auth.handle_login),
    c.EnableCommand: CommandSpec("ENABLE", AUTH, auth.handle_enable),
    c.SelectCommand: CommandSpec("SELECT", AUTH, selection.handle_select),
    c.ExamineCommand: CommandSpec("EXAMINE", AUTH, selection.handle_select),
    c.CreateCommand: CommandSpec("CREATE", AUTH, mailboxes.handle_create),
    c.DeleteCommand: CommandSpec("DELETE", AUTH, mailboxes.handle_delete),
    c.RenameCommand: CommandSpec("RENAME", AUTH, mailboxes.handle_rename),
    c.SubscribeCommand: CommandSpec("SUBSCRIBE", AUTH, mailboxes.handle_subscribe),
    c.UnsubscribeCommand: CommandSpec("UNSUBSCRIBE", AUTH, mailboxes.handle_unsubscribe),
    c.ListCommand: CommandSpec("LIST", AUTH, mailboxes.handle_list),
    c.LsubCommand: CommandSpec("LSUB", AUTH, mailboxes.handle_lsub),
    c.NamespaceCommand: CommandSpec("NAMESPACE", AUTH, mailboxes.handle_namespace),
    c.StatusCommand: CommandSpec("STATUS", AUTH, mailboxes.handle_status),
    c.AppendCommand: CommandSpec("APPEND", AUTH, messages.handle_append),
    c.IdleCommand: CommandSpec("IDLE", AUTH, selection.handle_idle),
    c.CheckCommand: CommandSpec("CHECK", SELECTED, selection.handle_check),
    c.CloseCommand: CommandSpec("CLOSE", SELECTED, selection.handle_close),
    c.UnselectCommand: CommandSpec("UNSELECT", SELECTED, selection.handle_unselect),
    c.ExpungeCommand: CommandSpec("EXPUNGE", SELECTED, messages.handle_expunge),
    c.UIDExpungeCommand: CommandSpec("UID EXPUNGE", SELECTED, messages.handle_uid_expunge),
    c.SearchCommand: CommandSpec("SEARCH", SELECTED, search.handle_search, allows_expunge=False),
    c.FetchCommand: CommandSpec("FETCH", SELECTED, fetch.handle_fetch, allows_expunge=False),
    c.StoreCommand: CommandSpec("STORE", SELECTED, messages.handle_store, allows_expunge=False),
    c.CopyCommand: CommandSpec("COPY", SELECTED, messages.handle_copy, allows_expunge=False),
    c.MoveCommand: CommandSpec("MOVE", SELECTED, messages.handle_move),
}
