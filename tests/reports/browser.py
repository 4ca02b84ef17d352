"""A real headless Chromium driven over the Chrome DevTools Protocol (websocket-client), for report tests.

Loads a page, collects console errors, uncaught exceptions, log errors (failed loads, CSP violations)
and JavaScript dialogs, evaluates expressions and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*"]


def chromium_binary() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


class Chromium:
    def __init__(self, binary: str, user_data_dir: Path, timeout: float = 30.0) -> None:
        import websocket

        self._websocket = websocket
        self.timeout = timeout
        # Chromium keeps its singleton socket in a folder under TMPDIR and leaves it behind when terminated; the
        # folder is short because a socket's path is limited (108 bytes): a pytest-xdist worker's tmp_path is not.
        self._tmp = tempfile.mkdtemp(prefix="cr")
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": self._tmp})
        port_file = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start (exit code {self.proc.returncode})")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self._id = 0

    def _page_ws(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            target = json.load(r)
        return self._websocket.create_connection(target["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True), target["id"]

    def open(self, url: str, width: int = 1100, height: int = 1400) -> BrowserPage:
        ws, target_id = self._page_ws()
        page = BrowserPage(self, ws, target_id)
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            page.call(method)
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        return page

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)


class BrowserPage:
    def __init__(self, browser: Chromium, ws, target_id: str) -> None:
        self.browser, self.ws, self.target_id = browser, ws, target_id
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self._seen: list[str] = []

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method", ""), msg.get("params", {})
        self._seen.append(method)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append("exception: " + params.get("exceptionDetails", {}).get("text", ""))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append("log: " + params["entry"].get("text", ""))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            self.call("Page.handleJavaScriptDialog", accept=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.browser._id += 1
        mid = self.browser._id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + self.browser.timeout
        while method not in self._seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.browser.timeout} s")
            self._event(json.loads(self.ws.recv()))

    def settle(self, seconds: float = 0.3) -> None:
        """Let late events (console messages, failed loads) arrive."""
        self.ws.settimeout(seconds)
        try:
            while True:
                self._event(json.loads(self.ws.recv()))
        except self.browser._websocket.WebSocketTimeoutException:
            pass
        finally:
            self.ws.settimeout(self.browser.timeout)

    def shows(self, expression: str, want: Any, seconds: float = 20.0) -> None:
        """Wait until `expression` evaluates to `want` (a page that refreshes itself); an AssertionError after `seconds`,
        or 30 at least: a bound, not a timing (as tests/inspector/conftest.py's wait_until: a hung fetch alone is given
        up after 5 s, and CI's 2 cores run Chromium beside 4 test workers)."""
        deadline = time.monotonic() + max(seconds, 30.0)
        while self.eval(expression) != want:
            assert time.monotonic() < deadline, (expression, self.eval(expression))
            time.sleep(0.2)

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.browser.port}/json/close/{self.target_id}", timeout=5):
                pass
        finally:
            self.ws.close()


def serve_page(body: Callable[[], bytes], port: int = 0):
    """A local HTTP server on `port` (0: any free one) answering every GET with `body()` as HTML (a live view's
    stand-in); shut it down when done."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            page = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
