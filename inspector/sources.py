"""Frame sources: OpenCV cameras, network streams, video files, watched folders.

Live sources (camera, stream, a video replayed at a frame rate) read frames on their own thread and keep
the newest one, so a trigger gets a frame taken after it arrived; when the device drops they reconnect
with doubling backoff. A video replayed as fast as possible reads on demand. In continuous mode, and for
folders, the source hands every frame to `submit(frame)`: live frames do not wait (the daemon counts what
it could not take), files and fast video replays (`frame.wait`) wait for room.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import re
import stat
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspector.config import SAFE_ID, CameraSource, FolderSource, MqttSource, Reconnect, StreamSource, VideoSource, safe_url, split_url
from model.errors import InspectorError
from model.folders import hold_lock_file
from model.images import AVIF_GET, IMAGE_SUFFIXES, MIN_SIDE, UNREAD_SUFFIXES, array_to_rgb, unread_file

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One image to inspect: pixels (RGB) or the encoded bytes they come from, plus where it came from."""

    source: str
    rgb: np.ndarray | None = None
    encoded: bytes | None = None
    serial: str | None = None
    inspection_id: str | None = None
    known_as: str | None = None  # the id an earlier version gave it (a watched file): inspected then, not inspected again
    timestamp: float = field(default_factory=time.time)
    wait: bool = False  # True: durable input (file, fast video replay) that waits for room instead of being skipped
    # called once the daemon accepted (True) or rejected (False) it, or could not take it now (None: the store failed)
    done: Callable[[bool | None], None] | None = None
    refused: Callable[[], None] | None = None  # called if, accepted, it gets no result (its inspection failed)


Submit = Callable[[Frame], bool]


PROBE_TIMEOUT_S = 1.5  # how long the look at why a stream does not open waits for each answer (a stop waits on it)


def _why_camera_not_open(device: int | str) -> str | None:
    """Why a camera (an index, or a /dev/video path) did not open, where Linux can tell: the node missing, or not
    the service user's to open (the usual cause under systemd: /dev/video* belong to the group video)."""
    if not os.name == "posix" or not os.path.isdir("/dev"):
        return None
    node = f"/dev/video{device}" if isinstance(device, int) else device if device.startswith("/dev/") else None
    if node is None:
        return None
    if not os.path.exists(node):
        here = ", ".join(sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))) or "none"
        return f"{node} does not exist (video devices on this machine: {here}); connect the camera or fix source.device"
    if not os.access(node, os.R_OK | os.W_OK):
        import grp
        import pwd

        try:
            group = grp.getgrgid(os.stat(node).st_gid).gr_name
        except (KeyError, OSError):
            group = "video"
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        return (f"{node}: user {user} may not open it; add the user to the group {group} (under systemd: "
                f"SupplementaryGroups={group} in the unit)")
    return (f"{node} exists but does not open: another program may hold it (a second station, a camera viewer), or it is "
            "not a capture node (a camera may list a metadata node beside it)")


def _why_stream_not_open(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a stream URL did not open, asked of its server as FFmpeg would (the user info up to the authority's last
    `@`): its name, the connection, and for rtsp:// and http:// the answer to a DESCRIBE or GET with the URL's user name
    and password (Basic or Digest). FFmpeg said nothing of a refused password. Nothing of the URL but its host and port
    is said."""
    import socket
    from urllib.parse import unquote

    if safe_url(url).endswith("://…"):
        return None  # no telling the host from the password (said at start)
    scheme, userinfo, hostport, target = split_url(url)
    plain = f"{scheme}://{hostport}{target}"  # the URL without its user info, as asked of the server
    m = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+))?", hostport)
    if m is None:
        return None
    host = m.group(1).strip("[]")
    scheme = scheme.lower()
    port = int(m.group(2) or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(scheme, 0))
    where = f"{m.group(1)}:{port}"
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        return f"{m.group(1)} is not a known host name (check source.url's host, or the DNS)"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s (a wrong address, the camera off, or a firewall)"
    except ConnectionRefusedError:
        return f"nothing answers at {where} (connection refused): check source.url's host and port, and that the camera is on"
    except OSError as exc:
        return f"cannot reach {where} ({exc.strerror or exc})"
    with conn:
        if scheme not in ("rtsp", "http"):
            return f"{where} answers, but its stream does not open: check source.url's path, user name and password"
        user, _, password = (unquote(part) for part in userinfo.partition(":"))
        try:
            code, reason, headers = _ask(conn, scheme, plain, target or "/", user, password, timeout)
        except (OSError, ValueError):
            return f"{where} answers, but not as an {scheme.upper()} server: check source.url's scheme and port"
    proto = "RTSP" if scheme == "rtsp" else "HTTP"
    if code in (401, 403):
        if not userinfo:
            return (f"the camera at {where} asks for a user name and password ({proto} {code}): give them in source.url "
                    f"({scheme}://USER:PASSWORD@{m.group(1)}/...; / ? # @ in them %-encoded)")
        return f"the camera at {where} refuses the user name and password in source.url ({proto} {code} {reason})"
    if code == 404:
        return f"the camera at {where} has no stream at source.url's path ({proto} 404): check the path"
    if code >= 300:
        return f"the camera at {where} answers {proto} {code} {reason}"
    kind = headers.get("content-type", "")
    if scheme == "http" and kind and not kind.startswith(("multipart/", "video/", "image/", "application/octet-stream")):
        return f"{where} answers with {kind[:40]}, not a video stream: check source.url's path"
    return f"{where} answers, but OpenCV cannot read its stream (its format or codec)"


def _ask(conn, scheme: str, url: str, target: str, user: str, password: str, timeout: float) -> tuple[int, str, dict[str, str]]:
    """One request (RTSP DESCRIBE, HTTP GET) with the given user name and password, once more with Digest when the
    server asks for it: the status code, its phrase (printable, short) and the lower-cased headers."""
    import base64

    method, uri, version = ("DESCRIBE", url, "RTSP/1.0") if scheme == "rtsp" else ("GET", target, "HTTP/1.1")
    host = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    buffer = b""

    def request(cseq: int, auth: str | None) -> tuple[int, str, dict[str, str]]:
        nonlocal buffer
        lines = [f"{method} {uri} {version}", f"CSeq: {cseq}", f"Host: {host}", "Accept: application/sdp" if scheme == "rtsp" else "Accept: */*",
                 "User-Agent: inspector"] + ([f"Authorization: {auth}"] if auth else [])
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace"))
        conn.settimeout(timeout)
        while b"\r\n\r\n" not in buffer and len(buffer) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status, *fields = head.decode("latin-1").split("\r\n")
        match = re.match(r"(?:RTSP|HTTP)/\d\.\d (\d{3}) ?(.*)", status)
        if match is None:
            raise ValueError(status[:40])
        phrase = "".join(c for c in match.group(2) if c.isprintable())[:40]
        found: dict[str, str] = {}
        for f in fields:
            name, _, value = f.partition(":")
            found.setdefault(name.strip().lower(), value.strip())
        body = int(found.get("content-length", "0") or 0) if found.get("content-length", "").isdigit() else 0
        buffer = buffer[body:]  # a 401's small body, before the next answer
        return int(match.group(1)), phrase, found

    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user or password else None
    code, phrase, headers = request(1, basic)
    challenge = headers.get("www-authenticate", "")
    if code == 401 and (user or password) and challenge.lower().startswith("digest"):
        code, phrase, headers = request(2, _digest(challenge, method, uri, user, password))
    return code, phrase, headers


def _digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """The Authorization header answering a Digest challenge (RFC 2617: MD5, qop auth or none)."""
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731, S324 (the protocol's)
    ha1, ha2 = md5(f"{user}:{fields.get('realm', '')}:{password}"), md5(f"{method}:{uri}")
    nonce = fields.get("nonce", "")
    parts = [f'username="{user}"', f'realm="{fields.get("realm", "")}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in fields.get("qop", "").split(","):
        cnonce = os.urandom(8).hex()
        parts += ["qop=auth", "nc=00000001", f'cnonce="{cnonce}"', f'response="{md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")}"']
    else:
        parts.append(f'response="{md5(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in fields:
        parts.append(f'opaque="{fields["opaque"]}"')
    return "Digest " + ", ".join(parts)


class Backoff:
    """Doubling delays between reconnect attempts, reset by a success."""

    def __init__(self, cfg: Reconnect) -> None:
        self.cfg, self.delay = cfg, cfg.initial_s

    def next(self) -> float:
        d, self.delay = self.delay, min(self.delay * 2, self.cfg.max_s)
        return d

    def reset(self) -> None:
        self.delay = self.cfg.initial_s


class OpenCVSource:
    """Camera index/device, stream URL or video file through cv2.VideoCapture."""

    def __init__(self, cfg: CameraSource | StreamSource | VideoSource) -> None:
        self.cfg = cfg
        self.state = "stopped"
        self.reconnects = 0
        self.heartbeat = time.monotonic()
        self._frame_at = time.monotonic()  # when the device last gave a frame (or was opened)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray, float] | None = None  # (sequence number, BGR, wall time)
        self._seq = 0
        self._cap: cv2.VideoCapture | None = None
        self._submit: Submit | None = None
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self._retry_at = 0.0  # when a reconnecting source tries again (monotonic)
        self._why: str | None = None  # why the device did not open, where that can be told (shown with `reconnecting`)
        self._settings_said: list[str] = []  # what a camera gives otherwise than asked, as last logged
        self._position = 0
        # a stream's URL, or a URL given as a camera's device (OpenCV opens one): read through FFmpeg with time limits
        self._url = cfg.open_url() if isinstance(cfg, StreamSource) else \
            cfg.device if isinstance(cfg, CameraSource) and isinstance(cfg.device, str) and "://" in cfg.device else None
        if isinstance(cfg, CameraSource):
            self.name, self.live, self.period = f"camera:{cfg.device}", True, 0.0
            if self._url is not None:
                # OpenCV opens a URL given as a camera: its name carried the password into the log and every record, and
                # with no read timeout a stream that stalled hung the reader until the watchdog gave it up
                self.name = f"camera:{safe_url(cfg.device)}"
                log.warning("source %s: source.device is a URL; it is read as a stream is (type: stream, url: ... says so)", self.name)
        elif isinstance(cfg, StreamSource):
            self.name, self.live, self.period = f"stream:{safe_url(cfg.url)}", True, 0.0
            if self.name.endswith("…") and "?" not in self.name:  # an @ after the host: shown as the scheme alone
                log.warning("source %s: source.url has an @ after its host, so the station's log names it by its scheme alone; "
                            "a password holding / ? # must be %%-encoded in the URL (%%2F %%3F %%23), or the camera is not found",
                            self.name)
        else:
            self.name, self.live = f"video:{Path(cfg.path).name}", cfg.fps != "max"
            self.period = 0.0  # set on open for "native"
            if not Path(cfg.path).is_file():
                # a folder, a FIFO or a link to /dev/zero was said to be missing; not opened (a FIFO's open would wait)
                there = os.path.exists(cfg.path)
                raise InspectorError(f"source.path {cfg.path}: " + ("no regular file (a folder, FIFO or device); give the video file itself"
                                                                     if there else "no such video file"))
            probe = cv2.VideoCapture(cfg.path)  # said before serve makes its store and loads its model, as --here says it
            opened = probe.isOpened()
            # one that opens but decodes nothing (no frames, a codec OpenCV lacks) passed, then said "set source.loop"
            readable = opened and probe.read()[0]
            probe.release()
            if not opened:
                raise InspectorError(f"source {self.name}: OpenCV cannot open {cfg.path}; is it a video file?")
            if not readable:
                raise InspectorError(f"source {self.name}: no frame of {cfg.path} can be decoded; is it empty, cut short, or in a codec "
                                     "this OpenCV lacks? Re-encode it (e.g. MJPG or H.264)")

    # -- device --------------------------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        cfg = self.cfg
        if self._url is not None:
            # bounded open/read times: a stalled stream must end in a reconnect, not a hung thread
            cap = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
        elif isinstance(cfg, CameraSource):
            cap = cv2.VideoCapture(cfg.device)
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height), (cv2.CAP_PROP_FPS, cfg.fps)):
                if value:
                    cap.set(prop, value)
            if cap.isOpened():
                self._say_settings(cap)
        else:
            cap = cv2.VideoCapture(cfg.path)
            if cap.isOpened() and cfg.fps != "max":
                fps = cap.get(cv2.CAP_PROP_FPS) if cfg.fps == "native" else float(cfg.fps)
                self.period = 1.0 / fps if fps and fps > 0 else 1.0 / 25
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _say_settings(self, cap: cv2.VideoCapture) -> None:
        """A camera gives the nearest mode it has to the width, height and rate asked for, without a word: its frames
        were then refused as lacking the model's region, or inspected at another scale, and the log never said why."""
        cfg = self.cfg
        asked = (cfg.width, cfg.height, cfg.fps)
        got = (round(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), cap.get(cv2.CAP_PROP_FPS))
        off = [f"{name} {want:g}, it gives {have:g}" for name, want, have in zip(("width", "height", "fps"), asked, got, strict=True)
               if want and have > 0 and abs(have - want) > (0.5 if name == "fps" else 0)]
        if off and off != self._settings_said:  # once, not at every reconnect
            log.warning("source %s: the camera does not give the mode asked for (%s); set source.width/height/fps to a mode it has",
                        self.name, "; ".join(off))
        self._settings_said = off

    def _why_not_open(self) -> str | None:
        try:
            if self._url is not None:
                return _why_stream_not_open(self._url)
            if isinstance(self.cfg, CameraSource):
                return _why_camera_not_open(self.cfg.device)
        except Exception:  # noqa: BLE001 (only a hint: never the reader's end)
            log.debug("source %s: could not tell why it does not open", self.name, exc_info=True)
        return None

    def _read(self) -> np.ndarray | None:
        """Next BGR frame, rewinding a looping video; None when the device gave nothing."""
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok and isinstance(self.cfg, VideoSource) and self.cfg.loop and self._position > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._position = 0
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        self._position += 1
        return bgr

    def _sleep(self, seconds: float) -> None:
        """Wait (interruptibly), still beating: a long backoff is not a stall."""
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            self.heartbeat = time.monotonic()
            self._stop.wait(min(1.0, end - time.monotonic()))

    def _frame(self, bgr: np.ndarray, ts: float) -> Frame:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB) if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if rgb.dtype == np.uint16 and min(rgb.shape[:2]) >= MIN_SIDE:
            # a mono camera's 12/16-bit frames (Aravis, GStreamer GRAY16): spread over 0-255 as a 16-bit file is; kept
            # uint16, they were inspected, then their overlay and stored image refused the result, "tried again every 5 s"
            rgb = array_to_rgb(rgb, self.name)
        return Frame(source=self.name, rgb=rgb, timestamp=ts, wait=not self.live)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, submit: Submit) -> None:
        self._submit = submit
        self._stop.clear()
        if isinstance(self.cfg, VideoSource):  # a file that cannot be opened now never will be: no retrying
            self._cap = self._open()
            if self._cap is None:
                raise InspectorError(f"source {self.name}: OpenCV cannot open {self.cfg.path}; is it a video file?")
            self.state, self._frame_at = "open", time.monotonic()
            if not self.live and self.cfg.mode == "trigger":
                return
        self._thread = threading.Thread(target=self._run, name=f"source {self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff(self.cfg.reconnect)
        next_due = time.monotonic()
        last_submit = 0.0
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            if self._cap is None:
                self.state = "connecting"
                self._cap = self._open()
                if self._cap is None:
                    # "cannot open" alone left a wrong password, a missing /dev/video1 and a camera that is off alike
                    self._why = None if self._stop.is_set() else self._why_not_open()
                    delay = backoff.next()
                    # the time first: capture() reads it once the state says so, and waited its timeout out on the old one
                    self._retry_at, self.state = time.monotonic() + delay, "reconnecting"
                    log.warning("source %s: cannot open, retrying in %.1f s%s", self.name, delay, f": {self._why}" if self._why else "")
                    self._sleep(delay)
                    continue
                self.state, self._frame_at, self._why = "open", time.monotonic(), None
            with self._read_lock:
                bgr = self._read()
            if bgr is None:
                if isinstance(self.cfg, VideoSource) and not self.cfg.loop:
                    self._finished()
                    return
                self._release()
                self.reconnects += 1
                self._why = None
                delay = backoff.next()
                self._retry_at, self.state = time.monotonic() + delay, "reconnecting"
                log.warning("source %s: no frame (device dropped?); reconnecting in %.1f s", self.name, delay)
                self._sleep(delay)
                continue
            backoff.reset()
            now, self._frame_at = time.time(), time.monotonic()
            with self._cond:
                self._seq += 1
                self._latest = (self._seq, bgr, now)
                self._cond.notify_all()
            interval = self.cfg.interval_s or 0.0
            if self.cfg.mode == "continuous" and self._submit is not None and time.monotonic() - last_submit >= interval:
                last_submit = time.monotonic()
                frame = self._frame(bgr, now)
                while not self._submit(frame) and frame.wait and not self._stop.is_set():
                    self.heartbeat = time.monotonic()  # a file replayed as fast as possible waits for room: no frame skipped
            if self.period:
                next_due = max(next_due + self.period, time.monotonic() - self.period)
                self._stop.wait(max(0.0, next_due - time.monotonic()))

    def _finished(self) -> None:
        with self._cond:
            if self.state != "finished":
                log.info("source %s: end of video", self.name)
            self.state = "finished"
            self._cond.notify_all()  # a trigger waiting for the next frame is answered now

    def capture(self, timeout: float | None = None) -> Frame:
        """A frame taken after this call (live), or the next frame of the file (video replayed as fast as possible)."""
        timeout = self.cfg.capture_timeout_s if timeout is None else timeout
        end = f"source {self.name}: no more frames (end of video; set source.loop: true)"
        # answered, not left for the next start: redelivered then, it would capture whatever part is there by then
        stopping = InspectorError(f"source {self.name} was stopped (the station is stopping, or replaced it) before a frame came; "
                                  "trigger again")
        if not self.live:
            with self._read_lock:
                if self._stop.is_set():
                    raise stopping
                bgr = self._read()
            if bgr is None:
                self._finished()
                raise InspectorError(end)
            return self._frame(bgr, time.time())
        wait = self._retry_at - time.monotonic()
        if self.state.startswith("reconnecting") and wait > timeout:  # each trigger waited its whole timeout in turn, parts behind it too
            why = self._why or "check the camera or stream"
            raise InspectorError(f"source {self.name}: not delivering frames (the next reconnect is in {wait:.1f} s); {why}")
        with self._cond:
            start = self._seq
            done = lambda: self._seq > start or self._stop.is_set() or self.state == "finished"  # noqa: E731
            if not self._cond.wait_for(done, timeout) or self._seq == start:
                if self._stop.is_set():
                    raise stopping
                if self.state == "finished":
                    raise InspectorError(end)
                raise InspectorError(f"source {self.name}: no frame within {timeout:.1f} s ({self.state}); check the camera or stream")
            _, bgr, ts = self._latest
        return self._frame(bgr, ts)

    @property
    def can_capture(self) -> bool:
        return True

    @property
    def state(self) -> str:
        """What /health shows. A live source whose device stays open but gives no frame (a stream that stalls without
        closing, a camera that stopped sending) is `stalled` once a trigger would find no fresh frame: it read `open`
        (the status online) through the read timeout, and again after each reconnect whose open gave one frame."""
        state = self._state
        if state == "reconnecting":  # in the time left, not the delay set seconds ago
            return f"reconnecting in {max(0.0, self._retry_at - time.monotonic()):.1f} s" + (f": {self._why}" if self._why else "")
        if state == "open" and self.live and self._thread is not None:
            silent = time.monotonic() - self._frame_at
            camera_fps = self.cfg.fps if isinstance(self.cfg, CameraSource) else None
            if silent > max(self.cfg.capture_timeout_s, 2 * (self.period or (1 / camera_fps if camera_fps else 0.0))):
                return f"stalled (no frame for {silent:.1f} s)"
        return state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

    @property
    def delivering(self) -> bool:
        """Whether frames can come now (the status reads `degraded` while they cannot)."""
        return self.state == "open"

    def _release(self) -> None:
        """Let the device go, never while a read is inside it (that crashed the process: a stop during a capture)."""
        with self._read_lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=6)
            if self._thread.is_alive():  # hung inside the device: abandoned with it, not freed under it
                log.error("source %s: its reader did not stop within 6 s; leaving the device to it", self.name)
                self.state = "stopped"
                return
        self._release()
        self.state = "stopped"


STORE_RETRY_S = 5.0  # a file the store could not take is tried again after this long
MOVE_RETRY_S = 5.0  # a file that could not be moved after inspection is tried again after this long
# a file cut short (no PNG IEND, no JPEG EOI, shorter than its BMP header says) is still being written while it changed
# within settle_s + this: read again later (it was refused as damaged and moved to rejected/ while the writer wrote on)
INCOMPLETE_WAIT_S = 5.0
COARSE_TIME_S = 2.0  # file times may be this coarse (FAT: 2 s, many shares: 1 s): a rewrite within it may keep the time
# after: keep looks at every kept file at least this often while the folder's time is unchanged (an in-place rewrite
# keeps it), and every poll at those read within RECENT_S (a writer that rewrote its file in place does so again)
RESCAN_S = 2.0
RECENT_S = 60.0
# names in done/ and rejected/ whose last number `_free_name` remembers: the most recently numbered, so that a camera that
# writes every part to one name is numbered without a search, while a station that meets a new repeated name each part
# (serials reworked, a restarted counter) does not remember every one for weeks
NUMBERED_KEPT = 1024
# where the newest files accepted were moved in done/, for the few whose inspection then fails: found by a listing of
# done/ instead, which weeks of parts made a second or more each, on the sink's thread; queue_size-deep is plenty
MOVED_KEPT = 4096


WATCH_LOCK = ".inspector-serve.lock"  # hidden, so never read as a part
_handing_over = threading.Lock()  # a watcher's stop and its lock's hand-over to the watcher replacing it


def _hold_folder(folder: Path) -> int | None:
    """A descriptor holding the watched folder's lock, or InspectorError: two stations on one folder each took the files
    the other had not moved yet, some parts were inspected by both (38 results for 20 parts), and both said ok. None
    where no lock file can be made (a read-only share watched with after: keep): watched unlocked, as before."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        return hold_lock_file(folder / WATCH_LOCK, f"source.path {folder}: another inspector serve watches this folder, and each "
                              "part would go to whichever station took it first, some to both; stop that one, or give each "
                              "station its own folder")
    except OSError:  # a share without locks (ENOLCK)
        return None


class FolderWatcher:
    """Polls a folder; each new image file, once its size settled and its bytes are whole, is submitted with its bytes,
    under an id from its path, size, time and bytes."""

    def __init__(self, cfg: FolderSource, heir_of: FolderWatcher | None = None) -> None:
        """`heir_of`: the watcher this one replaces, whose lock on the folder it takes (that one's stop may hang)."""
        self.cfg = cfg
        self.folder = Path(cfg.path)
        if not self.folder.is_dir():
            raise InspectorError(f"source.path {self.folder}: no such folder; create it or fix the path")
        self.name = f"folder:{self.folder.name}"
        fd = heir_of._hand_over() if heir_of is not None else None
        if fd is None:
            fd = _hold_folder(self.folder)  # refused here, before the station makes its store, if another one watches it
        self._lock = weakref.finalize(self, os.close, fd) if fd is not None else None
        # a share mounted on the folder itself: unmounted, the folder is still there, empty, and read "watching" for good
        self._mount_point = os.path.ismount(self.folder)
        self.state = "stopped"
        self.reconnects = 0
        self.heartbeat = time.monotonic()
        self.can_capture = False
        self._stop = threading.Event()
        # path -> (size, mtime_ns, inode) when read: a file rewritten under the same name is a new part
        self._seen: dict[Path, tuple[int, int, int]] = {}
        self._retry_at: dict[Path, float] = {}  # files the store could not take yet, or still being written
        self._problem: str | None = None  # a file that cannot be moved or deleted after inspection, shown as the state
        # those files (whether accepted, and the file as read), tried again every MOVE_RETRY_S
        self._unmoved: dict[Path, tuple[bool, _Read | None]] = {}
        self._move_retry_at = 0.0
        # after: keep skips polls in which nothing can have changed (`_nothing_new`): 3000 kept files cost 22 % of a core idle
        self._folder_time = (-1, 0.0)  # the folder's mtime_ns and when (monotonic) it was first seen so
        self._full_at = float("-inf")  # when the last poll that looked at every file began
        self._rescan = False  # a file finished since then (its memory may be gone: it is read again)
        self._recent: dict[Path, float] = {}  # files read, and when: looked at every poll for RECENT_S
        self._said_folders: set[str] = set()  # subfolders named in the log as not read (_say_subfolders)
        # done/ or rejected/ path -> the last number given to a file of that name, the newest NUMBERED_KEPT; ordered, and
        # trimmed by popitem, which the intake's, the watcher's and the sink's threads may each do at once
        self._numbered: OrderedDict[Path, int] = OrderedDict()
        self._moved: OrderedDict[_Read, Path] = OrderedDict()  # file as read -> where in done/ it went, the newest MOVED_KEPT
        self._sizes: dict[Path, tuple[tuple[int, int, int], float]] = {}  # (size, mtime, inode) and since when
        self._thread: threading.Thread | None = None
        # told of each file set aside unread (the daemon answers it on the error topic): only logged before
        self.on_set_aside: Callable[[str, str, str | None], None] | None = None  # (text, the file as a frame's source, serial)

    def start(self, submit: Submit) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(submit,), name=f"source {self.name}", daemon=True)
        self._thread.start()
        self.state = "watching"

    def _ready(self, path: Path) -> int | None:
        """The file's size once it (its size, time and inode: a new file under an old name is a new file) stopped
        changing for settle_s, else None."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        now = time.monotonic()
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        known, since = self._sizes.get(path, (None, now))
        if key != known:
            self._sizes[path] = (key, now)
            return None if self.cfg.settle_s > 0 else st.st_size
        return st.st_size if now - since >= self.cfg.settle_s else None

    def _forget_gone(self, present: set[Path]) -> None:
        """What is remembered of files no longer there: a stale entry made a new file of the same name and size look
        settled at once, and the memory grew with every file ever seen."""
        for memory in (self._sizes, self._retry_at, self._seen, self._recent):  # _finish changes two from the intake's thread:
            for path in [p for p in list(memory) if p not in present]:  # list() copies at once, under the GIL
                memory.pop(path, None)

    def _too_big(self, path: Path) -> bool:
        """A file over source.max_file_bytes is set aside unread (a 2 GB file was read whole before it was refused)."""
        try:
            st = path.stat()
        except OSError:
            return True
        if st.st_size <= self.cfg.max_file_bytes:
            return False
        self._set_aside(path, f"is {st.st_size} bytes, over source.max_file_bytes ({self.cfg.max_file_bytes})")
        return True

    def _set_aside(self, path: Path, why: str) -> None:
        """A file that is no part image: moved to rejected/ unread (with after: keep, left and remembered until it
        changes), said once; an unreadable one was retried, and logged, at every poll."""
        self._sizes.pop(path, None)  # settled: after: keep would otherwise look at every file every poll for it
        try:
            self._seen[path] = _key(path.stat())
        except OSError:
            self._seen[path] = (-1, -1, -1)
        if self.on_set_aside is not None:  # the daemon answers it on the error topic and logs it there: once, not twice
            self.on_set_aside(f"{_shown(path.name)} {why}; set aside in rejected/", f"folder:{_shown(path.name)}",
                              path.stem if SAFE_ID.match(path.stem) else None)
        else:
            log.error("source %s: %s %s; set aside as rejected", self.name, _shown(path.name), why)
        self._finish(path, False)

    def _unchanged(self, path: Path) -> bool:
        """Seen before and not rewritten since (or gone)."""
        if path not in self._seen:
            return False
        try:
            st = path.stat()
        except OSError:
            return True
        return _key(st) == self._seen.get(path)

    def _nothing_new(self) -> bool:
        """after: keep: whether this poll may skip looking at every file, as nothing can have changed. A new, removed or
        renamed file changes the folder's time (which may be COARSE_TIME_S coarse); a rewrite in place does not, so the
        files read within RECENT_S are looked at every poll, and all at least every RESCAN_S."""
        now, mtime = time.monotonic(), self.folder.stat().st_mtime_ns
        if mtime != self._folder_time[0]:
            self._folder_time = (mtime, now)
        if self.cfg.after == "keep" and not (self._rescan or self._sizes or self._retry_at or self._unmoved) \
                and now - self._full_at < RESCAN_S and self._full_at - self._folder_time[1] >= COARSE_TIME_S:
            for path, read_at in list(self._recent.items()):
                if now - read_at > RECENT_S:
                    self._recent.pop(path, None)
                elif not self._unchanged(path):
                    break
            else:
                return True
        self._full_at, self._rescan = now, False
        return False

    def _run(self, submit: Submit) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                if self._mount_point and not os.path.ismount(self.folder):
                    raise OSError(errno.ENOTCONN, "no longer a mount point: what was mounted there at start is gone, an unmounted share")
                if self._nothing_new():
                    self._stop.wait(self.cfg.poll_s)
                    continue
                # hidden files are partial writes by convention (rsync's .name.XXXXXX, a writer's .tmp_1.jpg renamed when done)
                # and links are not followed: one to a file elsewhere had it read and stored as a part
                with os.scandir(self.folder) as listing:  # its entries know a folder without a stat each
                    listed = [e for e in listing if not e.name.startswith(".")]
                named = sorted(Path(e.path) for e in listed if Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
                self._say_subfolders(e for e in listed if Path(e.name).suffix.lower() not in IMAGE_SUFFIXES)
                links = [p for p in named if p.is_symlink()]
                entries = [p for p in named if not p.is_symlink() and p.is_file()]
                # a FIFO, socket, device node or folder named as an image sat in the folder for good, and nothing said why
                others = [p for p in named if not p.is_symlink() and not p.is_file() and p.exists()]
                # a HEIC or camera raw file sat in the folder for good, unsaid (its format is no part image read here)
                unread = sorted(Path(e.path) for e in listed if Path(e.name).suffix.lower() in UNREAD_SUFFIXES
                                and e.is_file(follow_symlinks=False))
            except OSError as exc:
                if not self.state.startswith("unreadable"):  # said once in the log (only /health said it): a share gone, a folder removed
                    log.error("source %s: cannot read %s (%s); no part is taken from it until it can be read again", self.name,
                              self.folder, exc.strerror or exc)
                self.state = f"unreadable ({exc.strerror})"
                self._stop.wait(self.cfg.poll_s * 10)
                continue
            if self.state.startswith("unreadable"):
                log.info("source %s: %s can be read again", self.name, self.folder)
            self.state = self._problem or "watching"
            self._forget_gone(set(entries) | set(links) | set(others) | set(unread))
            for path in links:  # set aside, said: it sat in the folder for good, and nothing said why
                if path not in self._seen and path not in self._unmoved:
                    self._set_aside(path, "is a link, which a watched folder does not follow; copy or move the image itself in")
            for path in others:
                if path not in self._seen and path not in self._unmoved:
                    self._set_aside(path, "is no regular file (a folder, FIFO, socket or device); copy or move the image itself in")
            for path in unread:
                if path not in self._seen and path not in self._unmoved:
                    kind = UNREAD_SUFFIXES[path.suffix.lower()]
                    self._set_aside(path, f"is {unread_file(kind)}; {AVIF_GET + ', which reads it, or ' if kind == 'AVIF' else ''}"
                                          "have the camera write PNG, JPEG or TIFF")
            if self._unmoved and time.monotonic() >= self._move_retry_at:  # e.g. room on the disk again
                self._move_retry_at = time.monotonic() + MOVE_RETRY_S
                for path, (accepted, read) in list(self._unmoved.items()):
                    self._finish(path, accepted, read)
            for path in entries:
                self.heartbeat = time.monotonic()  # per file: the watchdog replaced a healthy watcher in a long backlog
                if self._stop.is_set() or self._retry_at.get(path, 0.0) > time.monotonic() or self._unchanged(path) \
                        or self._ready(path) is None:
                    continue
                if self._too_big(path):
                    continue
                try:
                    data, st = _read_file(path, self.cfg.max_file_bytes)
                except FileNotFoundError:
                    continue  # moved away meanwhile
                except _NotRegular:
                    continue  # swapped for a link, FIFO or device since it was listed: the next listing sets it aside
                except _TooBig:
                    self._too_big(path)  # grew past the limit since it was measured
                    continue
                except OSError as exc:
                    self._set_aside(path, f"cannot be read ({exc.strerror})")
                    continue
                # measured on this clock, not against the file's time: a share's clock may be off by minutes
                changed_at = self._sizes.get(path, (None, 0.0))[1]
                if _cut_short(data) and time.monotonic() - changed_at < self.cfg.settle_s + INCOMPLETE_WAIT_S:
                    # still being written, by a writer slower than settle_s: read again in a while, not every poll (it may be
                    # large, and on a share)
                    self._retry_at[path] = time.monotonic() + INCOMPLETE_WAIT_S / 5
                    continue
                digest = hashlib.sha256(data).hexdigest()
                # whole seconds (a coarse file system, or times copied with the file) or a write just before the read: a
                # rewrite of the same size may keep the time, so _finish compares the bytes as well
                coarse = st.st_mtime_ns % 1_000_000_000 == 0 or time.time_ns() - st.st_mtime_ns < COARSE_TIME_S * 1e9
                read = _Read(_key(st), digest, coarse, st.st_ctime_ns)
                self._seen[path], self._recent[path] = read.key, time.monotonic()
                self._sizes.pop(path, None)
                self._retry_at.pop(path, None)
                # same file, same id: after a restart a file already inspected is recognised, not inspected twice; its bytes
                # too: a part written under the name, size and time of an earlier one (a coarse share, `cp -p`) was taken
                # for a repeat and never inspected
                named = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
                # a name not UTF-8 (its bytes kept by surrogateescape) ended the watcher here: .encode() refused it
                ident = hashlib.sha256(f"{named}|{digest}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
                serial = path.stem if SAFE_ID.match(path.stem) else None
                if serial is None:
                    log.warning("source %s: %s is inspected without a serial (a serial is 1-64 ASCII letters, digits and . _ - :)",
                                self.name, _shown(path.name))
                frame = Frame(source=f"folder:{_shown(path.name)}", encoded=data, serial=serial, inspection_id=f"f-{ident}", wait=True,
                              known_as=f"f-{hashlib.sha256(named.encode('utf-8', 'surrogateescape')).hexdigest()[:24]}",
                              done=lambda ok, p=path, r=read: self._finish(p, ok, r), refused=lambda p=path, r=read: self._refused(p, r))
                while not self._stop.is_set() and not submit(frame):
                    self.heartbeat = time.monotonic()  # waiting for room is not a stall
            self._stop.wait(self.cfg.poll_s)

    def _finish(self, path: Path, accepted: bool | None, read: _Read | None = None) -> None:
        """Moves or deletes the file as `after` says, only if it is still the one `read` (a file set aside unread: None):
        one written under its name since was moved or deleted uninspected; it is left to be read as a part of its own."""
        self._rescan = True  # its memory may go (see below): after: keep looks at every file at the next poll
        if accepted is None:  # the store could not take it: the file stays, and is tried again
            self._seen.pop(path, None)
            self._retry_at[path] = time.monotonic() + STORE_RETRY_S
            return
        if self.cfg.after == "keep":
            return  # remembered in _seen until it changes
        verb = "delete" if self.cfg.after == "delete" and accepted else "move"
        try:
            if not os.path.lexists(path):  # taken away by hand (a bad done/ would fail the move before it said so)
                raise FileNotFoundError(path)
            if read is not None and not _same_file(path, read):
                log.info("source %s: %s was written again before the part read from it could be %sd; the new file is read "
                         "as a part of its own", self.name, _shown(path.name), verb)
            elif verb == "delete":
                path.unlink(missing_ok=True)
            else:
                target = self._free_name(self._subfolder("done" if accepted else "rejected"), path.name)
                path.replace(target)
                if accepted and read is not None:
                    self._moved[read] = target
                    while len(self._moved) > MOVED_KEPT:
                        self._moved.popitem(last=False)
        except FileNotFoundError:
            log.info("source %s: %s was taken away before it could be %sd", self.name, _shown(path.name), verb)
        except OSError as exc:
            # remembered, so not read again every poll, and tried again later; the state (and /health) says why it is still there
            fix = "free space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder's permissions"
            problem = f"cannot {verb} {_shown(path.name)} ({exc.strerror}); {fix}"
            if path not in self._unmoved:
                log.error("source %s: %s", self.name, problem)
            self._problem, self._unmoved[path] = problem, (accepted, read)
            return
        self._settled(path, read)

    def _free_name(self, folder: Path, name: str) -> Path:
        """`folder/name`, or `folder/<stem>-2<suffix>` and so on where a file of that name is there: a camera that
        writes each part to one file name had each replace the last in done/. Numbering goes on from the last given,
        so the ten-thousandth such file is not found by trying nine thousand names."""
        stem, suffix = Path(name).stem, Path(name).suffix
        n = self._numbered.pop(folder / name, 1)  # put back below as the newest: one forgotten is found by trying names
        target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
        while os.path.lexists(target):
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        if n > 1:
            self._numbered[folder / name] = n
            while len(self._numbered) > NUMBERED_KEPT:
                self._numbered.popitem(last=False)
        return target

    def _say_subfolders(self, others) -> None:
        """A folder inside the watched one (a camera's folder per lot or per day) is not read: its parts were never
        inspected, and nothing said so. Said once per folder, in the log; done/ and rejected/ are the watcher's own. Those
        no longer there are forgotten (a camera's folder a lot, moved away by the line, made the memory grow for good)."""
        present: set[str] = set()
        for entry in others:
            present.add(entry.name)
            if entry.name in ("done", "rejected") or entry.name in self._said_folders:
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            self._said_folders.add(entry.name)
            log.warning("source %s: %s is a folder, and a watched folder reads only the image files in itself, not its "
                        "subfolders: have the camera write its parts into %s itself", self.name, _shown(entry.name), self.folder)
        self._said_folders &= present

    def _subfolder(self, name: str) -> Path:
        """done/ or rejected/, made if need be; a link put there moved parts, overwriting, anywhere it led."""
        target = self.folder / name
        target.mkdir(exist_ok=True)
        if target.is_symlink() or not target.is_dir():
            raise OSError(errno.ENOTDIR, f"{target.name} is not a real folder")
        return target

    def _refused(self, path: Path, read: _Read) -> None:
        """Accepted, then not inspected (e.g. the frame lacks the model's region): moved on from done/ to rejected/,
        where files no result was made of belong (the store keeps its image in refused/ as well)."""
        if self._unmoved.get(path, (None, None))[1] is read:  # not moved yet: when it is, to rejected/
            self._unmoved[path] = (False, read)
            return
        if self.cfg.after != "move":
            return  # deleted (the store's copy remains) or kept in place
        try:  # the file moved there: of its name, or numbered beside an earlier or later file of that name (`_free_name`)
            moved = self._moved.pop(read, None)
            done = moved if moved is not None and os.path.lexists(moved) and _same_file(moved, read) else \
                next((p for p in _named_like(self.folder / "done", path.name) if _same_file(p, read)), None)
            if done is None:
                return  # taken away from done/ by hand
            done.replace(self._free_name(self._subfolder("rejected"), path.name))
        except FileNotFoundError:
            return  # taken away from done/ by hand
        except OSError as exc:
            log.error("source %s: cannot move done/%s to rejected/ (%s)", self.name, _shown(path.name), exc.strerror)

    def _settled(self, path: Path, read: _Read | None = None) -> None:
        """The file `read` at `path` is moved, deleted or gone: healthy again once every file is where it belongs. What
        is remembered of a newer file read under its name since stays (it would be read twice)."""
        if self._unmoved.get(path, (None, read))[1] is read:
            self._unmoved.pop(path, None)
        if not self._unmoved:
            self._problem = None
        if read is None or self._seen.get(path) == read.key:
            self._seen.pop(path, None)

    @property
    def delivering(self) -> bool:
        """Whether files are taken now: a file that cannot be moved after inspection is said in the state, but others still come."""
        return self.state != "stopped" and not self.state.startswith("unreadable")

    def capture(self, timeout: float | None = None) -> Frame:
        raise InspectorError("trigger: this station's source is a watched folder and cannot capture; drop a file in it or send an image")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.state = "stopped"
        with _handing_over:
            if self._lock is not None:
                self._lock()  # closes the descriptor, once

    def _hand_over(self) -> int | None:
        """The descriptor holding the folder's lock, now the caller's; None if this watcher holds none any more."""
        with _handing_over:
            taken = self._lock.detach() if self._lock is not None else None
        return taken[2][0] if taken else None


def open_source(cfg: CameraSource | StreamSource | VideoSource | FolderSource | MqttSource,
                replacing: object = None) -> OpenCVSource | FolderWatcher | None:
    """The source for a config section; None when images only come over MQTT. `replacing`: the source this one replaces."""
    if isinstance(cfg, MqttSource):
        return None
    if isinstance(cfg, FolderSource):
        return FolderWatcher(cfg, replacing if isinstance(replacing, FolderWatcher) else None)
    return OpenCVSource(cfg)


@dataclass(frozen=True)
class _Read:
    """A watched file as it was read: only that file is moved or deleted after its inspection."""

    key: tuple[int, int, int]  # size, mtime_ns, inode
    digest: str  # sha256 of its bytes
    coarse: bool  # its time could hide a rewrite of the same size: compare the bytes too
    ctime: int  # a rewrite (or `cp -p`) changes it, whatever it keeps: unchanged, the bytes need no second read


class _NotRegular(OSError):
    """The name no longer holds a regular file."""


class _TooBig(OSError):
    """The file holds more than it may."""


def _read_file(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file at `path` (at most `limit`) and its stat after the read. Not through a link, and
    not blocking: a file swapped after the listing for a FIFO hung the watcher in its open for good, one swapped for a
    link to /dev/zero was read until memory ran out, and one grown past source.max_file_bytes was read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link now
            raise _NotRegular(exc.errno, exc.strerror) from exc
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(errno.EINVAL, "no regular file")
        data = f.read(limit + 1)
        if len(data) > limit:
            raise _TooBig(errno.EFBIG, "over source.max_file_bytes")
        return data, os.fstat(fd)  # after the read: any later change shows in _finish's check


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _same_file(path: Path, read: _Read) -> bool:
    """Whether `path` is still the file `read` was taken of, or it moved (a move keeps size, time and inode; it may
    change the ctime, so a moved file with a coarse time has its bytes compared)."""
    st = path.lstat()
    if _key(st) != read.key:
        return False
    return st.st_ctime_ns == read.ctime or not read.coarse or hashlib.sha256(path.read_bytes()).hexdigest() == read.digest


def _cut_short(data: bytes) -> bool:
    """Whether the bytes end before their format says the image does: PNG's IEND chunk, JPEG's EOI marker (either with
    padding after it), the file size in a BMP or WebP header; or there are none yet. Other formats do not say."""
    if not data:
        return True
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")
    if data.startswith(b"\xff\xd8"):
        return not data.rstrip(b"\x00\xff").endswith(b"\xff\xd9")
    if data.startswith(b"BM") and len(data) >= 6:
        return len(data) < int.from_bytes(data[2:6], "little")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    return False


def _shown(name: str) -> str:
    """A file name as the log, the records and /health show it: bytes that are not UTF-8 (kept by Python as surrogates,
    which the store, the broker and the watcher's own id refused) as \\xff, control characters (a newline forging a log
    line) escaped as repr escapes them. A printable name is shown as it is."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _named_like(folder: Path, name: str) -> list[Path]:
    """The files `FolderWatcher._free_name` may have given `name` in `folder`, newest number first."""
    stem, suffix = Path(name).stem, Path(name).suffix
    number = {p: p.name[len(stem) + 1 : len(p.name) - len(suffix)] for p in folder.glob(f"{glob.escape(stem)}-*{glob.escape(suffix)}")}
    return sorted((p for p, n in number.items() if n.isdigit()), key=lambda p: -int(number[p])) + [folder / name]
