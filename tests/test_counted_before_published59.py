"""A result the line hears of is already counted in /health and /metrics and shown on the live view: a PLC (or the demo)
that read them on a result saw the part missing (the demo saved a live view one part short, once in CI)."""

from __future__ import annotations

from inspector.live import LiveView
from tests.test_latency58 import _failed_part, _sink


def test_a_published_result_is_counted_and_on_the_live_view_already(tmp_path):
    seen: list[tuple[float, list[str]]] = []
    sink = _sink(tmp_path, [])
    sink.live = LiveView(sink.cfg, lambda: {"station": "st1", "status": "ok"})

    def publish(record, reply=None):
        counted = sink.metrics.value("inspector_verdicts_total", {"verdict": "FAIL"})
        seen.append((counted, [r["inspection_id"] for r in sink.live._recent]))

    sink.outbox.publish = publish
    try:
        for ident in ("p1", "p2"):
            sink.handle(*_failed_part(ident))
        assert seen == [(1, ["p1"]), (2, ["p2", "p1"])]
    finally:
        sink.store.close()
