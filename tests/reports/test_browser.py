"""The HTML reports in a real headless Chromium: they load offline with no console errors, show what they should, run no script."""

from __future__ import annotations

import pytest
from PIL import Image, ImageStat

import reports

from .browser import serve_page
from .conftest import XSS

pytest.importorskip("websocket", reason="browser tests need websocket-client (the dev extra)")


@pytest.fixture(scope="module")
def rendered(sample, failed_record, tmp_path_factory):
    root, records = sample
    out = tmp_path_factory.mktemp("browser_reports")
    shift = reports.render_shift([*records, failed_record | {"inspection_id": "evil", "score": 99.0}], {"worst_n": 6}, out / "shift", formats=("html",),
                                 store_root=root)
    insp = reports.render_inspection(failed_record, out / "one", formats=("html",), lang="zh", store_root=root)
    missing = reports.render_inspection({"inspection_id": "bare", "verdict": "FAIL", "images": {"image": "gone.png"}}, out / "bare",
                                        formats=("html",))
    return {"shift": shift["html"], "inspection": insp["html"], "bare": missing["html"]}


def open_clean(browser, path, scripts: int = 0):
    page = browser.open(path if isinstance(path, str) else path.as_uri())
    page.settle()
    assert page.errors == [], page.errors
    assert page.dialogs == []
    assert page.eval("document.scripts.length") == scripts  # a report runs none; the live view its refresh alone
    return page


def check_screenshot(page, path):
    page.screenshot(path)
    with Image.open(path) as im:
        assert im.width >= 1000 and im.height > 1000
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 20


def test_inspection_report_in_chromium(browser, rendered, failed_record, tmp_path):
    page = open_clean(browser, rendered["inspection"])
    assert page.eval("document.documentElement.lang") == "zh"
    assert page.eval("document.querySelector('h1').textContent") == "检测报告"
    assert page.eval("document.getElementById('serial').textContent") == XSS  # shown as text, not run
    assert page.eval("document.querySelector('#verdict .verdict').textContent") == "不合格"
    assert page.eval("[...document.images].map(i => i.complete && i.naturalWidth > 0)") == [True, True]
    assert page.eval("document.querySelectorAll('table.defects tbody tr').length") == len(failed_record["defects"])
    assert page.eval("document.querySelectorAll('#signoff table tbody tr').length") == 2
    # the images sit side by side and inside the page
    boxes = page.eval("[...document.images].map(i => {const r = i.getBoundingClientRect(); return [r.left, r.right, r.top]})")
    assert boxes[0][1] <= boxes[1][0] and abs(boxes[0][2] - boxes[1][2]) < 1 and boxes[1][1] <= 1100
    check_screenshot(page, tmp_path / "inspection.png")
    page.close()


def test_shift_report_in_chromium_links_to_worst_parts(browser, rendered, tmp_path):
    page = open_clean(browser, rendered["shift"])
    assert page.eval("document.querySelector('h1').textContent") == "Shift report"
    assert page.eval("document.querySelectorAll('svg.chart').length") == 4
    assert page.eval("[...document.querySelectorAll('svg.chart')].every(s => s.getBoundingClientRect().height > 100)")
    assert page.eval("document.querySelectorAll('.thumb img').length") == 6
    assert page.eval("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    hrefs = page.eval("[...document.querySelectorAll('a.thumb')].map(a => a.href)")
    assert len(hrefs) == 6 and any(h.endswith("inspection-evil.shift.html") for h in hrefs)
    check_screenshot(page, tmp_path / "shift.png")
    page.close()
    linked = open_clean(browser, rendered["shift"].parent / "inspection-evil.shift.html")  # the hostile part's page, opened from the link
    assert linked.eval("document.getElementById('serial').textContent") == XSS
    linked.close()


def test_report_without_images_in_chromium(browser, rendered):
    page = open_clean(browser, rendered["bare"])
    assert page.eval("document.images.length") == 0
    assert page.eval("[...document.querySelectorAll('.missing')].map(e => e.innerText.split('\\n')[0])") == ["Image not available", "No image recorded"]
    page.close()


def test_validation_report_in_chromium(browser, tmp_path):
    import numpy as np

    from reports.images import array_uri
    from reports.validation import render_validation

    from .test_validation import run_of

    run = run_of([0.0, 0.4, 1.6, 2.0, 0.3, 3.0], ["good", "good", "good", "crack", "crack", "pit"])
    run.names[4] = f"test/crack/{XSS}.png"
    run.thumbnails = {4: array_uri(np.full((40, 60, 3), 128, np.uint8)), 2: array_uri(np.zeros((40, 60, 3), np.uint8))}
    page = open_clean(browser, render_validation(run, tmp_path, formats=("html",), lang="es")["html"])
    assert page.eval("document.querySelector('h1').textContent") == "Informe de validación del modelo"
    assert page.eval("document.querySelectorAll('svg.chart').length") == 2
    assert page.eval("[...document.querySelectorAll('svg.chart')].every(s => s.getBoundingClientRect().height > 100)")
    assert page.eval("[...document.images].map(i => i.complete && i.naturalWidth > 0)") == [True, True]
    assert page.eval("document.querySelector('#escapes .thumb .mono').textContent") == f"test/crack/{XSS}.png"
    assert page.eval("document.querySelectorAll('#signoff .box').length") == 3
    check_screenshot(page, tmp_path / "validation.png")
    page.close()


def test_the_daemons_live_view_in_chromium(browser, sample, failed_record, tmp_path):
    import numpy as np

    from reports.images import array_uri
    from reports.render import live_html

    _, records = sample
    health = {"status": "degraded", "station": "st-9", "verdicts": {"PASS": 17, "FAIL": 3}, "rejected": 1, "model": {"id": "abc123"}}
    overlay = array_uri(np.full((120, 160, 3), 90, np.uint8), 960)
    path = tmp_path / "live.html"
    path.write_text(live_html([failed_record, *records[:5]], health, overlay, lang="es"), encoding="utf-8")
    page = open_clean(browser, path, scripts=1)
    assert page.eval("document.getElementById('serial').textContent") == XSS  # shown as text, not run
    assert page.eval("document.getElementById('status').textContent") == "degradado"
    assert page.eval("document.querySelector('#verdict .verdict').textContent") == "RECHAZADA"
    assert page.eval("[...document.images].map(i => [i.complete, i.naturalWidth])") == [[True, 160]]
    assert page.eval("document.querySelectorAll('#recent tbody tr').length") == 6
    assert page.eval("document.scripts[0].dataset.refresh") == "2"
    page.close()
    empty = tmp_path / "empty.html"
    empty.write_text(live_html([], {"status": "ok"}), encoding="utf-8")
    page = open_clean(browser, empty, scripts=1)
    assert page.eval("document.getElementById('no-part').textContent").startswith("No part has been inspected")
    assert page.eval("document.getElementById('inspected').textContent") == "0"
    page.close()


def test_the_live_view_outlives_a_station_restart(browser, tmp_path):
    """A meta refresh had the browser land on its own error page while the station restarted, which never reloads: a
    screen at the line stayed dark until someone reloaded it (and a hung one would stop it for good). The page now keeps
    what it showed, says the station is not answering, and comes back on its own; its script runs under the page's CSP
    (a violation is a log error)."""
    import threading
    import time

    from reports.render import live_html

    count, hang = [5], threading.Event()

    def body() -> bytes:
        while hang.is_set():  # a station that takes the request and never answers
            time.sleep(0.1)
        return live_html([], {"status": "ok", "verdicts": {"PASS": count[0]}}, refresh_s=1).encode()

    server = serve_page(body)
    port = server.server_address[1]
    page = open_clean(browser, f"http://127.0.0.1:{port}/", scripts=1)
    try:
        assert page.eval("document.getElementById('inspected').textContent") == "5"
        count[0] = 6
        page.shows("document.getElementById('inspected').textContent", "6", 15)  # fetched again, body swapped in
        server.shutdown()
        server.server_close()
        page.shows("document.getElementById('unreachable').hidden", False, 15)
        assert page.eval("document.getElementById('inspected').textContent") == "6"  # what it last said, kept
        count[0] = 7
        server = serve_page(body, port)
        page.shows("document.getElementById('inspected').textContent", "7", 15)
        assert page.eval("document.getElementById('unreachable').hidden") is True
        hang.set()  # a hung station: the fetch gives up, says so, and the page goes on asking
        page.shows("document.getElementById('unreachable').hidden", False, 15)
        count[0] = 8
        hang.clear()
        page.shows("document.getElementById('inspected').textContent", "8", 15)
        page.settle()
        assert [e for e in page.errors if "Content Security Policy" in e or "exception" in e] == [], page.errors
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_a_wide_line_screen_shows_the_last_failed_part_beside_the_newest(browser, sample, failed_record, tmp_path):
    """On a 1920x1080 screen at the line the last failed part lay below the fold, under the newest part's overlay: a FAIL
    was out of sight as soon as a good part followed it. Side by side there, both overlays in view; stacked on a narrow one."""
    import numpy as np

    from reports.images import array_uri
    from reports.render import live_html

    _, records = sample
    good = next(r for r in records if r["verdict"] == "PASS")
    overlay = array_uri(np.full((480, 640, 3), 90, np.uint8), 960)
    path = tmp_path / "live.html"
    path.write_text(live_html([good, failed_record], {"status": "ok"}, overlay, last_fail=(failed_record, overlay)), encoding="utf-8")
    box = "(id => { const r = document.querySelector(`#${id} figure img`).getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right] })"
    for width, height, beside in ((1920, 1080, True), (1100, 1400, False)):
        page = browser.open(path.as_uri(), width=width, height=height)
        page.settle()
        assert page.errors == [], page.errors
        latest, failed = page.eval(f"{box}('latest')"), page.eval(f"{box}('last-fail')")
        if beside:
            assert failed[2] >= latest[3] and abs(failed[0] - latest[0]) < 100, (latest, failed)
            assert max(latest[1], failed[1]) <= height, (latest, failed)  # both in view, no scrolling
        else:
            assert failed[0] >= latest[1], (latest, failed)
        page.close()
