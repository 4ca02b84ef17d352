"""Shared option parsers of the commands."""

from __future__ import annotations

import argparse
import math

import pytest

from inspector.commands.common import fraction


def test_a_rate_of_minus_zero_is_zero():
    """`--far -0` was kept as -0.0, and the threshold's policy read "--far -0.0" in the manifest and reports."""
    value = fraction("-0")
    assert value == 0.0 and math.copysign(1.0, value) == 1.0 and str(value) == "0.0"
    assert fraction("0.05") == 0.05


@pytest.mark.parametrize("text", ["1", "-0.1", "nan", "x"])
def test_what_is_no_rate_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        fraction(text)
