"""How reports write numbers: shares never read 0 % or 100 % unless exact, defaults, signs, axis ticks, columns."""

from __future__ import annotations

import dataclasses

import pytest

from reports.numbers import STYLES


def test_numbers_share_never_reads_0_or_100_unless_exact():
    n = STYLES["en"]
    assert n.share(0.04) == "0.1%"  # 1 escape in 2,500
    assert n.share(0.0) == "0.0%"
    assert n.share(0.1) == "0.1%"
    assert n.share(99.96) == "99.9%"  # 2,499 of 2,500
    assert n.share(99.5) == "99.5%"
    assert n.share(100.0) == "100.0%"
    assert n.share(0.0004, 3) == "0.001%"
    assert n.share(None) == "—"


def test_numbers_fixed_and_percent_defaults_floor_and_sign():
    n = STYLES["en"]
    assert n.fixed(2.36) == "2.4" and n.percent(99.96) == "100.0%"  # default: 1 digit, rounded (not floored)
    assert n.fixed(99.96, floor=True) == "99.9" and n.percent(99.96, floor=True) == "99.9%"
    assert n.fixed(12.347, 2, floor=True) == "12.34"
    assert n.fixed(-1234.5) == "-1,234.5"
    assert n.fixed(None) == "—" and n.percent(None) == "—"


def test_numbers_axis_ticks_and_significant_default():
    n = STYLES["en"]
    # whole numbers from 10 up (one decimal below 1000 when not whole), 3 significant digits below 10
    assert [n.tick(v) for v in (10.0, 10.5, 9.99, 999.5, 1000.5, 0, 0.012345)] == \
        ["10", "10.5", "9.99", "999.5", "1,000", "0", "0.0123"]
    assert n.significant(1.23456) == "1.235" and n.significant(0.000123456) == "0.0001235"  # 4 by default


def test_numbers_column_keeps_its_digits_unless_they_hide_the_difference():
    n = STYLES["en"]
    assert n.column(1.234, None) == "1.23"
    assert n.column(8.234, 8.234) == "8.23"  # equal to its threshold: nothing to tell apart
    assert n.column(8.231, 8.234) == n.apart(8.231, 8.234) != "8.23"  # rounded alike but different: more digits
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.decimal = ","
