"""The HTTP port's own serving loop (inspector.health._Server) held to what it promises, case by case: which waiting
connection makes way at the limit, when a waiting or answering one is let go (on a clock the test moves, not the
machine's), a request read in pieces, a head past its limit, a client gone or reset mid-request, descriptors run out,
a thread that cannot be started, and stopping (before starting, while serving, with connections waiting)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
import types

import pytest

from tests.inspector.conftest import wait_until
from tests.inspector.test_http_port import answered as answer
from tests.inspector.test_http_port import exchange, get

HOST = "127.0.0.1"
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def serve(monkeypatch):
    """serve(**constants) -> a started HealthServer on a free port with health, _Server constants patched; stopped after."""
    from inspector import health

    started = []

    def make(health_fn=lambda: {"status": "ok"}, **constants):
        constants.setdefault("HTTP_TIMEOUT_S", 120.0)  # nothing let go for the machine's slowness unless a test says so
        for name, value in constants.items():
            monkeypatch.setattr(health._Server if name.isupper() and hasattr(health._Server, name) else health, name, value)
        server = health.HealthServer(HOST, 0, health_fn, health.Metrics().render)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def clock(monkeypatch):
    """The server's clock, moved by the test: [now]."""
    from inspector import health

    now = [1000.0]
    monkeypatch.setattr(health, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def connect(port: int) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def waiting_head(server, n: int) -> None:
    """Until some waiting connection's request has `n` bytes read."""
    wait_until(lambda: any(len(e[3]) == n for e in list(server.server._waiting.values())), 30, f"{n} bytes read")


# -- which waiting connection makes way ---------------------------------------------------------------------------
def test_at_the_waiting_limit_the_longest_waiting_makes_way_and_the_rest_are_answered(serve):
    server = serve(WAITING=3)
    first, *rest = [connect(server.port) for _ in range(4)]  # the 4th taken has the 1st closed, not the 2nd or itself
    try:
        assert answer(first) == b"", "the longest-waiting connection was not closed for the newcomer"
        for s in rest:
            s.sendall(REQUEST)
        for s in rest:
            assert answer(s).startswith(b"HTTP/1.0 200 OK\r\n")
    finally:
        for s in (first, *rest):
            s.close()


# -- reading a request --------------------------------------------------------------------------------------------
def test_a_request_read_in_many_pieces_is_answered_once_whole(serve):
    server = serve()
    s = connect(server.port)
    try:
        sent = 0
        for piece in (b"GET /hea", b"lth HTTP/1.1\r\nHost: 127.0.0.1\r", b"\n\r", b"\n"):
            if sent:
                waiting_head(server, sent)  # each piece read on its own before the next is sent
            s.sendall(piece)
            sent += len(piece)
        got = answer(s)
        assert got.startswith(b"HTTP/1.0 200 OK\r\n") and got.endswith(b'"ok"\n}'), got[:200]
    finally:
        s.close()


def test_a_request_with_bare_newlines_is_answered():
    """Lines ended by LF alone (a hand-typed request, an old client): the base class reads them; its end is LF LF."""
    from tests.inspector.test_http_port import _server

    server = _server()
    try:
        status, _, body, _ = exchange(server.port, b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n")
        assert status == "HTTP/1.0 200 OK" and b'"ok"' in body
    finally:
        server.stop()


def test_a_request_sent_with_its_write_side_closed_at_once_is_answered(serve):
    server = serve()
    s = connect(server.port)
    try:
        s.sendall(REQUEST)
        s.shutdown(socket.SHUT_WR)
        assert answer(s).startswith(b"HTTP/1.0 200 OK\r\n")
    finally:
        s.close()


@pytest.mark.parametrize("line", [b"GET\r\n", b"GET /health now HTTP/1.1\r\n"], ids=["one word", "four words"])
def test_a_request_line_the_headers_cannot_mend_is_answered_400_without_waiting_for_them(serve, line):
    """The thread-per-connection server answered these at once, as HTTP/0.9's two words still are; the server's own
    thread waited for headers that could not make them readable (one typed at a terminal: nothing until a blank line)."""
    server = serve()
    status, headers, body, _ = exchange(server.port, line)  # the write side left open: the answer cannot wait for it
    assert status.startswith("HTTP/1.0 400 ") and headers["content-length"] == str(len(body)), (status, body)


def test_a_head_of_head_max_bytes_is_answered_without_waiting_for_more(serve):
    from inspector.health import _Server

    server = serve()
    start = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    status, _, body, _ = exchange(server.port, start + b"a" * (_Server.HEAD_MAX - len(start)))  # one line past 64 KB
    assert status.startswith("HTTP/1.0 431 "), (status, body)


def test_headers_cut_at_head_max_are_431_not_answered_as_if_whole(serve):
    """Headers past HEAD_MAX in lines each within the base class's 64 KB: the cut head was answered as if it were whole,
    its last header cut short and the rest of the request left unread (a reset may take the answer with it)."""
    from inspector.health import _Server

    server = serve()
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 40_000) for i in range(4))
    status, headers, body, _ = exchange(server.port, head[:_Server.HEAD_MAX])
    assert status == "HTTP/1.0 431 Request Header Fields Too Large", (status, body)
    assert body == b"431 the request's head is over 128 KB; send fewer or shorter headers\n"
    assert headers["content-length"] == str(len(body)) and headers["cache-control"] == "no-store"
    assert headers["content-security-policy"] == "default-src 'none'" and headers["connection"] == "close"


# -- clients gone mid-request -------------------------------------------------------------------------------------
def test_a_client_gone_before_its_request_was_whole_is_let_go_at_once(serve, caplog):
    server = serve(HTTP_REQUEST_S=120.0)
    s = connect(server.port)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\n")
        s.shutdown(socket.SHUT_WR)
        assert answer(s) == b""
        wait_until(lambda: not server.server._waiting, 30, "the connection let go")
    finally:
        s.close()


def test_a_client_reset_mid_request_is_let_go_without_a_warning(serve, caplog):
    server = serve()
    s = connect(server.port)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    waiting_head(server, len(b"GET /health HTTP/1.1\r\n"))
    with caplog.at_level(logging.DEBUG, logger="inspector.health"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a close
        s.close()
        wait_until(lambda: not server.server._waiting, 30, "the reset connection let go")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert get(server.port, "/health")[0] == "HTTP/1.0 200 OK"


# -- time limits, on the server's clock ---------------------------------------------------------------------------
def test_a_connection_is_let_go_read_s_after_its_last_byte_not_after_it_came(serve, clock):
    server = serve(HTTP_TIMEOUT_S=10.0, HTTP_REQUEST_S=30.0)
    idle, trickler = connect(server.port), connect(server.port)
    try:
        trickler.sendall(b"GET /health HTTP/1.1\r\n")
        waiting_head(server, 22)
        wait_until(lambda: len(server.server._waiting) == 2, 30, "both taken")
        clock[0] = 1008.0
        trickler.sendall(b"Host: 127.0.0.1\r\n")
        waiting_head(server, 39)
        clock[0] = 1012.0  # the idle one: 12 s since its last byte (it came); the trickler: 4 s since its last
        assert answer(idle) == b"", "an idle connection outlived read_s"
        trickler.sendall(b"\r\n")  # let go in the same look as the idle one, it would be closed unanswered
        assert answer(trickler).startswith(b"HTTP/1.0 200 OK\r\n")
    finally:
        idle.close()
        trickler.close()


def test_a_trickling_connection_is_let_go_request_s_after_it_came(serve, clock):
    server = serve(HTTP_TIMEOUT_S=10.0, HTTP_REQUEST_S=30.0)
    s = connect(server.port)
    try:
        sent = 0
        for now, piece in ((1000.0, b"GET /health HTTP/1.1\r\n"), (1009.0, b"X-1: 1\r\n"), (1018.0, b"X-2: 2\r\n"), (1027.0, b"X-3: 3\r\n")):
            clock[0] = now
            s.sendall(piece)
            sent += len(piece)
            waiting_head(server, sent)
        clock[0] = 1031.0  # 4 s since its last byte, 31 s since it came
        assert answer(s) == b"", "a trickler outlived request_s"
    finally:
        s.close()


def test_an_answer_past_its_request_s_from_when_the_connection_came_is_shut(serve, clock):
    entered, release = threading.Event(), threading.Event()

    def slow() -> dict:
        entered.set()
        release.wait(120)
        return {"status": "ok"}

    server = serve(health_fn=slow, HTTP_TIMEOUT_S=10.0, HTTP_REQUEST_S=30.0)
    s = connect(server.port)
    try:
        sent = 0
        for now, piece in ((1000.0, b"GET /health HTTP/1.1\r\n"), (1009.0, b"Host: 127.0.0.1\r\n")):
            clock[0] = now
            s.sendall(piece)
            sent += len(piece)
            waiting_head(server, sent)  # taken and read at `now`
        clock[0] = 1018.0
        s.sendall(b"\r\n")
        assert entered.wait(30), "the request never reached its handler"
        clock[0] = 1031.0  # 31 s since the connection came (13 s since its request was whole)
        assert answer(s) == b"", "an answer outlived its connection's request_s"
    finally:
        release.set()
        s.close()


# -- out of descriptors, and threads ------------------------------------------------------------------------------
class _Listener:
    """The server's listening socket, whose accept fails with EMFILE while `full` is set."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.full, self.tries = sock, threading.Event(), 0

    def accept(self):
        if self.full.is_set():
            self.tries += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _out_of_descriptors(monkeypatch):
    from inspector import health
    from inspector.health import HealthServer, Metrics

    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 120.0)  # a waiting connection closed is closed to make way, not for time
    server = HealthServer(HOST, 0, lambda: {"status": "ok"}, Metrics().render)
    listener = server.server.socket = _Listener(server.server.socket)
    server.start()
    return server, listener


def test_out_of_descriptors_the_longest_waiting_makes_way_and_the_port_takes_again_after(monkeypatch):
    server, listener = _out_of_descriptors(monkeypatch)
    try:
        old = connect(server.port)
        wait_until(lambda: server.server._waiting, 30, "the first connection taken")
        listener.full.set()
        new = connect(server.port)
        assert answer(old) == b"", "out of descriptors, the longest-waiting connection was kept"
        listener.full.clear()
        new.sendall(REQUEST)
        assert answer(new).startswith(b"HTTP/1.0 200 OK\r\n")
        new.close()
    finally:
        server.stop()


def test_out_of_descriptors_with_none_waiting_the_port_is_not_polled_in_a_loop(monkeypatch):
    """Nothing waiting to close, the port (readable while the kernel holds a connection) woke the serving thread at
    once, again and again: a core spun beside the inspection's threads for as long as descriptors were short."""
    server, listener = _out_of_descriptors(monkeypatch)
    try:
        listener.full.set()  # before the connection: none is taken, so none waits to be closed
        s = connect(server.port)
        s.sendall(REQUEST)
        registered = lambda: any(k.fileobj is listener for k in server.server._selector.get_map().values())  # noqa: E731
        wait_until(lambda: listener.tries and not registered(), 30, "the port left alone once accept failed")
        listener.full.clear()  # descriptors free again: the connection held by the kernel is taken and answered
        assert answer(s).startswith(b"HTTP/1.0 200 OK\r\n")
        s.close()
    finally:
        server.stop()


def test_a_thread_that_cannot_be_started_gives_its_place_back(serve, monkeypatch, caplog):
    import socketserver

    server = serve(HTTP_CLIENTS=1)
    real = socketserver.ThreadingMixIn.process_request
    failed = []

    def once(self, request, address):
        if not failed:
            failed.append(request)
            raise RuntimeError("can't start new thread")
        return real(self, request, address)

    monkeypatch.setattr(socketserver.ThreadingMixIn, "process_request", once)
    caplog.set_level(logging.WARNING, logger="inspector.health")
    assert get(server.port, "/health")[0] == "", "a request without a thread was not closed"
    wait_until(lambda: "a connection could not be served" in caplog.text, 30, "the failure logged")  # after the close
    assert get(server.port, "/health")[0] == "HTTP/1.0 200 OK"  # its place (the only one) given back


# -- stopping -----------------------------------------------------------------------------------------------------
def test_a_server_stopped_and_then_started_ends_its_thread_quietly(monkeypatch):
    from inspector.health import HealthServer

    raised = []
    monkeypatch.setattr(threading, "excepthook", raised.append)
    server = HealthServer(HOST, 0, lambda: {"status": "ok"}, lambda: "")
    server.stop()
    server.start()  # e.g. a daemon whose start failed part-way: its parts stopped in any order
    server._thread.join(30)
    assert not server._thread.is_alive() and not raised, raised


def test_stop_returns_only_once_the_serving_loop_has_ended(serve):
    """The selector is closed after stop's shutdown: a loop still running would look at connections being closed."""
    server = serve()
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    real = server.server._expire

    def held() -> None:
        entered.set()
        release.wait(120)
        real()

    server.server._expire = held
    assert entered.wait(30)
    threading.Thread(target=lambda: (server.server.shutdown(), done.set()), daemon=True).start()
    assert not done.wait(1), "shutdown returned while the serving loop was still running"
    release.set()
    assert done.wait(30)
    server._thread.join(30)
    assert not server._thread.is_alive()


def test_stopping_closes_the_waiting_connections_and_every_descriptor():
    from inspector.health import HealthServer, Metrics

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    for _ in range(3):
        server = HealthServer(HOST, 0, lambda: {"status": "ok"}, Metrics().render)
        server.start()
        s = connect(server.port)
        wait_until(lambda: server.server._waiting, 30, "the connection taken")  # noqa: B023
        server.stop()
        assert answer(s) == b"", "a waiting connection was left open by stop"
        s.close()
    wait_until(lambda: fds() <= before, 30, "every descriptor of the stopped servers closed")


def test_a_request_being_answered_when_the_server_stops_still_gets_its_answer(serve):
    """stop() ends the serving loop and closes what waits; a request already being answered is the daemon's word to a
    monitor or a screen, and is finished, not cut (nor does stop wait on it)."""
    entered, release = threading.Event(), threading.Event()

    def slow() -> dict:
        entered.set()
        release.wait(120)
        return {"status": "ok"}

    server = serve(health_fn=slow)
    s = connect(server.port)
    try:
        s.sendall(REQUEST)
        assert entered.wait(30), "the request never reached its handler"
        server.stop()
        release.set()
        got = answer(s)
        assert got.startswith(b"HTTP/1.0 200 OK\r\n") and got.endswith(b'"ok"\n}'), got[:200]
    finally:
        release.set()
        s.close()
