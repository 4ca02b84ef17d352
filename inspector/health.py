"""Counters, gauges and histograms in Prometheus text format, and the HTTP /health and /metrics endpoint."""

from __future__ import annotations

import bisect
import io
import ipaddress
import json
import logging
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from model.errors import InspectorError
from model.quality import WARNINGS as QUALITY_WARNINGS

log = logging.getLogger(__name__)

# name -> (type, help); every metric the daemon exports is declared here
METRICS: dict[str, tuple[str, str]] = {
    "inspector_frames_total": ("counter", "Frames accepted for inspection, by source kind."),
    "inspector_frames_dropped_total": ("counter", "Live frames skipped in continuous mode: the inspector was busy (queue_full, busy), or beyond 10 a minute refused (refused)."),
    "inspector_rejected_total": ("counter", "Inputs rejected with a message on the error topic, by reason."),
    "inspector_verdicts_total": ("counter", "Inspection results, by verdict."),
    "inspector_warnings_total": ("counter", "Warnings on results, by kind: size (an image unlike the training images' size), locate, edge (a located region"
                                 " past the frame's edge),"
                                 f" {', '.join(QUALITY_WARNINGS)} (model.quality), other."),
    "inspector_published_total": ("counter", "Results the broker acknowledged."),
    "inspector_publish_refused_total": ("counter", "Results the broker refused (e.g. by its ACL); each is offered again a minute later."),
    "inspector_images_skipped_total": ("counter", "Results stored without their images: the disk below store.min_free_mb, or the images not writable."),
    "inspector_worker_restarts_total": ("counter", "Workers restarted by the watchdog."),
    "inspector_model_reloads_total": ("counter", "Model reloads (SIGHUP) by outcome: ok, or failed with the model in use kept."),
    "inspector_store_failures_total": ("counter", "Inputs that could not be journaled and results that could not be stored (disk full, store broken)."),
    "inspector_stage_seconds": ("histogram", "Seconds per stage: intake (arrival to accepted), queue (accepted to batch start), inference"
                                " (per batch), store, publish (hand-over to broker ack), total (arrival to stored result)."),
    "inspector_batch_size": ("histogram", "Frames per inference batch."),
    "inspector_score_margin": ("histogram", "Image score minus the threshold it was judged at, by verdict (the model's units: about the standard"
                               " deviations of good parts' scores). Good parts' margins creeping towards 0 show a drifting line,"
                               " light or camera before the false alarms do."),
    "inspector_queue_depth": ("gauge", "Accepted frames waiting for inference."),
    "inspector_queue_bytes": ("gauge", "Bytes of decoded images accepted and not yet stored (bounded by model.max_queue_bytes)."),
    "inspector_inbox_bytes": ("gauge", "Bytes of received MQTT inputs waiting for the intake (bounded by mqtt.max_waiting_bytes)."),
    "inspector_pending": ("gauge", "Accepted jobs in the journal without a stored result."),
    "inspector_unpublished": ("gauge", "Stored results the broker has not acknowledged (the outbox)."),
    "inspector_broker_connected": ("gauge", "1 while connected to the MQTT broker."),
    "inspector_source_up": ("gauge", "1 while the frame source can deliver frames (open, or watching its folder)."),
    "inspector_source_reconnects": ("gauge", "Times the frame source (camera, stream) dropped and was reopened since it started."),
    "inspector_healthy": ("gauge", "1 while every worker is alive and beating."),
    "inspector_prefix_shared": ("gauge", "Other live stations seen publishing a status on this station's mqtt.prefix (MQTT 5): each"
                                " inspects the same triggers; give each station its own prefix."),
}
# series shown at 0 before their first count: a series that appears with its first count has Prometheus's increase()
# and rate() miss that count (the first FAIL of a fresh daemon, the first burst of store failures of a full disk)
ZERO: dict[str, tuple[dict[str, str], ...]] = {
    "inspector_verdicts_total": ({"verdict": "PASS"}, {"verdict": "FAIL"}),
    "inspector_frames_dropped_total": ({"reason": "queue_full"}, {"reason": "busy"}, {"reason": "refused"}),
    # as result.warning_kinds names them: unlike_training's, Framing.located's, each of model.quality's, and the rest
    "inspector_warnings_total": tuple({"kind": k} for k in ("size", "locate", "edge", *QUALITY_WARNINGS, "other")),
    "inspector_model_reloads_total": ({"outcome": "ok"}, {"outcome": "failed"}),
    **{name: ({},) for name in ("inspector_published_total", "inspector_publish_refused_total", "inspector_images_skipped_total",
                                "inspector_store_failures_total")},
}
HTTP_TIMEOUT_S = 10.0
HTTP_CLIENTS = 32  # requests answered at once, a thread each; one beyond is answered 503 (see _Server)
HTTP_REQUEST_S = 30.0  # a connection's whole time, request and answer: HTTP_TIMEOUT_S bounds only each read and write
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MARGIN_BUCKETS = (-8.0, -4.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BUCKETS = {"inspector_batch_size": BATCH_BUCKETS, "inspector_score_margin": MARGIN_BUCKETS}  # any other histogram: LATENCY_BUCKETS

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    esc = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in items)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(items, esc, strict=True)) + "}"


def _num(v: float) -> str:
    """A sample's value in full, spelled as the text format does: '%g' kept 6 digits, so a counter of 1,234,567 read
    1.23457e+06 and stood still for parts at a time (rate() read 0 on a running line), and NaN read 'nan'."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**63 else repr(float(v))


class StoreTrouble:
    """Why the store last failed to take a write, if it has not taken one since, and which inspected results wait
    unstored in the journal (tried again), so that a repeat of their id is answered with why."""

    MAX_IDS = 100_000

    def __init__(self) -> None:
        self.error: str | None = None
        self.unstored: dict[str, str] = {}

    def failed(self, text: str, inspection_id: str | None = None) -> None:
        self.error = text
        if inspection_id is not None:
            self.unstored[inspection_id] = text
            if len(self.unstored) > self.MAX_IDS:
                self.unstored.pop(next(iter(self.unstored)))

    def stored(self, inspection_id: str) -> None:
        """A result the store refused was stored after all."""
        self.unstored.pop(inspection_id, None)
        self.error = None

    def health(self) -> dict[str, Any]:
        return {"error": self.error, "unstored": len(self.unstored)}


class Metrics:
    """One thread-safe registry; the daemon's single stats snapshot for /metrics and /health."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {name: {_labels(ls): 0.0 for ls in series} for name, series in ZERO.items()}
        self._hist: dict[str, dict[Labels, list]] = {}  # [bucket counts..., sum, count]

    def inc(self, name: str, labels: dict[str, str] | None = None, n: float = 1.0) -> None:
        assert METRICS[name][0] == "counter", name
        with self._lock:
            series = self._values.setdefault(name, {})
            key = _labels(labels)
            series[key] = series.get(key, 0.0) + n

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        assert METRICS[name][0] == "gauge", name
        with self._lock:
            self._values.setdefault(name, {})[_labels(labels)] = float(value)

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        assert METRICS[name][0] == "histogram", name
        buckets = BUCKETS.get(name, LATENCY_BUCKETS)
        with self._lock:
            h = self._hist.setdefault(name, {}).setdefault(_labels(labels), [0] * len(buckets) + [0.0, 0])
            i = bisect.bisect_left(buckets, value)
            if i < len(buckets):
                h[i] += 1
            h[-2] += value
            h[-1] += 1

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        with self._lock:
            if name in self._hist:
                return float(self._hist[name].get(_labels(labels), [0])[-1])
            return self._values.get(name, {}).get(_labels(labels), 0.0)

    def total(self, name: str) -> float:
        """A counter summed over all its labels."""
        with self._lock:
            return sum(self._values.get(name, {}).values())

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, (kind, text) in METRICS.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                if kind == "histogram":
                    buckets = BUCKETS.get(name, LATENCY_BUCKETS)
                    for labels, h in sorted(self._hist.get(name, {}).items()):
                        cumulative = 0
                        for edge, count in zip(buckets, h, strict=False):  # h ends with sum and count
                            cumulative += count
                            lines.append(f"{name}_bucket{_fmt(labels, (('le', repr(float(edge))),))} {cumulative}")
                        lines.append(f"{name}_bucket{_fmt(labels, (('le', '+Inf'),))} {h[-1]}")
                        lines.append(f"{name}_sum{_fmt(labels)} {_num(h[-2])}")  # not '%.6f': short stages summed to 0
                        lines.append(f"{name}_count{_fmt(labels)} {h[-1]}")
                else:
                    for labels, v in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_fmt(labels)} {_num(v)}")
        return "\n".join(lines) + "\n"


def loopback_host(value: str | None, bound: str = "localhost") -> bool:
    """Whether a request's Host header names this machine's loopback, or `bound` (the name http.host gives), or is
    absent (a browser always sends one)."""
    if not value:
        return True
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in ("localhost", bound.lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    """The server's own thread takes connections and reads each until its request is whole; only then is it given a
    thread, `clients` at most at once (a 503 beyond). Up to WAITING connections are read at once, each let go
    `read_s` after its last byte and `request_s` after it came, whole or not; a newcomer beyond has the longest-waiting
    closed. A thread per connection from the start let idle and trickling clients hold the threads: a flood had the
    oldest cut to make way, a /health being answered included, and the accept loop waited for each cut one's thread to
    end (20 connections a second beside the inspection's threads), the monitor's probe queued behind them over 10 s."""

    daemon_threads = True
    # connections the kernel holds until they are taken: socketserver's 5 had a burst's 7th wait for a SYN resent a
    # second later (a monitor's probe among 300 sockets opened at once: 48 s)
    request_queue_size = 128
    # on every answer, the 503 of a refused request included: live data, which no proxy or browser is to keep, read as
    # the type it says it is
    HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
    WAITING = 256  # connections read at once: a descriptor and at most HEAD_MAX bytes each
    HEAD_MAX = 2 * 65536  # read no further: 431 to headers cut here, and the handler's 414 or 431 to a line past its limits
    TAKE = 64  # connections taken at each wake: each select beside the inspection's threads waits for the GIL

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], clients: int, request_s: float,
                 read_s: float) -> None:
        self._clients, self._request_s, self._read_s = clients, request_s, read_s
        self._waiting: dict[socket.socket, list] = {}  # in arrival order: connection -> [address, came, last byte, bytes]
        self._open: dict[socket.socket, list] = {}  # answering: connection -> [deadline, its request's bytes]
        self._open_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._stop, self._stopped = threading.Event(), threading.Event()
        self._stopped.set()  # not serving: stopped before it started is stopped
        self._expired = 0.0  # when connections were last looked at for their time
        self._paused = False  # the port left out of the select: out of descriptors with none waiting to close
        # last: a port in use has the base class call server_close, which needs the above (an AttributeError, exit 70, hid
        # serve's one-line "cannot listen")
        super().__init__(address, handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            if self._stop.is_set():
                return
            self.socket.setblocking(False)
            self._selector.register(self.socket, selectors.EVENT_READ)
            while not self._stop.is_set():
                ready = self._selector.select(poll_interval)
                if self._paused:  # poll_interval since descriptors ran out (nothing else was selected): take again
                    self._selector.register(self.socket, selectors.EVENT_READ)
                    self._paused = False
                for key, _ in ready:
                    try:
                        if key.fileobj is self.socket:
                            self._take()
                        elif key.fileobj in self._waiting:
                            self._read(key.fileobj)
                    except Exception:  # noqa: BLE001 - one connection's trouble (no thread to be had, say) is not the port's
                        log.warning("http: a connection could not be served", exc_info=True)
                        if key.fileobj in self._waiting:
                            self._drop(key.fileobj)
                self._expire()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._stopped.wait()

    def _take(self) -> None:
        for _ in range(self.TAKE):
            try:
                conn, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of descriptors: the longest-waiting makes way for the next
                log.debug("http: cannot take a connection: %s", exc)
                if self._waiting:
                    self._drop(next(iter(self._waiting)))
                else:  # none to close: the port, readable while the kernel holds a connection, woke this thread at once,
                    # again and again (a core spun beside the inspection's threads for as long as descriptors were short)
                    self._selector.unregister(self.socket)
                    self._paused = True
                return
            if len(self._waiting) >= self.WAITING:
                self._drop(next(iter(self._waiting)))
            conn.setblocking(False)
            now = time.monotonic()
            self._waiting[conn] = [address, now, now, b""]
            self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        entry = self._waiting[conn]
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # gone before its request was whole
            return self._drop(conn)
        entry[2], entry[3] = time.monotonic(), entry[3] + data
        head = entry[3]
        first, newline, _ = head.partition(b"\n")
        ended = b"\r\n\r\n" in head or b"\n\n" in head
        # a line no headers can mend: HTTP/0.9's two words, one word or four (the handler answers 400 at once, as the
        # thread-per-connection server did; an empty line first is one a client may send before its request)
        lone = bool(newline) and len(first.split()) not in (0, 3)
        if ended or lone or len(head) >= self.HEAD_MAX:  # whole, or too long to wait for
            self._selector.unregister(conn)
            del self._waiting[conn]
            if not (ended or lone) and newline and len(first) < 65536:  # its line within the base class's 64 KB, its
                # headers cut: they were answered as if whole, the last cut short and the rest left unread
                return self._say(conn, "431 Request Header Fields Too Large",
                                 f"431 the request's head is over {self.HEAD_MAX // 1024} KB; send fewer or shorter headers\n")
            self._answer(conn, entry[0], entry[1], head)

    def _answer(self, conn: socket.socket, address: Any, came: float, head: bytes) -> None:
        with self._open_lock:
            busy = len(self._open) >= self._clients
            if not busy:
                self._open[conn] = [came + self._request_s, head]
        if busy:
            log.debug("http: %d requests being answered; refused %s", self._clients, address)
            return self._refuse(conn)
        conn.setblocking(True)  # the handler gives it its timeout
        try:
            super().process_request(conn, address)
        except BaseException:  # no thread to end it: its place is given back here
            self._done(conn)
            self.close_request(conn)
            raise

    def request_head(self, conn: socket.socket) -> bytes:
        """What was read of a connection's request before it was handed to its handler."""
        with self._open_lock:
            return self._open[conn][1]

    def _refuse(self, conn: socket.socket) -> None:
        """503 to a request beyond `clients`, without a thread."""
        self._say(conn, "503 Service Unavailable", f"503 the station is busy with {self._clients} requests at once; ask again in a second\n",
                  ("Retry-After", "1"))

    def _say(self, conn: socket.socket, status: str, text: str, *extra: tuple[str, str]) -> None:
        """An answer without a thread: sent at once (it fits the socket's buffer), then the connection shut."""
        body = text.encode()
        headers = (("Server", "inspector"), ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                   *extra, *self.HEADERS, ("Content-Security-Policy", "default-src 'none'"), ("Connection", "close"))
        head = f"HTTP/1.0 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        try:
            conn.send(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._waiting[conn]
        self.close_request(conn)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _done(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)

    def _expire(self) -> None:
        """A connection that sent nothing for `read_s`, or is past its `request_s`, is let go: one still being read is
        closed, one being answered shut (its thread ends)."""
        now = time.monotonic()
        if now < self._expired + 0.1:  # not at each wake of a flood: a look at every connection each time
            return
        self._expired = now
        for conn in [c for c, (_, came, last, _) in self._waiting.items() if now > last + self._read_s or now > came + self._request_s]:
            self._drop(conn)
        with self._open_lock:
            late = [r for r, entry in self._open.items() if now > entry[0]]
            for r in late:
                self._open[r][0] = math.inf  # shut once
        for request in late:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_close(self) -> None:
        super().server_close()
        for conn in list(self._waiting):
            self._drop(conn)
        self._selector.close()


class HealthServer:
    """GET /health (JSON; 503 when failing), GET /metrics (Prometheus text) and, given `live`, GET / (an HTML page)
    on a background thread; HEAD on each answers as GET would, without the body."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]], metrics: Callable[[], str],
                 live: Callable[[], bytes] | None = None) -> None:
        routes = ["/health", "/metrics"] + (["/"] if live else [])
        loopback = [False]  # set once bound: whether only this machine can reach the port
        logged: dict[str, str] = {}  # route -> the failure last logged with its traceback

        def gathered(route: str, fn: Callable[[], Any]) -> tuple[Any, str | None]:
            """(fn(), None), or (None, why it failed), logged with its traceback once per cause (a monitor asks every
            few seconds, the live view reloads every 2): before, /health and /metrics were left unanswered, the cause
            logged at debug only, and a failing live view logged a traceback at each reload."""
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - e.g. the store's disk failing under its counts
                why = f"{type(exc).__name__}: {exc}"
                if logged.get(route) != why:
                    logged[route] = why
                    log.exception("http: %s could not be gathered", route)
                else:
                    log.debug("http: %s could not be gathered (again): %s", route, why)
                return None, why
            logged.pop(route, None)
            return value, None

        class Handler(BaseHTTPRequestHandler):
            timeout = HTTP_TIMEOUT_S  # each write: a client that reads nothing of its answer is let go (reads: _Server)
            # an answer to a request line it could not read has a status line too: it was a bare HTML page (HTTP/0.9's
            # answer), which a monitor read as 'invalid HTTP response' rather than the 400 or 505 it was; and one line of
            # text, as every other error the station says
            default_request_version = "HTTP/1.0"
            error_message_format = "%(code)d %(message)s (%(explain)s)\n"
            error_content_type = "text/plain; charset=utf-8"
            _head = _page = False
            _code = 0

            def version_string(self) -> str:  # not "BaseHTTP/0.6 Python/3.11.7": no versions for whoever probes the port
                return "inspector"

            def setup(self) -> None:
                super().setup()
                self.rfile.close()  # the connection's own: its request was read whole by the server's thread
                self.rfile = io.BytesIO(self.server.request_head(self.request))

            def parse_request(self) -> bool:
                if len(str(self.raw_requestline, "iso-8859-1").split()) == 2:  # as the base class splits it
                    # HTTP/0.9 has no headers: its request waited for them, then for the 10 s read timeout, unanswered
                    self.requestline, self.command, self.request_version = "", None, self.default_request_version
                    self.close_connection = True
                    self.send_error(HTTPStatus.BAD_REQUEST, "no HTTP version in the request line", "send e.g. GET /health HTTP/1.1")
                    return False
                return super().parse_request()

            def send_response(self, code: int, message: str | None = None) -> None:
                self._code = code
                super().send_response(code, message)

            def end_headers(self) -> None:
                # on every answer, errors included: live data, which no proxy or browser is to keep; read as the type it
                # says it is; and nothing active in an answer but the live page, which carries its own policy
                for name, value in _Server.HEADERS:
                    self.send_header(name, value)
                if not self._page:
                    self.send_header("Content-Security-Policy", "default-src 'none'")
                if self._code in (HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.NOT_IMPLEMENTED):
                    self.send_header("Allow", "GET, HEAD")
                super().end_headers()

            def do_HEAD(self) -> None:  # noqa: N802 (http.server API): uptime monitors ask with HEAD
                self._respond(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._respond()

            def _respond(self, head: bool = False) -> None:
                self._head = head
                asked = self.headers.get("Host")
                try:
                    target = urlsplit(self.path)
                except ValueError:  # e.g. http://[::1/health
                    return self._send(400, "text/plain; charset=utf-8", b"the request's URL cannot be read; send e.g. GET /health HTTP/1.1\n")
                if not self.path.startswith("/") and target.scheme in ("http", "https") and target.netloc:
                    asked = target.netloc  # the absolute form, which a server must take (RFC 9112 3.2.2); its host is the one asked
                path = target.path  # without the query and a fragment
                if loopback[0] and not loopback_host(asked, host):
                    # DNS rebinding: a web page whose name was pointed at 127.0.0.1 read the parts and /health through
                    # the browser of anyone at this machine; a loopback port is asked for by a loopback name
                    self._send(421, "text/plain; charset=utf-8", b"this station listens on loopback: ask for 127.0.0.1, ::1, localhost or its http.host\n")
                elif path == "/health":
                    h, why = gathered("/health", health)
                    if why is not None:  # not gathered is failing, said as such, with why
                        h = {"status": "failing", "problems": [f"/health could not be gathered: {why}; see the daemon log"]}
                    self._send(503 if h.get("status") == "failing" else 200, "application/json", json.dumps(h, indent=1, default=str).encode())
                elif path == "/metrics":
                    text, why = gathered("/metrics", metrics)
                    if why is not None:
                        self._send(500, "text/plain; charset=utf-8", b"the metrics could not be gathered; see the daemon log\n")
                    else:
                        self._send(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())
                elif path == "/" and live is not None:
                    page, why = gathered("the live view", live)  # a page that cannot be drawn is the viewer's trouble, not the line's
                    if why is not None:
                        self._send(500, "text/plain; charset=utf-8", b"the live view failed; see the daemon log\n")
                    else:
                        self._page = True
                        self._send(200, "text/html; charset=utf-8", page)
                else:
                    self._send(404, "text/plain; charset=utf-8", f"not found: try {' or '.join(routes)}\n".encode())

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not self._head:
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes every few seconds would flood the log
                pass

        try:
            self.server = _Server((host, port), Handler, HTTP_CLIENTS, HTTP_REQUEST_S, HTTP_TIMEOUT_S)
        except OSError as exc:
            raise InspectorError(f"http {host}:{port}: cannot listen ({exc.strerror}); pick another http.port or set http.enabled: false") from None
        loopback[0] = ipaddress.ip_address(self.server.server_address[0]).is_loopback
        # a client that went away is not a traceback on stderr
        self.server.handle_error = lambda request, address: log.debug("http: client %s dropped", address)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
