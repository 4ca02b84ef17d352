"""Numbers written the way each report language writes them (separators as in Unicode CLDR), never in e-notation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from reports.records import apart


def nearest(value: float, others: Iterable[float]) -> float | None:
    """The one of `others` closest to `value` and not equal to it (None if there is none): what `value` must be told from."""
    return min((o for o in others if o != value), key=lambda o: abs(o - value), default=None)


@dataclass(frozen=True)
class Numbers:
    group: str = ","
    decimal: str = "."
    min_grouping: int = 4  # digits an integer part needs before it is grouped (CLDR: Spanish groups from 10.000)
    percent_sign: str = "%"

    def _local(self, plain: str) -> str:
        """Python's plain '-12345.678' in this language."""
        sign, body = ("-", plain[1:]) if plain.startswith("-") else ("", plain)
        whole, dot, frac = body.partition(".")
        if whole.isdigit() and len(whole) >= self.min_grouping:
            whole = f"{int(whole):,}".replace(",", self.group)
        return sign + whole + (self.decimal + frac if dot else "")

    def fixed(self, value: float | None, digits: int = 1, floor: bool = False) -> str:
        """`floor`: rounded down, so that a yield of 99.95 % reads 99.9 %, never 100.0 % while parts failed."""
        if value is None:
            return "—"
        if floor:
            value = math.floor(value * 10**digits) / 10**digits
        return self._local(f"{value:.{digits}f}")

    def percent(self, value: float | None, digits: int = 1, floor: bool = False) -> str:
        """`value` already in percent."""
        return "—" if value is None else self.fixed(value, digits, floor) + self.percent_sign

    def target(self, value: float | None, digits: int = 1) -> str:
        """A percentage someone chose (a threshold policy's target): every decimal it was given, at least `digits`, so
        that a target of 0.04 % never reads 0.0 %."""
        if value is None:
            return "—"
        exponent = Decimal(f"{value:.10g}").normalize().as_tuple().exponent
        return self.percent(value, max(digits, -exponent if isinstance(exponent, int) else digits))

    def share(self, value: float | None, digits: int = 1, floor: bool = False, ceil: bool = False) -> str:
        """A percentage of a count: it reads 0 or 100 only when it is exactly that, so that 1 escape in 2,500 shows as
        0.1 %, not as 0.0 % (none), and 2,499 caught of 2,500 as 99.9 %, not 100.0 % (all). `floor`: otherwise rounded
        down, as a yield is (the PASS share beside a 92.6 % yield read 92.7 %); `ceil`: up, as the FAIL share beside it
        is, so that the two add up (92.6 % and 7.3 % of 278 and 22 parts read 99.9 %)."""
        if value is None:
            return "—"
        step = 10.0**-digits
        if floor and 0 < value < 100:
            value = max(math.floor(value * 10**digits) / 10**digits, step)
        elif ceil and 0 < value < 100:
            value = min(math.ceil(round(value * 10**digits, 6)) / 10**digits, 100 - step)
        if 0 < value < step:
            value = step
        elif 100 - step < value < 100:
            value = 100 - step
        return self.percent(value, digits)

    def low(self, value: float | None, digits: int = 1) -> str:
        """An interval's lower bound in percent: as `share`, but one under the first step reads 0.0, never raised to it,
        so that the interval shown never begins above the true one (1 escape in 2,500: 0.007 %, which read 0.1 %)."""
        return self.percent(0.0, digits) if value is not None and 0 < value < 10.0**-digits / 2 else self.share(value, digits)

    def count(self, value: int | None) -> str:
        return "—" if value is None else self._local(str(int(value)))

    def significant(self, value: float | None, digits: int = 4) -> str:
        """`digits` significant digits, or every integer digit (records.apart), written out in full (123457, not
        1.235e+05; 0.00001234, not 1.234e-05)."""
        return "—" if value is None else self._written(apart(value, None, digits))

    def tick(self, value: float) -> str:
        """A chart's axis label: whole numbers from 10 up, three significant digits below."""
        if abs(value) >= 10:
            return self.fixed(value, 0 if float(value).is_integer() or abs(value) >= 1000 else 1)
        return self.significant(value, 3) if value else "0"

    def apart(self, value: float | None, other: float | None) -> str:
        """`value` with the digits that tell it from `other` (records.apart), written out in full."""
        return "—" if value is None else self._written(apart(value, other))

    def distinct(self, values: Sequence[float]) -> list[str]:
        """Each of `values` with the digits that tell it from the nearest other: two thresholds, 5.638108 and 5.63849, both
        read 5.638 as `significant` writes them."""
        return [self.apart(v, nearest(v, values)) for v in values]

    def column(self, value: float | None, other: float | None, digits: int = 2) -> str:
        """A score in a table's column: `digits` decimals, so that a column reads alike (8.234 stood over 34.25 and 20.1),
        or as many as tell it from its threshold `other` where that many do not."""
        if value is None:
            return "—"
        text = f"{value:.{digits}f}"
        if other is not None and value != other and text == f"{other:.{digits}f}":
            return self.apart(value, other)
        return self._local(text)

    def _written(self, text: str) -> str:
        """A number as Python's g-format gave it, without its exponent and in this language."""
        return self._local(format(Decimal(text), "f"))


STYLES = {"en": Numbers(), "zh": Numbers(), "es": Numbers(group=".", decimal=",", min_grouping=5, percent_sign="\u00a0%")}
