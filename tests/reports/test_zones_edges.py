"""Time zones at their edges (reports/zones.py): padded times, offsets of whole hours or of ten hours and more,
$TZ in each form the C library reads, and the machine's own zone when $TZ is unset."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reports.errors import ReportError
from reports.zones import iso_datetime, local_zone, parse_iso, zone, zone_label

TOKYO = Path("/usr/share/zoneinfo/Asia/Tokyo")


def test_a_time_padded_with_whitespace_is_read():
    # `--from " 2026-11-26T06:00Z"` pasted from a shift plan: fromisoformat refuses the padding, the strip must come first
    assert iso_datetime(" 2026-11-26T06:00Z\n") == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, offset", [
    ("2026-11-26T06:00+05", timedelta(hours=5)),  # hours alone: no minutes to read
    ("2026-11-26T06:00-03", -timedelta(hours=3)),
    ("2026-11-26T06:00+10:30", timedelta(hours=10, minutes=30)),  # both hour digits count
    ("2026-11-26T06:00-1130", -timedelta(hours=11, minutes=30)),  # the sign covers the minutes too
])
def test_offsets_of_whole_hours_and_of_ten_hours_or_more(text, offset):
    t = parse_iso(text)
    assert t.utcoffset() == offset
    assert t == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc) - offset


def test_no_zone_name_is_utc():
    # zone(None): no --tz and no reports.timezone
    assert zone(None) is timezone.utc and zone(" utc ") is timezone.utc


@pytest.mark.skipif(not TOKYO.is_file(), reason="no IANA zone files at /usr/share/zoneinfo")
@pytest.mark.parametrize("tz", [":Asia/Tokyo", str(TOKYO), f":{TOKYO}"])
def test_tz_as_a_name_or_a_zone_file_with_or_without_the_colon(monkeypatch, tz):
    # the forms the C library reads: the IANA name (so daylight saving and the label come out right) is found in each
    monkeypatch.setenv("TZ", tz)
    z = local_zone()
    assert isinstance(z, ZoneInfo) and z.key == "Asia/Tokyo" and zone_label(zone("local")) == "Asia/Tokyo"


def _under_zoneinfo(path: str) -> bool:
    return "/zoneinfo/" in path


@pytest.mark.skipif(not _under_zoneinfo(os.path.realpath("/etc/localtime")), reason="/etc/localtime is no zoneinfo link")
def test_without_tz_the_machine_zone_is_that_of_etc_localtime(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    time.tzset()
    try:
        z = local_zone()
        at = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
        # the C library's reading of /etc/localtime is the independent reference
        assert isinstance(z, ZoneInfo) and at.astimezone(z).utcoffset() == at.astimezone().utcoffset()
    finally:
        monkeypatch.undo()
        time.tzset()


def _etc_timezone() -> str | None:
    try:
        key = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        ZoneInfo(key)
    except (OSError, ValueError):
        return None
    return key


@pytest.mark.skipif(_etc_timezone() is None, reason="no readable /etc/timezone")
def test_etc_timezone_names_the_zone_when_etc_localtime_is_no_link(monkeypatch):
    # a copied /etc/localtime (no symlink into zoneinfo), as some images have it: /etc/timezone still names the zone
    real = os.path.realpath
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(os.path, "realpath", lambda p, *a, **k: "/etc/localtime" if p == "/etc/localtime" else real(p, *a, **k))
    z = local_zone()
    assert isinstance(z, ZoneInfo) and z.key == _etc_timezone()


@pytest.fixture
def posix_tz(monkeypatch):
    """Set $TZ to a POSIX rule (no IANA name: the C library's zone, None) for this process, and put it back."""
    def use(rule: str) -> None:
        monkeypatch.setenv("TZ", rule)
        time.tzset()
    yield use
    monkeypatch.undo()
    time.tzset()


def test_a_zone_without_an_iana_name_is_labelled_by_its_abbreviation_at_that_time(posix_tz):
    # TZ=CET-1CEST,...: local_zone finds no name, so the label is the C library's abbreviation in force at `at`
    posix_tz("CET-1CEST,M3.5.0,M10.5.0/3")
    assert zone("local") is None
    winter, summer = datetime(2026, 1, 15, 12, tzinfo=timezone.utc), datetime(2026, 7, 15, 12, tzinfo=timezone.utc)
    assert (zone_label(None, winter), zone_label(None, summer)) == ("CET", "CEST")
    assert zone_label(None) in ("CET", "CEST")  # now


def test_a_fixed_offset_is_labelled_by_its_offset_not_as_utc():
    assert zone_label(timezone(timedelta(hours=5, minutes=30)), datetime(2026, 1, 1, tzinfo=timezone.utc)) == "UTC+05:30"
    assert zone_label(timezone.utc) == "UTC"


def test_a_zone_that_names_no_abbreviation_is_labelled_local():
    class Nameless(tzinfo):
        def utcoffset(self, dt):
            return timedelta(hours=2)

        def dst(self, dt):
            return timedelta(0)

        def tzname(self, dt):
            return None

    assert zone_label(Nameless(), datetime(2026, 1, 1, tzinfo=timezone.utc)) == "local"


@pytest.mark.parametrize("tz", ["Europe/Berln", "Nowhere/Zone", "JST", "../../../etc/passwd"])
def test_a_tz_the_c_library_reads_as_utc_under_its_own_name_is_refused_naming_it(posix_tz, tz):
    # TZ=Europe/Berln (a typo): the C library falls back to UTC and calls it "Europe"; a Berlin report read
    # "2026-10-25 01:00:00 Europe" for 01:00 UTC, an hour or two off the plant's clock, and said nothing
    posix_tz(tz)
    with pytest.raises(ReportError, match=re.escape(f"$TZ {tz!r}") + ".*Europe/Berlin"):
        zone("local")


@pytest.mark.parametrize("tz", ["EST5EDT4,M3.2.0,M11.1.0", "<+0530>-5:30", "UTC0", "CET-1CEST,M3.5.0,M10.5.0/3"])
def test_a_posix_rule_in_tz_is_still_the_c_librarys_zone(posix_tz, tz):
    posix_tz(tz)
    assert zone("local") is None
