"""Shift and inspection reports as a QA signer meets them (audit 50): figures that must agree, periods not yet over,
bad options, layout and the docs' commands."""

from __future__ import annotations

import re

from reports.render import shift_html


def _rec(i: int, verdict: str, score: float, **extra) -> dict:
    return {"inspection_id": f"a50-{i:05d}", "verdict": verdict, "score": score, "threshold": 4.2,
            "timestamp": f"2026-11-27T06:{i % 60:02d}:{i // 60 % 60:02d}.000Z", "station": "s1", **extra}


def test_the_pass_share_reads_as_the_yield_beside_it():
    """278 PASS of 300: the yield read 92.6 % (rounded down) and the PASS row beside it 92.7 %."""
    records = [_rec(i, "PASS", 1.0) for i in range(278)] + [_rec(278 + i, "FAIL", 9.0) for i in range(22)]
    html = shift_html(records, {})
    assert '<div class="v" id="yield">92.6%</div>' in html
    assert re.search(r'<td class="num">278</td><td class="num">92\.6%</td>', html), "PASS share not as the yield reads"
    assert '<td class="num">22</td><td class="num">7.3%</td>' in html
    one = shift_html([_rec(0, "PASS", 1.0)] + [_rec(1 + i, "FAIL", 9.0) for i in range(2999)], {})
    assert '<div class="v" id="yield">0.1%</div>' in one  # a part passed: never 0.0 %, and the row reads alike
    assert re.search(r'<td class="num">1</td><td class="num">0\.1%</td>', one)
