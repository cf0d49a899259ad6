"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB,
NAMESPACE, STATUS (RFC 9051 §6.3.4-§6.3.11, RFC 3501 §6.3; LIST-EXTENDED RFC
5258, LIST-STATUS RFC 5819, SPECIAL-USE / CREATE-SPECIAL-USE RFC 6154).

The hierarchy model: the store holds real mailboxes and a subscription list.
A name that is a proper ancestor of a real mailbox but is not one itself (left
behind by DELETE of a parent) is an *implied* level: LIST shows it with
\\Noselect, as Dovecot does for directories without a mailbox. CREATE makes
every missing parent a real mailbox (RFC 9051 §6.3.4), so implied levels only
appear after such a DELETE.

Where RFC 9051 leaves a choice we follow Dovecot 2.3 (checked against a
private instance):
- DELETE of a mailbox with children deletes it and keeps the children (its
  name becomes a \\Noselect level); DELETE of such a \\Noselect level that still
  has children is refused ("Mailbox has children, delete them first", with
  RFC 9051's [HASCHILDREN] code).
- SUBSCRIBE needs an existing mailbox; UNSUBSCRIBE of a name that is not
  subscribed is OK. RENAME leaves subscriptions as they are.
- STATUS of the selected mailbox answers OK [CLIENTBUG] (RFC 9051 §6.3.11
  says a client SHOULD NOT do it).
- LIST always carries \\HasChildren / \\HasNoChildren and special-use
  attributes, whether or not CHILDREN / SPECIAL-USE was asked for.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ....errors import AlreadyExists, NotFound
from ....proto.imap import commands as c
from ....proto.imap.responses import (
    ListResponse,
    MailboxStatusResponse,
    Namespace,
    NamespaceResponse,
    ResponseCode,
    TaggedResponse,
    lsub_response,
)
from ....store.models import (
    INBOX,
    SEPARATOR,
    Mailbox,
    MailboxStatus,
    SpecialUse,
    canonical_mailbox_name,
)
from ..errors import IMAPError
from .auth import capabilities

if TYPE_CHECKING:
    from ..session import IMAPSession

# Our own limits on names (RFC 9051 leaves them to the server). A level is a
# file-system-like component; 255 octets is what Dovecot's fs layouts allow
# per level, and 1024 octets bounds the whole name.
MAX_LEVEL_OCTETS = 255
MAX_NAME_OCTETS = 1024

# RFC 6154 §2: \All and \Flagged describe virtual mailboxes, which this store
# cannot make; a real mailbox labelled with them would mislead clients.
_CREATABLE_USES = frozenset(
    {SpecialUse.DRAFTS, SpecialUse.SENT, SpecialUse.TRASH, SpecialUse.JUNK, SpecialUse.ARCHIVE}
)

# RFC 5198 §2 (Net-Unicode, required by RFC 9051 §5.1): no control characters,
# no DEL, no C1 controls, no LINE/PARAGRAPH SEPARATOR.
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# ---- names ------------------------------------------------------------------------


def _cannot(text: str) -> IMAPError:
    return IMAPError("NO", text, ResponseCode("CANNOT"))


def validate_new_name(name: str) -> None:
    """Refuse a name for a new mailbox (CREATE, RENAME target) with NO [CANNOT]."""
    if not name:
        raise _cannot("Invalid mailbox name: Name is empty")
    # RFC 9051 §5.1 item 3: wildcards are legal but unusable with LIST; Dovecot's
    # default layout refuses them too.
    if "*" in name or "%" in name:
        raise _cannot("Invalid mailbox name: Contains the wildcards '*' or '%'")
    if name.startswith(SEPARATOR):
        raise _cannot("Invalid mailbox name: Begins with hierarchy separator")
    if SEPARATOR * 2 in name or name.endswith(SEPARATOR):
        raise _cannot("Invalid mailbox name: Has adjacent hierarchy separators")
    if _FORBIDDEN_CHARS.search(name):
        raise _cannot("Invalid mailbox name: Contains control characters")
    # RFC 9051 §5.1 / §6.3.4: 8-bit names must be Net-Unicode, i.e. NFC. We
    # reject rather than normalise, because SELECT would then need to accept the
    # denormalised spelling too.
    if not unicodedata.is_normalized("NFC", name):
        raise _cannot("Invalid mailbox name: Not in Unicode normalization form C")
    if len(name.encode("utf-8")) > MAX_NAME_OCTETS:
        raise _cannot(f"Invalid mailbox name: Longer than {MAX_NAME_OCTETS} octets")
    if any(len(level.encode("utf-8")) > MAX_LEVEL_OCTETS for level in name.split(SEPARATOR)):
        raise _cannot(f"Invalid mailbox name: A level is longer than {MAX_LEVEL_OCTETS} octets")


def _strip_intent(name: str) -> str:
    # RFC 9051 §6.3.4: a trailing separator only declares the intent to create
    # children; "the name created is without the trailing hierarchy delimiter".
    return name[: -len(SEPARATOR)] if name.endswith(SEPARATOR) else name


def _ancestors(name: str) -> list[str]:
    """Proper ancestors, outermost first: a/b/c → [a, a/b]."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


async def _create_parents(s: IMAPSession, name: str) -> None:
    """RFC 9051 §6.3.4: create the superior names a new name needs."""
    assert s.account is not None
    for parent in _ancestors(name):
        if await s.store.get_mailbox(s.account.id, parent) is None:
            try:
                await s.store.create_mailbox(s.account.id, parent)
            except AlreadyExists:
                pass  # another session was quicker; that is what we wanted


# ---- CREATE / DELETE / RENAME -----------------------------------------------------------


def _special_use(uses: tuple[str, ...]) -> SpecialUse | None:
    if not uses:
        return None
    if len(uses) > 1:
        # RFC 6154 §3: a server that cannot combine uses answers [USEATTR].
        raise IMAPError("NO", "Only one special-use attribute per mailbox", ResponseCode("USEATTR"))
    try:
        use = SpecialUse(uses[0])
    except ValueError:
        use = None
    if use not in _CREATABLE_USES:
        raise IMAPError(
            "NO", f"Unsupported special-use attribute {uses[0]}", ResponseCode("USEATTR")
        )
    return use


async def handle_create(s: IMAPSession, cmd: c.CreateCommand) -> TaggedResponse:
    assert s.account is not None
    name = canonical_mailbox_name(_strip_intent(cmd.mailbox))
    if name == INBOX:
        # RFC 9051 §6.3.4: "It is an error to attempt to create INBOX".
        raise IMAPError("NO", "Mailbox already exists", ResponseCode("ALREADYEXISTS"))
    validate_new_name(name)
    use = _special_use(cmd.special_use)
    if await s.store.get_mailbox(s.account.id, name) is not None:
        raise IMAPError("NO", "Mailbox already exists", ResponseCode("ALREADYEXISTS"))
    await _create_parents(s, name)
    await s.store.create_mailbox(s.account.id, name, use)  # AlreadyExists → NO [ALREADYEXISTS]
    return TaggedResponse(cmd.tag, "OK", "Create completed.")


async def handle_delete(s: IMAPSession, cmd: c.DeleteCommand) -> TaggedResponse:
    assert s.account is not None
    name = canonical_mailbox_name(cmd.mailbox)
    if name == INBOX:
        raise _cannot("INBOX can't be deleted.")
    box = await s.store.get_mailbox(s.account.id, name)
    if box is None:
        boxes = await s.store.list_mailboxes(s.account.id)
        prefix = name + SEPARATOR
        if any(b.name.startswith(prefix) for b in boxes):
            # RFC 9051 §6.3.5: deleting a \Noselect name with inferiors is an
            # error; the code is RFC 9051 §7.1 HASCHILDREN (Dovecot's text).
            raise IMAPError(
                "NO", "Mailbox has children, delete them first", ResponseCode("HASCHILDREN")
            )
        raise IMAPError("NO", f"Mailbox doesn't exist: {name}", ResponseCode("NONEXISTENT"))
    # RFC 9051 §6.3.5: the children stay; the name becomes a \Noselect level.
    # Subscriptions stay too (§6.3.7: never removed unilaterally). A session
    # that has this mailbox selected (this one included) gets BYE through its
    # selected view, as with Dovecot.
    await s.store.delete_mailbox(s.account.id, name)
    return TaggedResponse(cmd.tag, "OK", "Delete completed.")


async def handle_rename(s: IMAPSession, cmd: c.RenameCommand) -> TaggedResponse:
    assert s.account is not None
    old = canonical_mailbox_name(cmd.mailbox)
    new = canonical_mailbox_name(_strip_intent(cmd.new_name))
    if await s.store.get_mailbox(s.account.id, old) is None:
        raise IMAPError("NO", f"Mailbox doesn't exist: {old}", ResponseCode("NONEXISTENT"))
    if new == old:
        raise IMAPError("NO", "Can't rename mailbox to itself", ResponseCode("ALREADYEXISTS"))
    if new == INBOX:
        raise IMAPError("NO", "Target mailbox already exists", ResponseCode("ALREADYEXISTS"))
    # Renaming INBOX moves its messages out and leaves INBOX in place
    # (RFC 9051 §6.3.6), so INBOX may become its own child; nothing else may.
    if old != INBOX and new.startswith(old + SEPARATOR):
        raise _cannot("Can't rename mailbox under its own child")
    validate_new_name(new)
    existing = {b.name for b in await s.store.list_mailboxes(s.account.id)}
    # The children move along (except for INBOX), so their new names must be
    # free too; checked before any parent is created for the target.
    moving = (
        [old]
        if old == INBOX
        else [n for n in existing if n == old or n.startswith(old + SEPARATOR)]
    )
    for name in moving:
        if new + name[len(old) :] in existing:
            raise IMAPError("NO", "Target mailbox already exists", ResponseCode("ALREADYEXISTS"))
    # RFC 9051 §6.3.6: "the server SHOULD create any superior hierarchical names
    # that are needed for the RENAME command to complete successfully".
    await _create_parents(s, new)
    await s.store.rename_mailbox(s.account.id, old, new)
    return TaggedResponse(cmd.tag, "OK", "Rename completed.")


# ---- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------------------------


async def handle_subscribe(s: IMAPSession, cmd: c.SubscribeCommand) -> TaggedResponse:
    assert s.account is not None
    name = canonical_mailbox_name(cmd.mailbox)
    # RFC 9051 §6.3.7: a server MAY check that the mailbox exists; Dovecot does.
    if await s.store.get_mailbox(s.account.id, name) is None:
        raise IMAPError("NO", f"Mailbox doesn't exist: {name}", ResponseCode("NONEXISTENT"))
    await s.store.subscribe(s.account.id, name)
    return TaggedResponse(cmd.tag, "OK", "Subscribe completed.")


async def handle_unsubscribe(s: IMAPSession, cmd: c.UnsubscribeCommand) -> TaggedResponse:
    assert s.account is not None
    try:
        await s.store.unsubscribe(s.account.id, canonical_mailbox_name(cmd.mailbox))
    except NotFound:
        pass  # not subscribed: the wanted end state already holds (Dovecot: OK)
    return TaggedResponse(cmd.tag, "OK", "Unsubscribe completed.")


# ---- LIST / LSUB ----------------------------------------------------------------------------


class _Pattern:
    """A canonical LIST pattern (RFC 9051 §6.3.9): `*` any run, `%` any run
    without the separator. The INBOX part of a name matches case-insensitively
    (RFC 9051 §5.1), as in Dovecot: "inb*" and "inbox/%" find INBOX and INBOX/x."""

    __slots__ = ("_re", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        out = []
        for ch in text:
            if ch == "*":
                out.append(".*")
            elif ch == "%":
                out.append(f"[^{re.escape(SEPARATOR)}]*")
            else:
                out.append(re.escape(ch))
        self._re = re.compile("".join(out), re.DOTALL)

    def matches(self, name: str) -> bool:
        if self._re.fullmatch(name):
            return True
        if name == INBOX or name.startswith(INBOX + SEPARATOR):
            return _glob(self.text, name, len(INBOX))
        return False


def _glob(pattern: str, name: str, fold_upto: int) -> bool:
    """Wildcard match where name[:fold_upto] compares case-insensitively."""
    positions = {0}  # the prefixes of `name` the pattern so far can match
    end = len(name)
    for p in pattern:
        if p == "*":
            positions = set(range(min(positions), end + 1))
        elif p == "%":
            grown: set[int] = set()
            for j in positions:
                grown.add(j)
                while j < end and name[j] != SEPARATOR:
                    j += 1
                    grown.add(j)
            positions = grown
        else:
            positions = {
                j + 1
                for j in positions
                if j < end and (name[j] == p or (j < fold_upto and name[j].upper() == p.upper()))
            }
        if not positions:
            return False
    return end in positions


def _any_match(patterns: list[_Pattern], name: str) -> bool:
    return any(p.matches(name) for p in patterns)


def _sort_key(name: str) -> tuple[int, list[str]]:
    # INBOX and its children first, then hierarchical order (a, a/b, a b).
    head = name.split(SEPARATOR, 1)[0]
    return (0 if head == INBOX else 1, name.split(SEPARATOR))


class _Hierarchy:
    """Real mailboxes, the implied levels above them, and subscriptions."""

    def __init__(self, boxes: Iterable[Mailbox], subscriptions: Iterable[str]) -> None:
        self.real: dict[str, Mailbox] = {b.name: b for b in boxes}
        self.implied: set[str] = set()
        for name in self.real:
            for parent in _ancestors(name):
                if parent not in self.real:
                    self.implied.add(parent)
        self.subscribed: set[str] = set(subscriptions)
        # Every ancestor of a real mailbox is real or implied, so the names with
        # children are exactly the parents of real and implied names.
        self._parents = {n.rsplit(SEPARATOR, 1)[0] for n in self.names() if SEPARATOR in n}

    def names(self) -> set[str]:
        return set(self.real) | self.implied

    def has_children(self, name: str) -> bool:
        return name in self._parents

    def attributes(self, name: str, show_subscribed: bool) -> list[str]:
        attrs: list[str] = []
        box = self.real.get(name)
        if box is None:
            # RFC 9051 §7.3.1: \NonExistent implies \Noselect; implied levels
            # exist as hierarchy only.
            attrs.append("\\Noselect" if name in self.implied else "\\NonExistent")
        if show_subscribed and name in self.subscribed:
            attrs.append("\\Subscribed")
        attrs.append("\\HasChildren" if self.has_children(name) else "\\HasNoChildren")
        if box is not None and box.special_use is not None:
            attrs.append(str(box.special_use))
        return attrs


def _canonical_patterns(reference: str, patterns: Iterable[str]) -> list[_Pattern]:
    # RFC 9051 §6.3.9: without break-out characters the canonical form is the
    # reference with the pattern appended.
    return [_Pattern(reference + p) for p in patterns]


async def handle_list(s: IMAPSession, cmd: c.ListCommand) -> TaggedResponse:
    assert s.account is not None
    if not cmd.extended and cmd.patterns == ("",):
        # RFC 9051 §6.3.9: the delimiter and the root of the reference.
        cut = cmd.reference.find(SEPARATOR)
        root = cmd.reference[: cut + 1] if cut >= 0 else ""
        s.send(ListResponse(("\\Noselect",), SEPARATOR, root))
        return TaggedResponse(cmd.tag, "OK", "List completed.")
    status_items = cmd.status_items if "STATUS" in cmd.returns else None
    if status_items is not None:
        _check_status_items(s, status_items)
    # RFC 9051 §6.3.9: empty patterns are ignored in the extended syntax.
    patterns = _canonical_patterns(cmd.reference, [p for p in cmd.patterns if p])
    if not patterns:
        return TaggedResponse(cmd.tag, "OK", "List completed.")
    tree = _Hierarchy(
        await s.store.list_mailboxes(s.account.id), await s.store.list_subscriptions(s.account.id)
    )
    by_subscription = "SUBSCRIBED" in cmd.selection
    by_use = "SPECIAL-USE" in cmd.selection
    recursive = "RECURSIVEMATCH" in cmd.selection
    show_subscribed = by_subscription or "SUBSCRIBED" in cmd.returns
    criteria = [o for o in ("SUBSCRIBED", "SPECIAL-USE") if o in cmd.selection]

    def meets(name: str) -> bool:
        if by_subscription and name not in tree.subscribed:
            return False
        if by_use:
            box = tree.real.get(name)
            if box is None or box.special_use is None:
                return False
        return True

    universe = tree.names()
    if by_subscription:
        # RFC 9051 §6.3.9.1: subscribed names are listed even when they do not
        # exist; RECURSIVEMATCH may need their parents.
        universe |= tree.subscribed
        if recursive:
            universe.update(p for name in tree.subscribed for p in _ancestors(name))
    matching = [n for n in universe if _any_match(patterns, n)]
    # Names with a descendant that meets the criteria but matches no pattern:
    # they get CHILDINFO (RFC 9051 §6.3.9.6 suppresses redundant ones).
    with_unlisted: set[str] = set()
    if recursive:
        for n in universe:
            if meets(n) and not _any_match(patterns, n):
                with_unlisted.update(_ancestors(n))
    for name in sorted(matching, key=_sort_key):
        child_info: tuple[str, ...] = ()
        if name in with_unlisted:
            # RFC 9051 §6.3.9.6 / RFC 5258 §3.5: CHILDINFO names the criteria.
            child_info = tuple(criteria)
        if not meets(name) and not child_info:
            continue
        attrs = tree.attributes(name, show_subscribed)
        s.send(ListResponse(tuple(attrs), SEPARATOR, name, child_info))
        box = tree.real.get(name)
        if status_items is not None and box is not None:
            # RFC 5819 §1: STATUS right after the LIST of each selectable mailbox.
            try:
                status = await s.store.mailbox_status(box.id)
            except NotFound:
                continue  # deleted meanwhile; RFC 5819 allows dropping it
            s.send(MailboxStatusResponse(name, _status_values(status_items, status)))
    return TaggedResponse(cmd.tag, "OK", "List completed.")


async def handle_lsub(s: IMAPSession, cmd: c.LsubCommand) -> TaggedResponse:
    """RFC 3501 §6.3.9 (deprecated by RFC 9051 but still answered)."""
    assert s.account is not None
    if not cmd.pattern:
        return TaggedResponse(cmd.tag, "OK", "Lsub completed.")
    pattern = _Pattern(cmd.reference + cmd.pattern)
    boxes = {b.name: b for b in await s.store.list_mailboxes(s.account.id)}
    subscribed = set(await s.store.list_subscriptions(s.account.id))
    out: dict[str, tuple[str, ...]] = {}
    for name in subscribed:
        if pattern.matches(name):
            box = boxes.get(name)
            # Like Dovecot: LSUB shows special-use attributes, no children info.
            use = box.special_use if box is not None else None
            out[name] = (str(use),) if use is not None else ()
            continue
        # RFC 3501 §6.3.9: with "%" a subscribed foo/bar under an unsubscribed
        # foo makes LSUB return foo flagged \Noselect.
        for parent in _ancestors(name):
            if parent not in subscribed and pattern.matches(parent):
                out.setdefault(parent, ("\\Noselect",))
    for name in sorted(out, key=_sort_key):
        s.send(lsub_response(out[name], SEPARATOR, name))
    return TaggedResponse(cmd.tag, "OK", "Lsub completed.")


async def handle_namespace(s: IMAPSession, cmd: c.NamespaceCommand) -> TaggedResponse:
    # RFC 2342 / RFC 9051 §6.3.10: one personal namespace, no others.
    s.send(NamespaceResponse((Namespace("", SEPARATOR),), None, None))
    return TaggedResponse(cmd.tag, "OK", "Namespace completed.")


# ---- STATUS --------------------------------------------------------------------------------


def _check_status_items(s: IMAPSession, items: Iterable[str]) -> None:
    for item in items:
        if item == "RECENT" and s.rev2:
            # RFC 9051 Appendix E: RECENT is gone from IMAP4rev2's status-att
            # grammar, so a rev2 session asking for it sent a bad command.
            raise IMAPError("BAD", "Unknown status item RECENT (not in IMAP4rev2)")
        if item == "HIGHESTMODSEQ" and "CONDSTORE" not in capabilities(s):
            # RFC 7162 §3.1.7: only with CONDSTORE, which is not advertised.
            raise IMAPError("BAD", "Unknown status item HIGHESTMODSEQ")


def _status_values(items: Iterable[str], st: MailboxStatus) -> tuple[tuple[str, int], ...]:
    values: dict[str, Callable[[], int]] = {
        "MESSAGES": lambda: st.messages,
        "RECENT": lambda: st.recent,
        "UIDNEXT": lambda: int(st.uidnext),
        "UIDVALIDITY": lambda: int(st.uidvalidity),
        "UNSEEN": lambda: st.unseen,
        "DELETED": lambda: st.deleted,
        "SIZE": lambda: st.size,
        "HIGHESTMODSEQ": lambda: int(st.highestmodseq),
    }
    return tuple((item, values[item]()) for item in items)


async def handle_status(s: IMAPSession, cmd: c.StatusCommand) -> TaggedResponse:
    assert s.account is not None
    _check_status_items(s, cmd.items)
    name = canonical_mailbox_name(cmd.mailbox)
    box = await s.store.get_mailbox(s.account.id, name)
    if box is None:
        raise IMAPError("NO", f"Mailbox doesn't exist: {name}", ResponseCode("NONEXISTENT"))
    status = await s.store.mailbox_status(box.id)
    s.send(MailboxStatusResponse(name, _status_values(cmd.items, status)))
    if s.selected is not None and s.selected.id == box.id:
        # RFC 9051 §6.3.11: clients SHOULD NOT ask STATUS of the selected
        # mailbox; it is answered, with Dovecot's hint.
        return TaggedResponse(
            cmd.tag, "OK", "Status on selected mailbox completed.", ResponseCode("CLIENTBUG")
        )
    return TaggedResponse(cmd.tag, "OK", "Status completed.")
