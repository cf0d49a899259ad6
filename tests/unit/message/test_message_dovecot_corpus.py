"""Every message of tests/corpus/ against what Dovecot 2.3.19 answers for it.

The expected answers (ENVELOPE, BODYSTRUCTURE, BODY, BODY[HEADER]/[TEXT]/[],
and for every part BODY[n], BODY[n.MIME], BODY[n.HEADER]/[n.TEXT],
BINARY[n], BINARY.SIZE[n]) were recorded from a private Dovecot by
message_dovecot_oracle.py and are stored in tests/corpus/dovecot-2.3.19/.
Where we knowingly answer differently, DEVIATIONS says why.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import message_dovecot_oracle as oracle
import pytest

from mailbag.message import (
    UnknownCTE,
    binary_section,
    binary_size,
    body_from_bodystructure,
    compute_facts,
    resolve_section,
)

CORPUS = oracle.CORPUS
EXPECTED = oracle.EXPECTED
NAMES = sorted(p.stem for p in CORPUS.glob("*.eml"))

# (message, item) -> why our answer differs from Dovecot 2.3.19 on purpose.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("message_global", "BODYSTRUCTURE"): (
        "RFC 9051 §7.5.2 gives message/global an envelope, body and lines like "
        "message/rfc822; Dovecot 2.3 treats it as an opaque part"
    ),
    ("message_global", "BODY"): "same as BODYSTRUCTURE",
    ("cte_without_mime", "BINARY[1]"): (
        "without MIME-Version or Content-Type the Content-Transfer-Encoding does "
        "not apply (RFC 2045 §4); BODYSTRUCTURE says 7bit in Dovecot too, but its "
        "BINARY decodes base64 anyway; we keep BINARY consistent with BODYSTRUCTURE"
    ),
    ("duplicate_headers", "BINARY[1]"): (
        "two Content-Transfer-Encoding fields: BODYSTRUCTURE uses the first (as "
        "Dovecot does), Dovecot's BINARY the last; we use the first for both"
    ),
    ("transfer_encodings", "BINARY[6]"): (
        "'Content-Transfer-Encoding: base64; junk' is invalid, so 7bit as in "
        "BODYSTRUCTURE; Dovecot 2.3.19 sends no answer at all for this fetch"
    ),
}


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _same(expected: Any, got: bytes) -> bool:
    if isinstance(expected, dict):  # long texts are stored as length + SHA-256
        return bool(
            expected["length"] == len(got) and expected["sha256"] == hashlib.sha256(got).hexdigest()
        )
    # Dovecot sends a NUL in BODY[] as 0x80: that is the serialiser's business
    return bool(expected == _text(got.replace(b"\x00", b"\x80")))


def _load(name: str) -> tuple[bytes, dict[str, Any]]:
    data = (CORPUS / f"{name}.eml").read_bytes()
    if b"\n" in data and b"\r\n" not in data:
        # The store keeps CRLF; Dovecot counts bare LFs as CRLF, so compare
        # its answers for the LF file with ours for the CRLF one.
        data = data.replace(b"\n", b"\r\n")
    expected = json.loads((EXPECTED / f"{name}.json").read_text())
    return data, expected


def compare(name: str, data: bytes, expected: dict[str, Any]) -> list[str]:
    """Differences between our answers and Dovecot's, minus known deviations."""
    facts = compute_facts(data)
    problems: list[tuple[str, Any, Any]] = []

    def check(item: str, want: Any, got: Any) -> None:
        if want != got and (name, item) not in DEVIATIONS:
            problems.append((item, want, got))

    check("ENVELOPE", expected["ENVELOPE"], facts.envelope)
    check("BODYSTRUCTURE", expected["BODYSTRUCTURE"], facts.bodystructure)
    check("BODY", expected["BODY"], body_from_bodystructure(facts.bodystructure))
    check("RFC822.SIZE", expected["RFC822.SIZE"], len(data))
    for item, kind in (("BODY[HEADER]", "HEADER"), ("BODY[TEXT]", "TEXT"), ("BODY[]", "")):
        rng = resolve_section(facts, [], kind)
        assert rng is not None
        got = data[rng[0] : rng[0] + rng[1]]
        if not _same(expected[item], got):
            check(item, expected[item], _text(got))
    for sec, entry in expected["sections"].items():
        path = [int(x) for x in sec.split(".")]
        for item, want in entry.items():
            if not item.startswith("BODY["):
                continue
            kind = item[5:-1][len(sec) :].lstrip(".")
            rng = resolve_section(facts, path, kind)
            got = b"" if rng is None else data[rng[0] : rng[0] + rng[1]]
            if not _same(want, got):
                check(item, want, _text(got))
        if entry["kind"] != "leaf":
            continue
        item = f"BINARY[{sec}]"
        status = entry.get("BINARY.status", "OK")
        try:
            decoded = binary_section(data, facts, path)
            size = binary_size(facts, path)
        except UnknownCTE:
            if not status.startswith("NO [UNKNOWN-CTE]"):
                check(item, status, "NO [UNKNOWN-CTE]")
            continue
        assert decoded is not None and size == len(decoded)
        if not status.startswith("OK"):
            check(item, status, "OK")
        elif not _same(entry["BINARY"], decoded):
            check(item, entry["BINARY"], _text(decoded))
        elif "BINARY.SIZE.status" not in entry:
            # (Dovecot 2.3.19 fails all BINARY.SIZE of a message that has one
            # part with an unknown encoding; then only BINARY is compared.)
            check(f"BINARY.SIZE[{sec}]", entry["BINARY.SIZE"], size)
    return [
        f"{item}:\n  dovecot: {json.dumps(w)[:400]}\n  ours:    {json.dumps(g)[:400]}"
        for item, w, g in problems
    ]


def test_corpus_is_large_enough() -> None:
    assert len(NAMES) >= 25
    missing = [n for n in NAMES if not (EXPECTED / f"{n}.json").exists()]
    assert not missing, f"run message_dovecot_oracle.py to record {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_matches_dovecot(name: str) -> None:
    data, expected = _load(name)
    problems = compare(name, data, expected)
    assert not problems, "\n".join(problems)


def test_deviations_are_real() -> None:
    """Each listed deviation still differs, so the list does not go stale."""
    for name, item in DEVIATIONS:
        data, expected = _load(name)
        facts = compute_facts(data)
        if item in ("BODYSTRUCTURE", "BODY"):
            ours: Any = facts.bodystructure
            if item == "BODY":
                ours = body_from_bodystructure(ours)
            assert ours != expected[item], (name, item)
        else:
            sec = item[len("BINARY[") : -1]
            entry = expected["sections"][sec]
            got = binary_section(data, facts, [int(x) for x in sec.split(".")])
            assert entry.get("BINARY") is None or not _same(entry["BINARY"], got or b"")


@pytest.mark.slow
@pytest.mark.skipif(not oracle.available(), reason="dovecot-imapd is not installed")
@pytest.mark.parametrize(
    "name", ["alternative_in_mixed", "nested_rfc822", "header_interrupted_by_boundary"]
)
def test_live_dovecot_agrees_with_recording(name: str, tmp_path: pathlib.Path) -> None:
    """The recorded answers are what the installed Dovecot says today."""
    _data, expected = _load(name)
    live = oracle._compact(oracle.ask((CORPUS / f"{name}.eml").read_bytes()))
    assert live == expected
