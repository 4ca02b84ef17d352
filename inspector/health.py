"""Counters, gauges and histograms in Prometheus text format, and the HTTP /health and /metrics endpoint."""

from __future__ import annotations

import bisect
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from model.errors import InspectorError

log = logging.getLogger(__name__)

# name -> (type, help); every metric the daemon exports is declared here
METRICS: dict[str, tuple[str, str]] = {
    "inspector_frames_total": ("counter", "Frames accepted for inspection, by source kind."),
    "inspector_frames_dropped_total": ("counter", "Live frames skipped in continuous mode: the inspector was busy (queue_full, busy), or beyond 10 a minute refused (refused)."),
    "inspector_rejected_total": ("counter", "Inputs rejected with a message on the error topic, by reason."),
    "inspector_verdicts_total": ("counter", "Inspection results, by verdict."),
    "inspector_warnings_total": ("counter", "Warnings on results, by kind: size (an image unlike the training images' size), locate,"
                                 " dark, overexposed, blank, blurred (model.quality), other."),
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
    "inspector_pending": ("gauge", "Accepted jobs in the journal without a stored result."),
    "inspector_unpublished": ("gauge", "Stored results the broker has not acknowledged (the outbox)."),
    "inspector_broker_connected": ("gauge", "1 while connected to the MQTT broker."),
    "inspector_source_up": ("gauge", "1 while the frame source can deliver frames (open, or watching its folder)."),
    "inspector_source_reconnects": ("gauge", "Times the frame source (camera, stream) dropped and was reopened since it started."),
    "inspector_healthy": ("gauge", "1 while every worker is alive and beating."),
}
HTTP_TIMEOUT_S = 10.0
HTTP_CLIENTS = 32  # connections served at once; more are closed at once (each held a thread for as long as it trickled)
HTTP_REQUEST_S = 30.0  # a connection's whole time, request and answer: HTTP_TIMEOUT_S bounds only each read
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
        self._values: dict[str, dict[Labels, float]] = {}
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
                        lines.append(f"{name}_sum{_fmt(labels)} {h[-2]:.6f}")
                        lines.append(f"{name}_count{_fmt(labels)} {h[-1]}")
                else:
                    for labels, v in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_fmt(labels)} {v:g}")
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
    """A thread per connection, as many as `clients` at once, each for `request_s` at most."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], clients: int, request_s: float) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(clients)
        self._request_s = request_s
        self._open: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("http: %d clients already; closed the connection of %s", len(self._open), client_address)
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open[request] = time.monotonic() + self._request_s
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread to end it: its slot is given back here
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _done(self, request: Any) -> None:
        with self._open_lock:
            if self._open.pop(request, None) is not None:
                self._slots.release()

    def service_actions(self) -> None:
        """Called by serve_forever every half second: a connection past its time is shut, and its thread ends."""
        now = time.monotonic()
        with self._open_lock:
            late = [r for r, until in self._open.items() if now > until]
        for request in late:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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
            timeout = HTTP_TIMEOUT_S  # a client that sends nothing is let go: 1,017 idle ones used up the descriptors

            def version_string(self) -> str:  # not "BaseHTTP/0.6 Python/3.11.7": no versions for whoever probes the port
                return "inspector"

            def do_HEAD(self) -> None:  # noqa: N802 (http.server API): uptime monitors ask with HEAD
                self._respond(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._respond()

            def _respond(self, head: bool = False) -> None:
                self._head = head
                path = self.path.split("?")[0]
                if loopback[0] and not loopback_host(self.headers.get("Host"), host):
                    # DNS rebinding: a web page whose name was pointed at 127.0.0.1 read the parts and /health through
                    # the browser of anyone at this machine; a loopback port is asked for by a loopback name
                    self._send(421, "text/plain", b"this station listens on loopback: ask for 127.0.0.1, ::1, localhost or its http.host\n")
                elif path == "/health":
                    h, why = gathered("/health", health)
                    if why is not None:  # not gathered is failing, said as such, with why
                        h = {"status": "failing", "problems": [f"/health could not be gathered: {why}; see the daemon log"]}
                    self._send(503 if h.get("status") == "failing" else 200, "application/json", json.dumps(h, indent=1, default=str).encode())
                elif path == "/metrics":
                    text, why = gathered("/metrics", metrics)
                    if why is not None:
                        self._send(500, "text/plain", b"the metrics could not be gathered; see the daemon log\n")
                    else:
                        self._send(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())
                elif path == "/" and live is not None:
                    page, why = gathered("the live view", live)  # a page that cannot be drawn is the viewer's trouble, not the line's
                    if why is not None:
                        self._send(500, "text/plain", b"the live view failed; see the daemon log\n")
                    else:
                        self._send(200, "text/html; charset=utf-8", page)
                else:
                    self._send(404, "text/plain", f"not found: try {' or '.join(routes)}\n".encode())

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
            self.server = _Server((host, port), Handler, HTTP_CLIENTS, HTTP_REQUEST_S)
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
