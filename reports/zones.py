"""The time zone a report shows its times in: an IANA name (Europe/Berlin), UTC, or "local" (this machine's zone).

Records keep UTC; a report read on the shop floor shows the plant's clock, with the zone named beside every time.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reports.errors import ReportError

LOCAL = "local"
# The ISO 8601 forms Python 3.11's fromisoformat reads (3.10's reads only isoformat()'s own output): basic or extended,
# a fraction of any length, an offset with or without its colon, or Z.
_ISO = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?"
                  r"(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)
# a POSIX TZ rule (EST5EDT4,M3.2.0,M11.1.0; <+0530>-5:30): a name of 3+ letters, or <quoted>, then an offset
_POSIX_RULE = re.compile(r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)[+-]?\d")
Zone = tzinfo | None  # None: this machine's zone, whose rules only the C library knows (no IANA name found)


def _key(text: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(text) if text else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


class LocalTimeError(ValueError):
    """A wall-clock time the zone skips or repeats: the hour the clocks go forward or back."""


def on_clock(t: datetime, z: Zone) -> datetime:
    """A naive wall-clock time placed in zone `z`; LocalTimeError where the clocks change and the time names no
    instant, or two (None: this machine's zone, by the C library's rules, unchecked)."""
    if z is None:
        return t.astimezone()
    first, second = t.replace(tzinfo=z, fold=0), t.replace(tzinfo=z, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    name = zone_label(z, first)
    if first.astimezone(timezone.utc).astimezone(z).replace(tzinfo=None) != t:
        raise LocalTimeError(f"{t:%Y-%m-%dT%H:%M} does not exist in {name} (the clocks go forward then); give a time outside "
                             "that hour, or an offset")
    raise LocalTimeError(f"{t:%Y-%m-%dT%H:%M} happens twice in {name} (the clocks go back then); give an offset: "
                         f"{first.isoformat(timespec='minutes')} or {second.isoformat(timespec='minutes')}")


def iso_datetime(text: str) -> datetime:
    """An ISO 8601 date or time as a datetime (aware when it has an offset); ValueError if it is not one."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return parse_iso(text)  # Python 3.10 reads fewer forms


def parse_iso(text: str) -> datetime:
    """iso_datetime's own reading of the forms Python 3.11 reads."""
    m = _ISO.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not an ISO 8601 time")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    tz = None
    if offset:
        sign = -1 if offset[0] == "-" else 1
        tz = timezone.utc if offset.upper() == "Z" else timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[-2:]) if len(offset) > 3 else 0))
    return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                    int((fraction or "0")[:6].ljust(6, "0")), tzinfo=tz)


def _under_zoneinfo(path: str) -> str:
    return path.partition("zoneinfo/")[2] if "zoneinfo/" in path else ""


def local_zone() -> Zone:
    """This machine's zone, by its IANA name where one can be found ($TZ, /etc/localtime, /etc/timezone), so that
    daylight saving and the name come out right; else None (converted by the C library's rules)."""
    tz = os.environ.get("TZ")
    if tz is not None:  # the C library goes by $TZ alone: a name, a file (:/usr/share/zoneinfo/Asia/Tokyo) or a POSIX rule
        tz = tz.lstrip(":")
        if not tz:
            return timezone.utc
        found = _key(tz) or _key(_under_zoneinfo(os.path.realpath(tz)))
        if found is None and not _POSIX_RULE.match(tz) and not (os.path.isabs(tz) and os.path.isfile(tz)):
            # the C library reads it as UTC under its own name: TZ=Europe/Berln labelled UTC times "Europe"
            raise ReportError(f"time zone local: $TZ {tz!r} names no zone this machine knows (its clock reads it as UTC); "
                              "set TZ to an IANA name such as Europe/Berlin, or unset it, or give the zone by name instead of local")
        return found
    keys = [_under_zoneinfo(os.path.realpath("/etc/localtime"))]
    try:
        keys.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    return next((z for z in map(_key, keys) if z is not None), None)


def zone(name: str | None) -> Zone:
    """`name` ("UTC", "local" or an IANA name) as a zone; ReportError naming it when it is none of these."""
    if name is None or name.strip().upper() == "UTC":
        return timezone.utc
    if name.strip().lower() == LOCAL:
        return local_zone()
    found = _key(name.strip())
    if found is None:
        raise ReportError(f"time zone {name!r}: unknown; give an IANA name such as Europe/Berlin or America/Chicago, UTC, or local")
    return found


def on_calendar(t: datetime, z: Zone) -> bool:
    """Whether `t` can be shown on the zone's clock: 9999-12-31T23:00Z is in the year 10000 in Tokyo."""
    try:
        t.astimezone(z)
    except OverflowError:
        return False
    return True


def toward_calendar(year: int) -> str:
    """Which way a time beyond the calendar's end (the year 10000 on some clock) or before its start must move: by its
    year, not by whether it starts or ends the period (`--from 9999-12-31T20:00Z` in Tokyo was told to be later)."""
    return "an earlier" if year > 5000 else "a later"


def zone_label(z: Zone, at: datetime | None = None) -> str:
    """What a report calls the zone: its IANA name, or the abbreviation in force at `at` (now if None)."""
    if isinstance(z, ZoneInfo):
        return z.key
    if z is timezone.utc:
        return "UTC"
    return (at or datetime.now(timezone.utc)).astimezone(z).tzname() or "local"
