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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspector.config import SAFE_ID, CameraSource, FolderSource, MqttSource, Reconnect, StreamSource, VideoSource
from model.errors import InspectorError
from model.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One image to inspect: pixels (RGB) or the encoded bytes they come from, plus where it came from."""

    source: str
    rgb: np.ndarray | None = None
    encoded: bytes | None = None
    serial: str | None = None
    inspection_id: str | None = None
    timestamp: float = field(default_factory=time.time)
    wait: bool = False  # True: durable input (file, fast video replay) that waits for room instead of being skipped
    # called once the daemon accepted (True) or rejected (False) it, or could not take it now (None: the store failed)
    done: Callable[[bool | None], None] | None = None
    refused: Callable[[], None] | None = None  # called if, accepted, it gets no result (its inspection failed)


Submit = Callable[[Frame], bool]


def _safe_url(url: str) -> str:
    """A URL without its credentials, for logs and records."""
    return re.sub(r"//[^/@]*@", "//", url)


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
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray, float] | None = None  # (sequence number, BGR, wall time)
        self._seq = 0
        self._cap: cv2.VideoCapture | None = None
        self._submit: Submit | None = None
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self._position = 0
        if isinstance(cfg, CameraSource):
            self.name, self.live, self.period = f"camera:{cfg.device}", True, 0.0
        elif isinstance(cfg, StreamSource):
            self.name, self.live, self.period = f"stream:{_safe_url(cfg.url)}", True, 0.0
        else:
            self.name, self.live = f"video:{Path(cfg.path).name}", cfg.fps != "max"
            self.period = 0.0  # set on open for "native"
            if not Path(cfg.path).is_file():
                raise InspectorError(f"source.path {cfg.path}: no such video file")
            probe = cv2.VideoCapture(cfg.path)  # said before serve makes its store and loads its model, as --here says it
            opened = probe.isOpened()
            probe.release()
            if not opened:
                raise InspectorError(f"source {self.name}: OpenCV cannot open {cfg.path}; is it a video file?")

    # -- device --------------------------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        cfg = self.cfg
        if isinstance(cfg, CameraSource):
            cap = cv2.VideoCapture(cfg.device)
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height), (cv2.CAP_PROP_FPS, cfg.fps)):
                if value:
                    cap.set(prop, value)
        elif isinstance(cfg, StreamSource):
            # bounded open/read times: a stalled stream must end in a reconnect, not a hung thread
            cap = cv2.VideoCapture(cfg.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
        else:
            cap = cv2.VideoCapture(cfg.path)
            if cap.isOpened() and cfg.fps != "max":
                fps = cap.get(cv2.CAP_PROP_FPS) if cfg.fps == "native" else float(cfg.fps)
                self.period = 1.0 / fps if fps and fps > 0 else 1.0 / 25
        if not cap.isOpened():
            cap.release()
            return None
        return cap

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
        return Frame(source=self.name, rgb=rgb, timestamp=ts, wait=not self.live)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, submit: Submit) -> None:
        self._submit = submit
        self._stop.clear()
        if isinstance(self.cfg, VideoSource):  # a file that cannot be opened now never will be: no retrying
            self._cap = self._open()
            if self._cap is None:
                raise InspectorError(f"source {self.name}: OpenCV cannot open {self.cfg.path}; is it a video file?")
            self.state = "open"
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
                    delay = backoff.next()
                    self.state = f"reconnecting in {delay:.1f} s"
                    log.warning("source %s: cannot open; retrying in %.1f s", self.name, delay)
                    self._sleep(delay)
                    continue
                self.state = "open"
            bgr = self._read()
            if bgr is None:
                if isinstance(self.cfg, VideoSource) and not self.cfg.loop:
                    self._finished()
                    return
                self._cap.release()
                self._cap = None
                self.reconnects += 1
                delay = backoff.next()
                self.state = f"reconnecting in {delay:.1f} s"
                log.warning("source %s: no frame (device dropped?); reconnecting in %.1f s", self.name, delay)
                self._sleep(delay)
                continue
            backoff.reset()
            now = time.time()
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
        if not self.live:
            with self._read_lock:
                bgr = self._read()
            if bgr is None:
                self._finished()
                raise InspectorError(end)
            return self._frame(bgr, time.time())
        with self._cond:
            start = self._seq
            done = lambda: self._seq > start or self._stop.is_set() or self.state == "finished"  # noqa: E731
            if not self._cond.wait_for(done, timeout) or self._seq == start:
                if self.state == "finished":
                    raise InspectorError(end)
                raise InspectorError(f"source {self.name}: no frame within {timeout:.1f} s ({self.state}); check the camera or stream")
            _, bgr, ts = self._latest
        return self._frame(bgr, ts)

    @property
    def can_capture(self) -> bool:
        return True

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=6)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "stopped"


STORE_RETRY_S = 5.0  # a file the store could not take is tried again after this long
MOVE_RETRY_S = 5.0  # a file that could not be moved after inspection is tried again after this long


class FolderWatcher:
    """Polls a folder; each new image file, once its size settled, is submitted with its bytes."""

    def __init__(self, cfg: FolderSource) -> None:
        self.cfg = cfg
        self.folder = Path(cfg.path)
        if not self.folder.is_dir():
            raise InspectorError(f"source.path {self.folder}: no such folder; create it or fix the path")
        self.name = f"folder:{self.folder.name}"
        self.state = "stopped"
        self.reconnects = 0
        self.heartbeat = time.monotonic()
        self.can_capture = False
        self._stop = threading.Event()
        # path -> (size, mtime_ns) when read: a file rewritten under the same name is a new part
        self._seen: dict[Path, tuple[int, int]] = {}
        self._retry_at: dict[Path, float] = {}  # files the store could not take yet
        self._problem: str | None = None  # a file that cannot be moved or deleted after inspection, shown as the state
        self._unmoved: dict[Path, bool] = {}  # those files (and whether accepted), tried again every MOVE_RETRY_S
        self._move_retry_at = 0.0
        self._numbered: dict[Path, int] = {}  # done/ or rejected/ path -> the last number given to a file of that name
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
        for memory in (self._sizes, self._retry_at, self._seen):  # _finish changes two of them from the intake's thread:
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
        try:
            st = path.stat()
            self._seen[path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            self._seen[path] = (-1, -1)
        if self.on_set_aside is not None:  # the daemon answers it on the error topic and logs it there: once, not twice
            self.on_set_aside(f"{path.name} {why}; set aside in rejected/", f"folder:{path.name}", path.stem if SAFE_ID.match(path.stem) else None)
        else:
            log.error("source %s: %s %s; set aside as rejected", self.name, path.name, why)
        self._finish(path, False)

    def _unchanged(self, path: Path) -> bool:
        """Seen before and not rewritten since (or gone)."""
        if path not in self._seen:
            return False
        try:
            st = path.stat()
        except OSError:
            return True
        return (st.st_size, st.st_mtime_ns) == self._seen[path]

    def _run(self, submit: Submit) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                # hidden files are partial writes by convention (rsync's .name.XXXXXX, a writer's .tmp_1.jpg renamed when done)
                # and links are not followed: one to a file elsewhere had it read and stored as a part
                named = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
                links = [p for p in named if p.is_symlink()]
                entries = [p for p in named if not p.is_symlink() and p.is_file()]
            except OSError as exc:
                self.state = f"unreadable ({exc.strerror})"
                self._stop.wait(self.cfg.poll_s * 10)
                continue
            self.state = self._problem or "watching"
            self._forget_gone(set(entries) | set(links))
            for path in links:  # set aside, said: it sat in the folder for good, and nothing said why
                if path not in self._seen and path not in self._unmoved:
                    self._set_aside(path, "is a link, which a watched folder does not follow; copy or move the image itself in")
            if self._unmoved and time.monotonic() >= self._move_retry_at:  # e.g. room on the disk again
                self._move_retry_at = time.monotonic() + MOVE_RETRY_S
                for path, accepted in list(self._unmoved.items()):
                    self._finish(path, accepted)
            for path in entries:
                if self._stop.is_set() or self._retry_at.get(path, 0.0) > time.monotonic() or self._unchanged(path) \
                        or self._ready(path) is None:
                    continue
                if self._too_big(path):
                    continue
                try:
                    data = path.read_bytes()
                    st = path.stat()
                except FileNotFoundError:
                    continue  # moved away meanwhile
                except OSError as exc:
                    self._set_aside(path, f"cannot be read ({exc.strerror})")
                    continue
                self._seen[path] = (st.st_size, st.st_mtime_ns)
                self._sizes.pop(path, None)
                self._retry_at.pop(path, None)
                # same file, same id: after a restart a file already inspected is recognised, not inspected twice
                ident = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
                serial = path.stem if SAFE_ID.match(path.stem) else None
                if serial is None:
                    log.warning("source %s: %s is inspected without a serial (a serial is 1-64 letters, digits and . _ - :)",
                                self.name, path.name)
                frame = Frame(source=f"folder:{path.name}", encoded=data, serial=serial, inspection_id=f"f-{ident}", wait=True,
                              done=lambda ok, p=path: self._finish(p, ok), refused=lambda p=path, s=st: self._refused(p, s))
                while not self._stop.is_set() and not submit(frame):
                    self.heartbeat = time.monotonic()  # waiting for room is not a stall
            self._stop.wait(self.cfg.poll_s)

    def _finish(self, path: Path, accepted: bool | None) -> None:
        if accepted is None:  # the store could not take it: the file stays, and is tried again
            self._seen.pop(path, None)
            self._retry_at[path] = time.monotonic() + STORE_RETRY_S
            return
        verb = "delete" if self.cfg.after == "delete" and accepted else "move"
        try:
            if verb == "delete":
                path.unlink(missing_ok=True)
            elif self.cfg.after == "move" or self.cfg.after == "delete":
                if not os.path.lexists(path):  # taken away by hand (a bad done/ would fail the move before it said so)
                    raise FileNotFoundError(path)
                path.replace(self._free_name(self._subfolder("done" if accepted else "rejected"), path.name))
            else:
                return  # keep: remembered in _seen until it changes
        except FileNotFoundError:
            log.info("source %s: %s was taken away before it could be moved", self.name, path.name)
        except OSError as exc:
            # remembered, so not read again every poll, and tried again later; the state (and /health) says why it is still there
            fix = "free space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder's permissions"
            problem = f"cannot {verb} {path.name} ({exc.strerror}); {fix}"
            if path not in self._unmoved:
                log.error("source %s: %s", self.name, problem)
            self._problem, self._unmoved[path] = problem, accepted
            return
        self._settled(path)

    def _free_name(self, folder: Path, name: str) -> Path:
        """`folder/name`, or `folder/<stem>-2<suffix>` and so on where a file of that name is there: a camera that
        writes each part to one file name had each replace the last in done/. Numbering goes on from the last given,
        so the ten-thousandth such file is not found by trying nine thousand names."""
        stem, suffix = Path(name).stem, Path(name).suffix
        n = self._numbered.get(folder / name, 1)
        target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
        while os.path.lexists(target):
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        if n > 1:
            self._numbered[folder / name] = n
        return target

    def _subfolder(self, name: str) -> Path:
        """done/ or rejected/, made if need be; a link put there moved parts, overwriting, anywhere it led."""
        target = self.folder / name
        target.mkdir(exist_ok=True)
        if target.is_symlink() or not target.is_dir():
            raise OSError(errno.ENOTDIR, f"{target.name} is not a real folder")
        return target

    def _refused(self, path: Path, st: os.stat_result) -> None:
        """Accepted, then not inspected (e.g. the frame lacks the model's region): moved on from done/ to rejected/,
        where files no result was made of belong (the store keeps its image in refused/ as well)."""
        if path in self._unmoved:  # not moved yet: when it is, to rejected/
            self._unmoved[path] = False
            return
        if self.cfg.after != "move":
            return  # deleted (the store's copy remains) or kept in place
        try:  # the file moved there: of its name, or numbered beside an earlier file of that name (`_free_name`)
            done = next((p for p in _named_like(self.folder / "done", path.name) if _same_file(p, st)), None)
            if done is None:
                return  # taken away from done/ by hand
            done.replace(self._free_name(self._subfolder("rejected"), path.name))
        except FileNotFoundError:
            return  # taken away from done/ by hand
        except OSError as exc:
            log.error("source %s: cannot move done/%s to rejected/ (%s)", self.name, path.name, exc.strerror)

    def _settled(self, path: Path) -> None:
        """`path` is moved, deleted or gone: healthy again once every file is where it belongs."""
        self._unmoved.pop(path, None)
        if not self._unmoved:
            self._problem = None
        self._seen.pop(path, None)

    def capture(self, timeout: float | None = None) -> Frame:
        raise InspectorError("trigger: this station's source is a watched folder and cannot capture; drop a file in it or send an image")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.state = "stopped"


def open_source(cfg: CameraSource | StreamSource | VideoSource | FolderSource | MqttSource) -> OpenCVSource | FolderWatcher | None:
    """The source for a config section; None when images only come over MQTT."""
    if isinstance(cfg, MqttSource):
        return None
    if isinstance(cfg, FolderSource):
        return FolderWatcher(cfg)
    return OpenCVSource(cfg)


def _same_file(path: Path, st: os.stat_result) -> bool:
    """Whether `path` is still the file `st` was taken of, moved (a move keeps its size and time)."""
    now = path.stat()
    return (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def _named_like(folder: Path, name: str) -> list[Path]:
    """The files `FolderWatcher._free_name` may have given `name` in `folder`, newest number first."""
    stem, suffix = Path(name).stem, Path(name).suffix
    number = {p: p.name[len(stem) + 1 : len(p.name) - len(suffix)] for p in folder.glob(f"{glob.escape(stem)}-*{glob.escape(suffix)}")}
    return sorted((p for p, n in number.items() if n.isdigit()), key=lambda p: -int(number[p])) + [folder / name]
