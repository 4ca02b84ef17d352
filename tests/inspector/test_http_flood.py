"""The station's HTTP port under a flood of connections: a request being answered is never cut for a newcomer, idle and
trickling connections hold no thread (they are read by the server's own thread until their request is whole), and a
request beyond the ones answered at once is told 503 at once rather than closed unanswered."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.inspector.conftest import wait_until
from tests.inspector.test_http_port import exchange, get


@pytest.fixture
def slow_server(monkeypatch):
    """(server, entered, release): its /health waits for `release`, each call counted on `entered`; 4 answered at once."""
    from inspector import health
    from inspector.health import HealthServer, Metrics

    monkeypatch.setattr(health, "HTTP_CLIENTS", 4)
    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 120.0)  # the idle ones outlast the test, however slow the machine
    entered, release = threading.Semaphore(0), threading.Event()

    def slow_health() -> dict:
        entered.release()
        release.wait(120)
        return {"status": "ok"}

    server = HealthServer("127.0.0.1", 0, slow_health, Metrics().render)
    server.start()
    try:
        yield server, entered, release
    finally:
        release.set()
        server.stop()


def _in_background(port: int, path: str) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(get(port, path)), daemon=True)
    thread.start()
    return thread, answers


def test_a_request_being_answered_is_not_cut_by_a_flood_of_new_connections(slow_server):
    """All places taken, a newcomer had the oldest connection shut, whatever it was doing: a /health being gathered
    (a store slow under load) was cut by the next connections to come, and the monitor read nothing at all."""
    server, entered, release = slow_server
    thread, answers = _in_background(server.port, "/health")
    assert entered.acquire(timeout=60), "the /health request never reached the server"
    flood = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(12)]
    try:
        # taken after the flood (the kernel hands connections over in order): every one of the flood was taken before it
        assert get(server.port, "/metrics")[0] == "HTTP/1.0 200 OK"
        release.set()
        thread.join(60)
        assert answers and answers[0][0] == "HTTP/1.0 200 OK" and b'"ok"' in answers[0][2], answers
    finally:
        for s in flood:
            s.close()


def test_idle_and_trickling_connections_hold_no_thread(monkeypatch):
    """Each connection had a thread from the moment it came, for as long as it sent a byte within every 10 s: a flood
    of them made the server start and cut a thread per newcomer, beside the inspection's threads."""
    from inspector import health
    from inspector.health import HealthServer, Metrics

    monkeypatch.setattr(health, "HTTP_TIMEOUT_S", 120.0)  # not let go for being idle while the test looks
    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, Metrics().render)
    server.start()
    before = threading.active_count()
    held: list[socket.socket] = []
    try:
        for i in range(3 * health.HTTP_CLIENTS):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and no more yet
            held.append(s)
        status, _, body, _ = get(server.port, "/health")  # taken after all of them
        assert status == "HTTP/1.0 200 OK" and b'"ok"' in body
        wait_until(lambda: threading.active_count() == before, 30, "no thread for a connection whose request is not whole")
        held[1].sendall(b"1\r\n\r\n")  # a trickler's request, whole at last, is answered
        held[1].settimeout(30)
        answer = b""
        while chunk := held[1].recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 200 OK\r\n") and answer.endswith(b'"ok"\n}'), answer[:200]
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_request_beyond_those_answered_at_once_is_told_503_at_once(slow_server):
    """All places taken by requests being answered, a newcomer waited a second for one to end and was then closed
    unanswered (and the oldest cut meanwhile): a monitor read 'connection closed', not that the station was busy."""
    server, entered, release = slow_server
    from inspector import health

    waiting = [_in_background(server.port, "/health") for _ in range(health.HTTP_CLIENTS)]
    for _ in waiting:
        assert entered.acquire(timeout=60), "a /health request never reached the server"
    status, headers, body, _ = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == "HTTP/1.0 503 Service Unavailable", (status, body)
    assert body == b"503 the station is busy with 4 requests at once; ask again in a second\n"
    assert headers["content-length"] == str(len(body)) and headers["retry-after"] == "1"
    assert headers["content-type"] == "text/plain; charset=utf-8" and headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff" and headers["content-security-policy"] == "default-src 'none'"
    release.set()
    for thread, answers in waiting:  # and none of those being answered was cut for it
        thread.join(60)
        assert answers and answers[0][0] == "HTTP/1.0 200 OK", answers
    assert get(server.port, "/health")[0] == "HTTP/1.0 200 OK"


def test_a_server_stopped_before_it_started_stops():
    """shutdown() waited for a serving loop that never ran: a daemon failing between the two hung on its way out."""
    from inspector.health import HealthServer

    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, lambda: "")
    done = threading.Event()
    threading.Thread(target=lambda: (server.stop(), done.set()), daemon=True).start()
    assert done.wait(30), "stop() hung"


def test_a_port_in_use_is_one_line_not_an_internal_error():
    """The base class closes a server whose bind failed, before _Server's own state was made: an AttributeError (exit 70)
    hid serve's "cannot listen" line."""
    import socket as sockets

    from inspector.health import HealthServer
    from model.errors import InspectorError

    taken = sockets.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(InspectorError, match=r"^http 127\.0\.0\.1:\d+: cannot listen"):
            HealthServer("127.0.0.1", taken.getsockname()[1], lambda: {}, lambda: "")
    finally:
        taken.close()
