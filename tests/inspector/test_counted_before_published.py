"""A result the line hears of is already counted in /health and /metrics, logged and shown on the live view: a PLC (or the
demo) that read them on a result saw the part missing (the demo saved a live view one part short, once in CI)."""

from __future__ import annotations

import logging

from inspector.live import LiveView
from tests.inspector.test_sink_fsyncs import _failed_part, _sink


def test_a_published_result_is_counted_logged_and_on_the_live_view_already(tmp_path, caplog):
    caplog.set_level(logging.INFO, "inspector.pipeline")
    seen: list[tuple] = []
    sink = _sink(tmp_path, [])
    sink.live = LiveView(sink.cfg, lambda: {"station": "st1", "status": "ok"})

    def publish(record, reply=None):
        seen.append((sink.metrics.value("inspector_verdicts_total", {"verdict": "FAIL"}),
                     sink.metrics.value("inspector_score_margin", {"verdict": "FAIL"}),
                     [r["inspection_id"] for r in sink.live._recent],
                     [m for m in caplog.messages if m.startswith("FAIL S1 (")]))

    sink.outbox.publish = publish
    try:
        for ident in ("p1", "p2"):
            sink.handle(*_failed_part(ident))
        assert [s[:3] for s in seen] == [(1, 1, ["p1"]), (2, 2, ["p2", "p1"])]
        assert [[m.split()[2] for m in s[3]] for s in seen] == [["(p1,"], ["(p1,", "(p2,"]]
    finally:
        sink.store.close()
