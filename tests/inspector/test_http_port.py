"""The station's HTTP port as a plant's IT department and a monitoring system use it: /metrics read by a strict
Prometheus text-format (0.0.4) reader, malformed and hostile requests answered with a status line and the right
code, the same headers on every answer, and the port still answering /health to its monitor through an idle flood."""

from __future__ import annotations

import logging
import math
import re
import socket
import time

import pytest

from tests.inspector.conftest import running, wait_until

# -- a strict reader of the Prometheus text format 0.0.4 -----------------------------------------------------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN"
SAMPLE = re.compile(rf"(?P<name>{NAME})(?:\{{(?P<labels>(?:{PAIR},)*(?:{PAIR})?)\}})? (?P<value>{VALUE})(?: -?\d+)?")
HELP = re.compile(rf"# HELP ({NAME}) ((?:[^\\\n]|\\[\\n])*)")
TYPE = re.compile(rf"# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)")
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> dict[str, tuple[str, dict[tuple, float]]]:
    """family -> (type, {(sample name, ((label, value), ...)): value}); every rule of the format checked on the way."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, tuple[str, dict[tuple, float]]] = {}
    helped: set[str] = set()
    current = None  # the family whose samples are being read: one family's lines are not split
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line[:120]!r}"
        if line.startswith("# HELP "):
            m = HELP.fullmatch(line)
            assert m and m[1] not in helped, where
            helped.add(m[1])
            continue
        if line.startswith("# TYPE "):
            m = TYPE.fullmatch(line)
            assert m and m[1] not in families, f"{where}: one TYPE per family, before its samples"
            families[m[1]] = (m[2], {})
            current = m[1]
            continue
        assert not line.startswith("#") or line.startswith("# "), where
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.fullmatch(line)
        assert m, f"{where}: not a sample line"
        name = m["name"]
        kind = families[current][0] if current else "untyped"
        allowed = {"histogram": (f"{current}_bucket", f"{current}_sum", f"{current}_count"),
                   "summary": (current, f"{current}_sum", f"{current}_count")}.get(kind, (current,))
        assert name in allowed, f"{where}: a sample of {current} ({kind}) elsewhere, or a family split"
        labels = tuple((k, re.sub(r'\\[\\"n]', lambda e: UNESCAPE[e[0]], v)) for k, v in re.findall(LABEL, m["labels"] or ""))
        assert len({k for k, _ in labels}) == len(labels), f"{where}: a label twice"
        series = families[current][1]
        assert (name, labels) not in series, f"{where}: the same series twice"
        series[(name, labels)] = float(m["value"].replace("Inf", "inf"))
    for family, (kind, series) in families.items():
        if kind == "counter":
            assert family.endswith("_total"), family
            assert all(v >= 0 or math.isnan(v) for v in series.values()), family
        if kind == "histogram":
            check_histogram(family, series)
    return families


def check_histogram(family: str, series: dict[tuple, float]) -> None:
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for (name, labels), v in series.items():
        if name.endswith("_bucket"):
            le = dict(labels)["le"]
            groups.setdefault(tuple(kv for kv in labels if kv[0] != "le"), []).append((float(le.replace("Inf", "inf")), v))
    for rest, buckets in groups.items():
        edges = [e for e, _ in buckets]
        assert edges == sorted(edges) and edges[-1] == math.inf, (family, rest, edges)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), (family, rest, "buckets are cumulative")
        assert series[(f"{family}_count", rest)] == counts[-1], (family, rest)
        assert (f"{family}_sum", rest) in series, (family, rest)


def test_the_strict_reader_refuses_what_prometheus_refuses():
    """The reader below is the test's yardstick: it must refuse the mistakes it is there to catch."""
    good = '# HELP a_total x\n# TYPE a_total counter\na_total{k="q\\"\\\\\\n"} 1\n'
    assert parse_exposition(good)["a_total"][1] == {("a_total", (("k", 'q"\\\n'),)): 1.0}
    for bad in ('# TYPE a_total counter\na_total{k="q"x"} 1\n', '# TYPE a_total counter\na_total{k="a\nb"} 1\n',
                "# TYPE a counter\na 1\n", "# TYPE a_total counter\n# TYPE a_total counter\n",
                "# TYPE a_total counter\n# TYPE b gauge\na_total 1\n", "# TYPE a_total counter\na_total 1.2.3\n"):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# -- talking to the port ----------------------------------------------------------------------------------------
def answered(s: socket.socket) -> bytes:
    """All the server sends until it closes (b"" for a connection closed unanswered)."""
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def exchange(port: int, request: bytes, timeout: float = 30.0) -> tuple[str, dict[str, str], bytes, float]:
    """(status line, headers, body, seconds): whatever the server sends until it closes."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        answer = answered(s)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body, time.monotonic() - t0


def get(port: int, path: str, method: str = "GET", version: str = "HTTP/1.1", extra: str = "") -> tuple[str, dict[str, str], bytes, float]:
    return exchange(port, f"{method} {path} {version}\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n".encode())


def _server(**kw):
    from inspector.health import HealthServer, Metrics

    metrics = Metrics()
    metrics.inc("inspector_frames_total", {"source": "mqtt"})
    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, metrics.render, live=lambda: b"<html>part</html>", **kw)
    server.start()
    return server


# -- /metrics -----------------------------------------------------------------------------------------------------
def test_a_real_stations_metrics_read_strictly_and_keep_every_digit(station, broker, listen, tiny_inspector, good_png, defect_png):
    """Counters and gauges were written with '%g': six significant digits, so a line's inspector_frames_total of
    1,234,567 read 1.23457e+06 and stood still for the next 5 parts out of every 10 (rate() read 0 on a running line,
    increase() jumped by 10 at once); a NaN gauge read 'nan', which the format spells NaN."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector) as d:
        wait_until(lambda: lst.on("status") and lst.on("status")[-1][0] == b"online", 10, "status online")
        for serial, payload in (("P1", good_png), ("P2", defect_png)):
            lst.publish(f"image/{serial}", payload)
        wait_until(lambda: len(lst.json("result")) >= 2, 30, "2 results")
        lst.publish("image", b"not an image")  # a rejection, by reason
        wait_until(lambda: lst.on("error"), 15, "the rejection")
        # a result reaches the line before the sink drains its broker acknowledgement (and the inference and intake
        # threads observe their stage after handing a part on): counted later, an ack made the total 1,234,568
        wait_until(lambda: d.metrics.total("inspector_published_total") == 2, 30, "both results' acknowledgements counted")
        every_stage = ("intake", "queue", "inference", "store", "total")
        wait_until(lambda: all(d.metrics.value("inspector_stage_seconds", {"stage": s}) for s in every_stage), 30, "every stage observed")
        d.metrics.inc("inspector_published_total", n=1_234_567 - d.metrics.total("inspector_published_total"))
        weird = 'a "quoted" back\\slash\nnewline, é 检测 \u2028'  # whatever a label may one day carry
        d.metrics.inc("inspector_rejected_total", {"reason": weird}, 3)
        status, headers, body, _ = get(d.http.port, "/metrics")
    assert status == "HTTP/1.0 200 OK" and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse_exposition(body.decode("utf-8"))
    from inspector.health import METRICS

    assert list(families) == list(METRICS) and all(families[n][0] == METRICS[n][0] for n in METRICS)
    assert families["inspector_published_total"][1] == {("inspector_published_total", ()): 1_234_567.0}
    rejected = {dict(labels)["reason"]: v for (_, labels), v in families["inspector_rejected_total"][1].items()}
    assert rejected[weird] == 3 and rejected["invalid"] >= 1
    verdicts = {dict(labels)["verdict"]: v for (_, labels), v in families["inspector_verdicts_total"][1].items()}
    assert verdicts == {"PASS": 1, "FAIL": 1}
    stages = {dict(labels)["stage"] for (name, labels) in families["inspector_stage_seconds"][1] if name.endswith("_count")}
    assert {"intake", "queue", "inference", "store", "total"} <= stages


def test_metric_values_are_written_in_full_and_spelled_as_the_format_does():
    from inspector.health import Metrics

    m = Metrics()
    m.inc("inspector_frames_total", {"source": "folder"}, 2**53)
    m.inc("inspector_frames_total", {"source": "mqtt"}, 0.1)
    m.set("inspector_queue_depth", float("nan"))
    m.set("inspector_pending", float("inf"))
    m.set("inspector_unpublished", -float("inf"))
    m.set("inspector_source_reconnects", 123_456_789)
    m.observe("inspector_stage_seconds", 1e-7, {"stage": "intake"})
    text = m.render()
    assert 'inspector_frames_total{source="folder"} 9007199254740992\n' in text
    assert 'inspector_frames_total{source="mqtt"} 0.1\n' in text
    assert "inspector_queue_depth NaN\n" in text and "inspector_pending +Inf\n" in text and "inspector_unpublished -Inf\n" in text
    assert "inspector_source_reconnects 123456789\n" in text
    assert 'inspector_stage_seconds_sum{stage="intake"} 1e-07\n' in text  # 0.000000 before: the sum of short stages lost
    parse_exposition(text)


def test_counters_a_monitor_alerts_on_are_there_at_zero_before_their_first_count():
    """A counter's series appeared with its first count, so Prometheus's increase() and rate() missed that count: the
    first store failures of a full disk, or the first FAIL of a fresh daemon, were no increase at all (an alert on
    `increase(inspector_store_failures_total[5m]) > 0` stayed quiet through the first burst)."""
    from inspector.health import Metrics

    families = parse_exposition(Metrics().render())
    for name in ("inspector_published_total", "inspector_publish_refused_total", "inspector_images_skipped_total",
                 "inspector_store_failures_total"):
        assert families[name][1] == {(name, ()): 0.0}, name
    labelled = {name: {dict(labels).popitem()[1] for (_, labels) in families[name][1]} for name in
                ("inspector_verdicts_total", "inspector_frames_dropped_total", "inspector_model_reloads_total", "inspector_warnings_total")}
    assert labelled == {"inspector_verdicts_total": {"PASS", "FAIL"}, "inspector_frames_dropped_total": {"queue_full", "busy", "refused"},
                        "inspector_model_reloads_total": {"ok", "failed"},
                        "inspector_warnings_total": {"size", "locate", "edge", "dark", "overexposed", "blank", "blurred", "other"}}
    m = Metrics()
    m.inc("inspector_verdicts_total", {"verdict": "FAIL"})
    assert m.value("inspector_verdicts_total", {"verdict": "FAIL"}) == 1 and m.total("inspector_verdicts_total") == 1


# -- malformed and hostile requests -------------------------------------------------------------------------------
HOSTILE = [  # (what, request, the status it must be answered with)
    ("no version (HTTP/0.9)", b"GET /health\r\n", 400),
    ("no version, then a blank line", b"GET /health\r\n\r\n", 400),
    ("a version it cannot read", b"GET /health HTTP/abc\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ("HTTP/2 in the request line", b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    ("four words", b"GET /health now HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ("a TLS hello (an https monitor)", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(1, 64)) + b"\r\n\r\n", 400),
    ("a URL of 70 KB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ("a header of 70 KB", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ("200 headers", b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
    ("PUT", b"PUT /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}", 501),
    ("DELETE", b"DELETE /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    ("OPTIONS", b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    ("TRACE (cross-site tracing)", b"TRACE /health HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: secret\r\n\r\n", 501),
    ("path traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    ("encoded traversal", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    ("a NUL in a header", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n", 200),
    ("a NUL in the Host", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\x00.evil.example\r\n\r\n", 421),
    ("a query string", b"GET /health?verbose=1&x=%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200),
    ("a fragment", b"GET /metrics#top HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200),
    ("the absolute form (RFC 9112: a server MUST accept it)", b"GET http://127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200),
    ("the absolute form naming another host", b"GET http://evil.example/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 421),
    ("the absolute form, unreadable", b"GET http://[::1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
]


@pytest.mark.parametrize("what,request_bytes,code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_malformed_request_is_answered_at_once_with_a_status_line(what, request_bytes, code, caplog, monkeypatch):
    """Before: a request line without a version was answered after the 10 s read timeout, with nothing; one with a
    version it could not read (HTTP/2.0, a TLS hello) was answered with a bare HTML page and no status line, which a
    monitor reads as 'invalid HTTP response' rather than the 400 or 505 it was; the absolute form was 'not found'."""
    from inspector import health

    # a read timeout past the exchange's 30 s: one waited for fails the exchange, not a timing a loaded machine may miss
    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 120.0)
    server = _server()
    try:
        with caplog.at_level(logging.DEBUG):
            status, headers, body, _ = exchange(server.port, request_bytes)
            assert re.fullmatch(rf"HTTP/1\.[01] {code} .+", status), (status, body[:300])
            assert headers.get("content-length") == str(len(body))
            assert b"Cookie" not in body and b"secret" not in body and b"root:" not in body
            assert get(server.port, "/health")[0] == "HTTP/1.0 200 OK"  # and the port still answers its monitor
        assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        server.stop()


def test_head_sends_the_headers_get_would_without_a_body():
    server = _server()
    try:
        for path in ("/health", "/metrics", "/", "/nope"):
            got, head = get(server.port, path), get(server.port, path, "HEAD")
            assert head[0] == got[0] and head[2] == b"", path
            assert head[1]["content-length"] == str(len(got[2])) and head[1]["content-type"] == got[1]["content-type"], path
    finally:
        server.stop()


def test_pipelined_requests_are_answered_in_order_or_the_connection_closed():
    """An HTTP/1.0 server answers the first and closes: a pipelining client sends the rest again on a new connection.
    What must not happen is a second answer that belongs to nobody, or one out of order."""
    server = _server()
    try:
        two = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        status, headers, body, _ = exchange(server.port, two)
        assert status == "HTTP/1.0 200 OK" and headers["content-type"].startswith("application/json")
        assert len(body) == int(headers["content-length"])  # nothing else after it: the second was not answered
    finally:
        server.stop()


def test_every_answer_carries_the_same_headers_errors_included():
    """/health, /metrics and the live view are live data: they said nothing about caching (a proxy between the line's
    screens and the station may keep them); no answer said nosniff, and the error pages (an HTML page with no policy)
    had no Content-Security-Policy; text answers named no charset."""
    server = _server()
    port = server.port
    try:
        answers = [get(port, "/health"), get(port, "/metrics"), get(port, "/"), get(port, "/nope"), get(port, "/health", "HEAD"),
                   get(port, "/health", "PUT"), get(port, "/health", version="HTTP/abc"), exchange(port, b"GET /health\r\n"),
                   exchange(port, b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
                   exchange(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")]
        for status, headers, body, _ in answers:
            assert headers.get("cache-control") == "no-store", (status, headers)
            assert headers.get("x-content-type-options") == "nosniff", (status, headers)
            ctype = headers.get("content-type", "")
            assert ctype.startswith("application/json") or "charset=utf-8" in ctype, (status, ctype)
            if not ctype.startswith("text/html") or status.split()[1] != "200":  # the live page carries its own policy
                assert "default-src 'none'" in headers.get("content-security-policy", ""), (status, headers)
                assert b"<" not in body, (status, body[:200])  # one line of text, as every other error the station says
        assert answers[5][0].startswith("HTTP/1.0 501") and answers[5][1].get("allow") == "GET, HEAD"
    finally:
        server.stop()


# -- idle and slow clients -----------------------------------------------------------------------------------------
def test_a_flood_of_idle_connections_does_not_keep_the_monitor_out(monkeypatch):
    """32 connections that sent nothing held every slot for the 10 s read timeout (and a byte every 9 s, for 30 s):
    each /health asked meanwhile was closed unanswered, so anyone on the network could hold a station 'down' on the
    plant's monitor with 32 sockets. The oldest connection now makes way for the newest."""
    from inspector import health

    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 120.0)  # the idle ones outlast the test, however slow the machine
    server = _server()
    idle: list[socket.socket] = []
    try:
        import resource

        for _ in range(min(300, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2 - 50)):  # each is two descriptors here
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
        for _ in range(3):
            status, headers, body, _ = get(server.port, "/health")
            assert status == "HTTP/1.0 200 OK" and b'"ok"' in body
        # and the flood's sockets are bounded still: the newest 32 at most hold a thread
        wait_until(lambda: len(server.server._open) <= health.HTTP_CLIENTS, 30, "the slots to stay bounded")
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_burst_of_connections_is_held_by_the_kernel_until_taken():
    """socketserver's listen backlog of 5: the 7th connection of a burst (screens, Prometheus and a blackbox probe at
    once, or a flood) had its SYN dropped and resent a second later, and again 3 s later while the burst lasted; 300
    sockets opened at once kept a monitor's probe out for 48 s. Here nothing takes connections: the kernel alone does."""
    from inspector.health import HealthServer

    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, lambda: "")  # not started: no connection is accepted
    held: list[socket.socket] = []
    try:
        for _ in range(40):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
    finally:
        for s in held:
            s.close()
        server.server.server_close()


# -- the live view in a browser -------------------------------------------------------------------------------------
def test_the_live_view_refreshes_in_a_browser_without_abortsignal_timeout(tmp_path_factory):
    """The page's refresh gave up on a hung station with AbortSignal.timeout, which browsers before 2022 lack (Chrome
    103, Firefox 100, Safari 16: an HMI panel's browser at the line): there each refresh threw, and a station that
    answered was marked 'not answering' with its counts frozen. The page is served by the station's own server here,
    with its headers, which must leave the page's own policy and its script working."""
    pytest.importorskip("websocket", reason="browser tests need websocket-client (the dev extra)")
    from inspector.health import HealthServer
    from reports.render import live_html
    from tests.reports.browser import BrowserPage, Chromium, chromium_binary

    binary = chromium_binary()
    if not binary:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    count = [5]
    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, lambda: "",
                          live=lambda: live_html([], {"status": "ok", "verdicts": {"PASS": count[0]}}, refresh_s=1).encode())
    server.start()
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium"))
    page = None
    try:
        ws, target = browser._page_ws()
        page = BrowserPage(browser, ws, target)
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            page.call(method)
        page.call("Page.addScriptToEvaluateOnNewDocument", source="delete AbortSignal.timeout;")  # as an older browser
        page.call("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
        page.wait_for("Page.loadEventFired")
        assert page.eval("typeof AbortSignal.timeout") == "undefined"
        assert page.eval("document.getElementById('inspected').textContent") == "5"
        count[0] = 6
        wait_until(lambda: page.eval("document.getElementById('inspected').textContent") == "6", 30, "the page fetched again")
        assert page.eval("document.getElementById('unreachable').hidden") is True
        page.settle()
        assert [e for e in page.errors if "Content Security Policy" in e or "exception" in e] == [], page.errors
    finally:
        if page is not None:
            page.close()
        browser.close()
        server.stop()
