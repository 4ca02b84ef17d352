"""An overlay that cannot be written, the INT8 skip on an older onnxruntime, and the live view's keyboard focus."""

from __future__ import annotations

import errno
import logging

from reports.render import live_html
from tests.inspector.test_sink_fsyncs import _failed_part, _sink
from tests.reports.browser import serve_page


def test_an_overlay_that_cannot_be_written_after_its_image_was_keeps_the_images_failure_said(tmp_path, monkeypatch, caplog):
    """The image is saved, the overlay's write fails (the disk filled between them): the sink says so once and keeps
    saying images are not saved (images_off), as before the images were synced together; it said "saved again" at once
    and forgot the failure, so every later part logged the error anew and the live view and health showed no problem."""
    caplog.set_level(logging.INFO, "inspector.pipeline")
    published: list = []
    sink = _sink(tmp_path, published)
    real = sink.store.save_image

    def save_image(record, kind, rgb):
        if kind == "overlay":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(record, kind, rgb)

    monkeypatch.setattr(sink.store, "save_image", save_image)
    try:
        sink.handle(*_failed_part("p1"))
        assert set(sink.store.get("p1")["images"]) == {"image"}  # the image is kept: it is on the disk
        assert sink.images_off is not None and "No space left" in sink.images_off
        assert "saved again" not in caplog.text
    finally:
        sink.store.close()


class _Item:
    """What pytest_collection_modifyitems reads of a collected test."""

    def __init__(self, nodeid: str, marked: bool = False) -> None:
        self.nodeid, self.marked, self.added = nodeid, marked, []

    def get_closest_marker(self, name: str):
        return object() if self.marked and name == "int8" else None

    def add_marker(self, marker) -> None:
        self.added.append(marker)


def test_the_int8_skip_on_an_older_onnxruntime_hides_no_test_that_makes_no_int8_graph(monkeypatch):
    """On Python 3.10 (onnxruntime 1.23) the skip matched "int8" anywhere in a test's id: uint8 image and mask tests, the
    TensorRT INT8 build, and the INT8 refusal's own tests (whose file is named int8) were skipped there too."""
    import tests.conftest as conftest

    monkeypatch.setattr(conftest, "INT8_RUNS", False)
    marked = _Item("tests/exporters/test_export.py::test_int8_export_keeps_scores", marked=True)
    unrelated = [_Item("tests/model/test_metrics_edges.py::test_metrics_aupro_takes_uint8_masks_like_bool_ones"),
                 _Item("tests/inspector/test_result_record.py::test_result_overlay_refuses_a_non_uint8_or_wrongly_shaped_image"),
                 _Item("tests/exporters/test_int8_old_onnxruntime.py::test_an_int8_export_on_an_older_onnxruntime_is_refused_before_the_trace"),
                 _Item("tests/exporters/test_int8_old_onnxruntime.py::test_versions_before_1_28_make_no_int8")]
    conftest.pytest_collection_modifyitems(None, [marked, *unrelated])
    assert marked.added  # an INT8 graph onnxruntime makes: skipped there
    assert [item.nodeid for item in unrelated if item.added] == []


def test_the_live_views_table_box_keeps_the_keyboards_focus_across_a_refresh(browser):
    """The recent parts' box is in the tab order (tabindex=0) so that a keyboard scrolls it; the refresh replaced every
    element of the body but the announcement, so the focus fell back to the page within the refresh period (2 s)."""
    records = [{"inspection_id": f"a{i}", "serial": f"SN-{i}", "verdict": "PASS", "score": 1.0, "threshold": 2.0} for i in range(3)]
    state = {"n": 5}
    server = serve_page(lambda: live_html(records, {"status": "ok", "verdicts": {"PASS": state["n"]}}, refresh_s=1).encode())
    page = browser.open(f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        page.eval("document.querySelector('#recent .wide').focus(); 0")
        assert page.eval("document.activeElement.matches('#recent .wide')")
        state["n"] = 6
        page.shows("document.getElementById('inspected').textContent", "6")  # refreshed
        assert page.eval("document.activeElement.matches('#recent .wide')")
    finally:
        page.close()
        server.shutdown()
        server.server_close()
