"""The time zone a report shows its times in: an IANA name (Europe/Berlin), UTC, or "local" (this machine's zone).

Records keep UTC; a report read on the shop floor shows the plant's clock, with the zone named beside every time.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reports.errors import ReportError

LOCAL = "local"
Zone = tzinfo | None  # None: this machine's zone, whose rules only the C library knows (no IANA name found)


def _key(text: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(text) if text else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def local_zone() -> Zone:
    """This machine's zone, by its IANA name where one can be found ($TZ, /etc/localtime, /etc/timezone), so that
    daylight saving and the name come out right; else None (converted by the C library's rules)."""
    link = os.path.realpath("/etc/localtime")
    keys = [os.environ.get("TZ", "").lstrip(":"), link.partition("zoneinfo/")[2] if "zoneinfo/" in link else ""]
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


def zone_label(z: Zone, at: datetime | None = None) -> str:
    """What a report calls the zone: its IANA name, or the abbreviation in force at `at` (now if None)."""
    if isinstance(z, ZoneInfo):
        return z.key
    if z is timezone.utc:
        return "UTC"
    return (at or datetime.now(timezone.utc)).astimezone(z).tzname() or "local"
