"""Lexical pieces of IMAP shared by the parser and the serialisers (RFC 9051 §9)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

# RFC 9051 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials. ATOM-CHAR is CHAR (7-bit) minus those.
ATOM_RE: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+\Z')
# ASTRING-CHAR = ATOM-CHAR / resp-specials ("]")
ASTRING_RE: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+\Z')
# tag = 1*<any ASTRING-CHAR except "+">
TAG_RE: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+\Z')
# list-char = ATOM-CHAR / list-wildcards / resp-specials
LIST_CHAR_RE: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+\Z')

# What may appear inside a quoted string besides the escaped `"` and `\`:
# any octet but NUL, CR, LF (8-bit only in UTF-8 mode, checked separately).
_QUOTABLE_7BIT: Final = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTABLE_8BIT: Final = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\xff]*\Z")

# Strings longer than this are sent as literals: quoting buys nothing there
# and some clients have small quoted-string buffers.
MAX_QUOTED: Final = 1024

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NUMBER: Final = {m.upper(): i + 1 for i, m in enumerate(MONTHS)}

SYSTEM_FLAGS: Final = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
_SYSTEM_BY_UPPER: Final = {f.upper(): f for f in SYSTEM_FLAGS}

SPECIAL_USES: Final = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
_SPECIAL_BY_UPPER: Final = {f.upper(): f for f in SPECIAL_USES}


def is_atom(data: bytes) -> bool:
    return bool(ATOM_RE.match(data))


def canonical_flag(flag: str) -> str:
    """System flags are case-insensitive (RFC 9051 §2.3.2): give them one spelling."""
    return _SYSTEM_BY_UPPER.get(flag.upper(), flag)


def canonical_special_use(attr: str) -> str:
    return _SPECIAL_BY_UPPER.get(attr.upper(), attr)


def can_quote(data: bytes, utf8: bool) -> bool:
    if len(data) > MAX_QUOTED:
        return False
    if utf8:
        if not _QUOTABLE_8BIT.match(data):
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return bool(_QUOTABLE_7BIT.match(data))


def quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def client_string(data: bytes) -> bytes:
    """A string as a client would send it: quoted, else a LITERAL+ literal."""
    if can_quote(data, utf8=True):
        return quoted(data)
    return b"{%d+}\r\n" % len(data) + data


def client_astring(data: bytes) -> bytes:
    if data and ASTRING_RE.match(data):
        return data
    return client_string(data)


def format_date(d: dt.date) -> str:
    """RFC 9051 §9 `date-text`, e.g. `1-Feb-1994`."""
    return f"{d.day}-{MONTHS[d.month - 1]}-{d.year:04d}"


_MONTHS_B: Final = tuple(m.encode("ascii") for m in MONTHS)
_ZONES: dict[dt.tzinfo, bytes] = {}


def _zone(t: dt.datetime) -> bytes:
    tz = t.tzinfo
    zone = _ZONES.get(tz) if isinstance(tz, dt.timezone) else None
    if zone is None:
        off = t.utcoffset() or dt.timedelta(0)
        zone = _zone_at(int(off.total_seconds()))
        if isinstance(tz, dt.timezone) and len(_ZONES) < 1024:
            _ZONES[tz] = zone  # fixed offsets only: other zones change with the date
    return zone


def _zone_at(offset: int) -> bytes:
    """`+hhmm`/`-hhmm` of a UTC offset in seconds."""
    zone = _OFFSETS.get(offset)
    if zone is None:
        minutes = offset // 60
        sign = b"-" if minutes < 0 else b"+"
        minutes = abs(minutes)
        zone = sign + b"%02d%02d" % (minutes // 60, minutes % 60)
        if len(_OFFSETS) < 1024:
            _OFFSETS[offset] = zone
    return zone


_OFFSETS: dict[int, bytes] = {}
_DAYS: dict[int, bytes] = {}  # days since 1970-01-01 -> b"dd-Mon-yyyy "
_EPOCH_DAY: Final = dt.date(1970, 1, 1).toordinal()


def datetime_bytes_at(timestamp: int, offset: int) -> bytes:
    """:func:`datetime_bytes` of the moment `timestamp` (unix seconds) in the
    zone `offset` seconds east of UTC: what the store keeps, formatted
    without a datetime object (FETCH 1:* INTERNALDATE of a big mailbox)."""
    day, secs = divmod(timestamp + offset, 86400)
    prefix = _DAYS.get(day)
    if prefix is None:
        d = dt.date.fromordinal(day + _EPOCH_DAY)
        prefix = b"%02d-%s-%04d " % (d.day, _MONTHS_B[d.month - 1], d.year)
        if len(_DAYS) < 100_000:
            _DAYS[day] = prefix
    return (
        prefix + b"%02d:%02d:%02d " % (secs // 3600, secs // 60 % 60, secs % 60) + _zone_at(offset)
    )


def datetime_bytes(t: dt.datetime) -> bytes:
    """RFC 9051 §9 `date-time` without the quotes, e.g. `17-Jul-1996 02:44:25 -0700`
    (a naive datetime is UTC). Bytes: FETCH writes 10,000 of these at a time."""
    return b"%02d-%s-%04d %02d:%02d:%02d %s" % (
        t.day,
        _MONTHS_B[t.month - 1],
        t.year,
        t.hour,
        t.minute,
        t.second,
        _zone(t),
    )


def format_datetime(t: dt.datetime) -> str:
    """:func:`datetime_bytes` as a str."""
    return datetime_bytes(t).decode("ascii")


_DATE_RE: Final = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")
_DATETIME_RE: Final = re.compile(
    rb"[ ]?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z"
)


def parse_date(data: bytes) -> dt.date | None:
    m = _DATE_RE.match(data)
    if not m:
        return None
    month = MONTH_NUMBER.get(m.group(2).decode("ascii").upper())
    if month is None:
        return None
    try:
        return dt.date(int(m.group(3)), month, int(m.group(1)))
    except ValueError:
        return None


_PARSED_ZONES: dict[bytes, dt.timezone] = {}


def _zone_of(sign: bytes, hh: bytes, mm: bytes) -> dt.timezone | None:
    key = sign + hh + mm
    zone = _PARSED_ZONES.get(key)
    if zone is None:
        h, m = int(hh), int(mm)
        if h > 23 or m > 59:
            return None
        off = dt.timedelta(hours=h, minutes=m)
        zone = dt.timezone(-off if sign == b"-" else off)
        # At most 2 * 24 * 60 spellings: a bounded cache of shared instances.
        _PARSED_ZONES[key] = zone
    return zone


def parse_datetime(data: bytes) -> dt.datetime | None:
    """`date-time` without quotes. RFC 9051 says `date-day-fixed` (" 1" or "01");
    "1" is accepted as well because clients send it."""
    m = _DATETIME_RE.match(data)
    if not m:
        return None
    day, mon, year, hour, minute, second, sign, hh, mm = m.groups()
    month = MONTH_NUMBER.get(mon.decode("ascii").upper())
    if month is None:
        return None
    zone = _zone_of(sign, hh, mm)
    if zone is None:
        return None
    try:
        return dt.datetime(
            int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:
        return None
