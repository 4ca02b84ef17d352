"""A station as an attacker meets it: an MQTT client that may publish to its topics, a web page that reaches its loopback
HTTP port, a client that holds that port open. Each test is a finding of the security review, and failed before its fix."""

from __future__ import annotations

import configparser
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.errors import InspectorError
from tests.inspector.conftest import running, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _intake(tmp_path: Path, **mqtt):
    import queue

    from inspector.config import StationConfig
    from inspector.health import Metrics
    from inspector.intake import Intake
    from inspector.mqtt import Topics
    from inspector.store import Store

    cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "m"}, "source": {"type": "mqtt"},
                                        "mqtt": {"prefix": "p", **mqtt}, "store": {"data_dir": str(tmp_path / "data")}})
    return Intake(cfg, Store(tmp_path / "data"), queue.Queue(2), Metrics(), Topics("p"), publish=lambda *a, **k: None,
                  republish=lambda r, c: None)


def _serve(handler_cls) -> tuple[object, int]:
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _error(lst, corr: bytes, what: str) -> str:
    body = wait_until(lambda: next((b for b, c in lst.on("error") if c == corr), None), 15, what)
    return json.loads(body)["error"]


# -- MQTT: path triggers -------------------------------------------------------------------------------------
def test_a_path_swapped_for_a_link_after_its_check_is_not_followed(station, broker, listen, tiny_inspector, good_png, tmp_path, monkeypatch):
    """The path was resolved and checked, then read by name again: whoever can write in an allowed folder swapped the file
    for a link in between, and the station read (and inspected, and stored) a file outside mqtt.allowed_dirs."""
    allowed, outside = tmp_path / "allowed", tmp_path / "private"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(good_png)
    part = allowed / "part.png"
    part.write_bytes(good_png)
    real_resolve = Path.resolve

    def resolve_then_swap(self, strict=False):  # the attacker wins the race: right after the check's resolve()
        resolved = real_resolve(self, strict)
        if self == part and not part.is_symlink():
            part.unlink()
            part.symlink_to(outside / "secret.png")
        return resolved

    cfg = station(mqtt={"allowed_dirs": [str(allowed)]})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with running(cfg, tiny_inspector):
        monkeypatch.setattr(Path, "resolve", resolve_then_swap)
        lst.publish("trigger", json.dumps({"inspection_id": "swap-1", "path": str(part)}), correlation=b"swap")
        wait_until(lambda: lst.on("error") or lst.json("result"), 15, "an answer")
        monkeypatch.undo()
        assert not lst.json("result"), "a file outside mqtt.allowed_dirs was inspected"  # before: secret.png, as part swap-1
        said = _error(lst, b"swap", "the swapped path refused")
        assert "became a symbolic link" in said, said


def test_a_fifo_or_a_huge_file_in_an_allowed_folder_does_not_hold_the_intake(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.mkfifo(allowed / "pipe.png")
    with open(allowed / "big.png", "wb") as f:
        f.truncate(30_000_000)  # sparse: over mqtt.max_payload_bytes without using the disk
    intake = _intake(tmp_path, allowed_dirs=[str(allowed)], max_payload_bytes=20_000_000)
    with pytest.raises(InspectorError, match="not a regular file"):
        intake._read_path(str(allowed / "pipe.png"))
    with pytest.raises(InspectorError, match="larger than mqtt.max_payload_bytes"):
        intake._read_path(str(allowed / "big.png"))
    with pytest.raises(InspectorError, match="outside mqtt.allowed_dirs"):
        intake._read_path(str(allowed / ".." / "allowed" / ".." / "x.png"))


# -- MQTT: URL triggers --------------------------------------------------------------------------------------
def test_a_urls_credentials_and_token_stay_out_of_the_error_topic_and_the_log(station, broker, listen, tiny_inspector, caplog):
    """The error and the log named the URL as given: anyone subscribed to <prefix>/error (and the journal's readers)
    learnt the password and the access token a trigger's URL carried."""
    cfg = station(mqtt={"allow_urls": True, "url_timeout_s": 2.0})
    lst = listen(broker.port, cfg.mqtt.prefix)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    with caplog.at_level(logging.INFO), running(cfg, tiny_inspector):
        # with a password (urllib sends none: it asked DNS for the host "op:Pa55word@127.0.0.1"), and with a token only
        lst.publish("trigger", json.dumps({"url": f"http://op:Pa55word@127.0.0.1:{port}/cam/part.png?access_token=T0KEN-42"}), correlation=b"u1")
        lst.publish("trigger", json.dumps({"url": f"http://127.0.0.1:{port}/cam/part.png?access_token=T0KEN-42"}), correlation=b"u2")
        said = [_error(lst, b"u1", "the url with a password refused"), _error(lst, b"u2", "the url with a token refused")]
    assert "user name or password in a URL is not sent" in said[0] and "cannot be fetched" in said[1], said
    for text in said:
        assert f"127.0.0.1:{port}/cam/part.png" in text, text  # still says which URL
        for secret in ("Pa55word", "T0KEN-42", "op:"):
            assert secret not in text, text
    for secret in ("Pa55word", "T0KEN-42", "op:"):
        assert secret not in caplog.text


def test_a_redirect_to_another_scheme_is_not_followed(tmp_path):
    """urllib followed a redirect to ftp://: an allowed http URL led the station to any FTP server it can reach."""
    import http.server

    ftp = socket.socket()
    ftp.bind(("127.0.0.1", 0))
    ftp.listen(1)
    ftp.settimeout(3)
    ftp_port = ftp.getsockname()[1]

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1:{ftp_port}/etc/part.png")
            self.end_headers()

        def log_message(self, *args):
            pass

    server, port = _serve(Redirect)
    intake = _intake(tmp_path, allow_urls=True, url_timeout_s=2.0)
    try:
        with pytest.raises(InspectorError, match="cannot be fetched"):
            intake._fetch(f"http://127.0.0.1:{port}/part.png")
        with pytest.raises(TimeoutError):  # nothing connected to the "FTP server"
            ftp.accept()[0].close()
    finally:
        server.shutdown()
        ftp.close()


def test_a_server_that_drips_its_headers_is_given_up_at_the_timeout(tmp_path):
    """The timeout bounded each read of the headers, not the fetch: a server sending a header byte every 0.2 s held the
    intake, and every part behind it, as long as it liked (here a minute against a 1 s url_timeout_s)."""
    import http.server

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            try:
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                for _ in range(300):  # a minute
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.2)
                self.wfile.write(b"\r\n\r\n")
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server, port = _serve(Drip)
    intake = _intake(tmp_path, allow_urls=True, url_timeout_s=1.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(InspectorError, match=r"took longer than mqtt.url_timeout_s \(1 s\)"):
            intake._fetch(f"http://127.0.0.1:{port}/part.png")
        assert time.monotonic() - t0 < 30  # given up at the timeout (1 s), not when the server is done (a minute)
    finally:
        server.shutdown()


# -- MQTT: payloads ------------------------------------------------------------------------------------------
def test_a_float_tiff_is_refused_by_its_header_before_it_is_decoded(station, broker, listen, tiny_inspector, monkeypatch):
    """A colour TIFF of float samples is decoded by OpenCV, and its size was checked only after: 0.3 MB of deflated
    zeros (4000 x 4000) took 1.4 GB to refuse, and a few MB more took the station down (out of memory)."""
    from model import images

    decoded: list[tuple[int, ...]] = []
    real = images.cv2.imdecode

    def watched(buf, flags):
        out = real(buf, flags)
        if out is not None:
            decoded.append(out.shape)
        return out

    bomb = cv2.imencode(".tiff", np.zeros((1200, 1000, 3), np.float32), [cv2.IMWRITE_TIFF_COMPRESSION, 8])[1].tobytes()
    cfg = station(model={"max_image_pixels": 1_000_000})
    lst = listen(broker.port, cfg.mqtt.prefix)
    monkeypatch.setattr(images.cv2, "imdecode", watched)
    with running(cfg, tiny_inspector):
        lst.publish("image/BOMB-1", bomb, correlation=b"tiff")
        said = _error(lst, b"tiff", "the tiff refused")
    assert "1000 x 1200 px is over the 1 million pixels" in said, said
    assert (1200, 1000, 3) not in decoded  # before: decoded whole, then refused


def test_a_json_number_too_long_to_read_is_refused_as_bad_json(station, broker, listen, tiny_inspector, caplog):
    """Python refuses to read an integer of over 4,300 digits with a plain ValueError, which the JSON handler did not
    expect: each such message was logged with a traceback (a cheap way to flood the journal)."""
    cfg = station()
    lst = listen(broker.port, cfg.mqtt.prefix)
    with caplog.at_level(logging.WARNING), running(cfg, tiny_inspector):
        lst.publish("trigger", b'{"serial": ' + b"9" * 5000 + b"}", correlation=b"n1")
        lst.publish("command", b'{"command": "reload", "x": ' + b"9" * 5000 + b"}", correlation=b"n2")
        first, second = _error(lst, b"n1", "trigger refused"), _error(lst, b"n2", "command refused")
    assert first.startswith("trigger: not valid JSON") and second.startswith("command: not valid JSON"), (first, second)
    assert "Traceback" not in caplog.text and "input not handled" not in caplog.text


def test_a_shift_reports_title_is_bounded():
    """`shift` titles the report and was unbounded (up to mqtt.max_payload_bytes): a PDF took 22 s to render with a title of
    2,000 characters, and over 3 minutes with 20,000, while FAIL reports waited behind it."""
    from pydantic import ValidationError

    from inspector.intake import ShiftReportCommand

    assert ShiftReportCommand.model_validate({"command": "shift_report", "shift": "Early shift, line 1"}).shift
    with pytest.raises(ValidationError, match="at most 200 characters"):
        ShiftReportCommand.model_validate({"command": "shift_report", "shift": "x" * 2_000})


# -- HTTP ----------------------------------------------------------------------------------------------------
def _health_server(**kw):
    from inspector.health import HealthServer

    server = HealthServer("127.0.0.1", 0, lambda: {"status": "ok"}, lambda: "# metrics\n", live=lambda: b"<html>part</html>", **kw)
    server.start()
    return server


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_loopback_station_answers_no_other_host_name(tmp_path):
    """DNS rebinding: a page in the HMI's browser, its name pointed at 127.0.0.1, read the live view (the parts) and
    /health from the station's loopback port. A loopback station answers only requests for a loopback host."""
    server = _health_server()
    try:
        port = server.port
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert _raw(port, f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()).startswith(b"HTTP/1.0 200"), host
        for host in (f"evil.example:{port}", "evil.example", "127.0.0.1.evil.example"):
            for path in ("/", "/health"):
                answer = _raw(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                assert answer.startswith(b"HTTP/1.0 421") and b"part" not in answer, (host, answer[:200])
        # and the Server header names no Python version
        answer = _raw(port, b"HEAD /health HTTP/1.0\r\n\r\n")
        assert b"Python" not in answer and b"BaseHTTP" not in answer, answer
    finally:
        server.stop()


def test_http_clients_are_bounded_and_a_slow_one_is_let_go(monkeypatch):
    """Each connection had a thread of its own for as long as it sent a byte within every 10 s: 300 such clients were
    300 threads (a descriptor each, up to LimitNOFILE=65536), and one kept its thread forever."""
    from inspector import health

    monkeypatch.setattr(health, "HTTP_CLIENTS", 8)
    monkeypatch.setattr(health, "HTTP_REQUEST_S", 1.5)
    server = _health_server()
    before = threading.active_count()
    idle = []
    try:
        for _ in range(60):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)
        assert threading.active_count() - before <= 8  # before: 60 more threads
        for s in idle:
            s.close()
        idle.clear()
        wait_until(lambda: threading.active_count() - before <= 0, 5, "the idle clients' threads ended")
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        idle.append(slow)
        t0, cut = time.monotonic(), False
        while time.monotonic() - t0 < 60:  # a minute of dripping: a client kept on would be, well past the bound below
            try:
                slow.sendall(b"G")  # a byte every 0.2 s: each read is quick, the request never ends
            except OSError:
                cut = True
                break
            time.sleep(0.2)
        # a bound, not a timing (its limit is 1.5 s here; before, a client kept its thread as long as it sent a byte)
        assert cut and time.monotonic() - t0 < 30, "a client dripping its request kept its thread"
        assert urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5).status == 200
    finally:
        for s in idle:
            s.close()
        server.stop()


# -- the systemd unit ----------------------------------------------------------------------------------------
HARDENING = {"NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true", "PrivateTmp": "true", "CapabilityBoundingSet": "",
             "AmbientCapabilities": "", "ProtectKernelTunables": "true", "ProtectKernelModules": "true", "ProtectKernelLogs": "true",
             "ProtectControlGroups": "true", "ProtectClock": "true", "ProtectHostname": "true", "RestrictNamespaces": "true",
             "RestrictRealtime": "true", "RestrictSUIDSGID": "true", "LockPersonality": "true", "RemoveIPC": "true",
             "SystemCallArchitectures": "native", "UMask": "0027"}


def test_the_systemd_unit_confines_the_daemon(tmp_path):
    """The unit ran the daemon (which parses images and JSON from the network) with the kernel's tunables, modules and
    logs, namespaces, realtime scheduling, SUID files and every system call and socket family within its reach."""
    text = (ROOT / "configs" / "inspector.service").read_text()
    unit = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",), empty_lines_in_values=False)
    unit.optionxform = str
    unit.read_string(text)
    service = dict(unit["Service"])
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{key}={service.get(key)!r}, want {value!r}"
    assert set(service["RestrictAddressFamilies"].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert service["SystemCallFilter"].startswith("@system-service")
    assert service.get("SupplementaryGroups") == "video"  # /dev/video* is root:video 0660: a camera never opened without it
    if shutil.which("systemd-analyze"):  # every key known to systemd (a typo'd directive is ignored, and confines nothing)
        copy = tmp_path / "inspector@.service"
        copy.write_text(text)
        out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "inspector@t.service")], capture_output=True, text=True, timeout=60)
        said = [line for line in (out.stdout + out.stderr).splitlines() if "is not executable" not in line and line.strip()]
        assert not said, said


def test_url_triggers_fetch_only_from_the_listed_hosts_and_their_redirects_too(tmp_path):
    """With allow_urls any host the station reaches was fetched: a trigger publisher could probe the plant network
    (a controller's web page, a metadata address) through the station, directly or by a listed server's redirect."""
    import http.server

    import cv2

    png = cv2.imencode(".png", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()

    class Images(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/away":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/part.png")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    server, port = _serve(Images)
    try:
        listed = _intake(tmp_path, allow_urls=True, url_hosts=[f"LOCALHOST:{port}"])
        assert listed._fetch(f"http://localhost:{port}/part.png")[1].shape == (32, 32, 3)
        with pytest.raises(InspectorError, match=r"its host is not in mqtt.url_hosts"):
            listed._fetch(f"http://127.0.0.1:{port}/part.png")  # the same server, by a name not listed
        with pytest.raises(InspectorError, match=r"redirected to 'http://127.0.0.1:\d+/part.png', a host not in mqtt.url_hosts"):
            listed._fetch(f"http://localhost:{port}/away")
        anywhere = _intake(tmp_path / "b", allow_urls=True)  # none listed: any host, as before
        assert anywhere._fetch(f"http://localhost:{port}/away")[1].shape == (32, 32, 3)
    finally:
        server.shutdown()
    for bad in ("http://x", "a/b", "host:port", "user@host"):
        with pytest.raises(Exception, match="is not a host"):
            _intake(tmp_path / "c", allow_urls=True, url_hosts=[bad])


def test_config_validate_here_says_when_url_triggers_may_fetch_from_any_host(tmp_path):
    from inspector.commands.config import machine_notes
    from inspector.config import StationConfig

    def notes(**mqtt) -> list[str]:
        cfg = StationConfig.model_validate({"station": {"name": "s"}, "model": {"path": "/m"}, "source": {"type": "mqtt"},
                                            "mqtt": {"prefix": "p", "port": 9, **mqtt}, "store": {"data_dir": str(tmp_path)}})
        return [n for n in machine_notes(cfg) if "url" in n]

    assert notes(allow_urls=True) == ["mqtt.allow_urls: whoever may publish triggers can have this station fetch from any "
                                      "host it reaches; list the image servers in mqtt.url_hosts"]
    assert notes(allow_urls=True, url_hosts=["images.line1.local"]) == [] and notes() == []


def test_links_planted_in_the_store_are_not_written_through(tmp_path):
    """A link planted at an image's predictable temporary name, or at the day's on-arrival.jsonl, had the station write
    its PNG, or append a sender's text, into the link's target."""
    from inspector.store import ARRIVALS_FILE, REFUSED_DIR, Store

    store = Store(tmp_path / "data")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    record = {"inspection_id": "p-1", "timestamp": "2026-12-05T06:00:00.000Z"}
    tmp = store.image_path(record, "image").with_suffix(".tmp.png")
    tmp.parent.mkdir(parents=True)
    tmp.symlink_to(victim)
    saved = store.save_image(record, "image", np.full((8, 8, 3), 7, np.uint8))
    assert victim.read_text() == "keep me" and not tmp.exists() and not tmp.is_symlink()
    assert cv2.imread(str(tmp_path / "data" / saved)).shape == (8, 8, 3)
    arrivals = tmp_path / "data" / REFUSED_DIR / "2026-12-05" / ARRIVALS_FILE
    arrivals.parent.mkdir(parents=True)
    arrivals.symlink_to(victim)
    with pytest.raises(OSError):  # the caller logs it: the sender was answered on the error topic all the same
        store.note_refusal({"timestamp": "2026-12-05T06:01:00.000Z", "reason": "injected\nline"})
    assert victim.read_text() == "keep me"
    store.close()
