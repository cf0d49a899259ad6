"""SEARCH and UID SEARCH (RFC 9051 §6.4.4, §6.4.9, §7.3.4; RFC 3501 §6.4.4,
§7.2.5; RFC 4731 ESEARCH; RFC 5182 SEARCHRES; RFC 6855 §3).

The criteria are evaluated by `..searching`; this module picks the answer:

* IMAP4rev1 without RETURN: `* SEARCH n…` (RFC 3501 §7.2.5);
* with RETURN (…), and always in IMAP4rev2: `* ESEARCH (TAG "t") [UID] …`
  (RFC 4731 §3.1; RFC 9051 §6.4.4: no RETURN means RETURN (ALL));
  COUNT is always written, MIN/MAX/ALL only when something matched; no
  ESEARCH at all when SAVE is the only option (RFC 5182 §2.4, as Dovecot);
* SAVE keeps the result as UIDs in `s.saved_search` (MIN and/or MAX only,
  when those are asked for without ALL or COUNT: RFC 5182 §2.4); a SEARCH
  with SAVE that fails with NO empties it, a BAD leaves it (RFC 5182 §2.1).

Messages another session expunged that this one has not been told about
yet match nothing (their data is gone); the command then completes with
`OK [EXPUNGEISSUED]` (RFC 9051 §7.1, the example given there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ....errors import StoreError
from ....proto.imap import commands as c
from ....proto.imap.responses import ESearchResponse, ResponseCode, SearchResponse, TaggedResponse
from ....proto.imap.search import ModSeqKey, SearchKey, leaves
from ....proto.imap.seqset import SeqSet
from ....store.models import UID
from ..errors import IMAPError
from ..searching import SearchEvaluator

if TYPE_CHECKING:
    from ..session import IMAPSession


def _uses_modseq(key: SearchKey) -> bool:
    return any(isinstance(leaf, ModSeqKey) for leaf in leaves(key))


def _saved(options: frozenset[str], uids: list[UID]) -> list[UID]:
    """What SAVE keeps (RFC 5182 §2.4)."""
    if not uids or options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"}:
        return uids
    out = []
    if "MIN" in options:
        out.append(uids[0])
    if "MAX" in options and uids[-1] not in out:
        out.append(uids[-1])
    return out


async def _search(s: IMAPSession, cmd: c.SearchCommand) -> TaggedResponse:
    view = s.require_selected()
    if cmd.charset is not None and "UTF8=ACCEPT" in s.enabled:
        # RFC 6855 §3: after ENABLE UTF8=ACCEPT a CHARSET is a conflicting label.
        raise IMAPError("BAD", "Error in IMAP command SEARCH: CHARSET not allowed with UTF8=ACCEPT")
    if _uses_modseq(cmd.criteria) and "CONDSTORE" not in s.enabled:
        raise IMAPError("BAD", "Error in IMAP command SEARCH: CONDSTORE is not supported")
    evaluator = SearchEvaluator(s.store, view, s.saved_search, s.rev2)
    found = await evaluator.run(cmd.criteria)
    numbers = [int(uid) if cmd.uid else seq for seq, uid in found]
    options = cmd.return_options
    if options is None and not s.rev2:
        s.send(SearchResponse(tuple(numbers)))
    else:
        options = options or frozenset({"ALL"})
        if "SAVE" in options:
            s.saved_search = _saved(options, [uid for _seq, uid in found])
        if options - {"SAVE"}:
            s.send(
                ESearchResponse(
                    tag=cmd.tag,
                    uid=cmd.uid,
                    min=numbers[0] if numbers and "MIN" in options else None,
                    max=numbers[-1] if numbers and "MAX" in options else None,
                    all=SeqSet.from_numbers(numbers) if numbers and "ALL" in options else None,
                    count=len(numbers) if "COUNT" in options else None,
                )
            )
    if evaluator.missing:
        return TaggedResponse(cmd.tag, "OK", "Search completed.", ResponseCode("EXPUNGEISSUED"))
    return TaggedResponse(cmd.tag, "OK", "Search completed.")


async def handle_search(s: IMAPSession, cmd: c.SearchCommand) -> TaggedResponse:
    saving = cmd.return_options is not None and "SAVE" in cmd.return_options
    try:
        return await _search(s, cmd)
    except IMAPError as e:
        if saving and e.status == "NO":
            s.saved_search = []  # RFC 5182 §2.1: a failed SEARCH (SAVE) empties `$`
        raise
    except StoreError:
        if saving:
            s.saved_search = []
        raise
