"""The intake: every input (MQTT trigger, MQTT image, source frame) becomes an accepted Job or a rejection.

Accepting means: the image decoded, its id is new, the inference queue has room, and the image is in the
store's journal; only then is the MQTT message acknowledged. A rejection is one line on the error topic.
Queue-full policy: reject (the sender is told and may retry), never drop silently and never block paho.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import http.client
import json
import logging
import os
import queue
import re
import socket
import sqlite3
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from inspector.cli import one_line
from inspector.config import SAFE_ID, ReportFormat, ReportLang, StationConfig, safe_url, zone_of
from inspector.health import Metrics, StoreTrouble
from inspector.mqtt import INBOX_SIZE, Inbox, Message, MqttClient, Reply, Topics
from inspector.outbox import Repeats
from inspector.result import error_payload, iso_utc, parse_utc, utc_now
from inspector.sources import Frame
from inspector.store import Store, journaled_repeats
from model.errors import InspectorError
from model.images import FORMATS, decode_image

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3  # a journaled job that took the daemon down this often is given up, not retried forever
FRAME_SLOTS = 4  # source frames waiting in the inbox at once (MQTT inputs have the rest)
AHEAD_S = 300.0  # a given capture time this far ahead of the station's clock is refused: the sender's clock is wrong
CLEARED_311 = " (or, if it cleared a retained message, ignore this: MQTT 3.1.1 cannot tell the two apart)"
TITLE_MAX = 200  # characters of a shift report's title: WeasyPrint took 22 s to lay out 2,000 of them, minutes for 20,000


_URLSAFE = str.maketrans("-_", "+/")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")  # a search, not a loop in Python: a 50 MB payload of a wrong length took seconds
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\r\n"


def _safe(value: str | None) -> str | None:
    if value is not None and not SAFE_ID.match(value):
        raise ValueError(f"{value[:80]!r} is not allowed; use 1-64 ASCII letters (A-Z, a-z), digits and . _ - : (no slashes or spaces)")
    return value


IMAGE_PROPERTIES = ("serial", "inspection_id", "captured_at")  # the MQTT 5 user properties an image message is read by


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once: json.loads let the last of two win, so {"serial": "A7", ...,
    "serial": "B2"} was inspected as B2 with no word, and {"command": "reload", "command": "review"} ran a review."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _echoed(value: Any) -> str | None:
    """A value from the outside world that may be echoed in an error reply: a safe id, else None."""
    return value if isinstance(value, str) and SAFE_ID.match(value) else None


class Deadline:
    """The whole of a URL fetch's time: at `seconds` its connections are shut, wherever the fetch waits (each socket
    read has its own timeout, so a server that sent its headers a byte at a time held the intake as long as it liked)."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._conns: list[http.client.HTTPConnection] = []
        self.passed = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for conn in self._conns:
                self._shut(conn)

    @staticmethod
    def _shut(conn: http.client.HTTPConnection) -> None:
        if conn.sock is not None:  # the socket's own shutdown: an SSLSocket's would also drop its TLS state under a reader
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)

    def watch(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.passed:  # connected after the deadline
                self._shut(conn)

    def connection(self, base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        deadline = self

        class Watched(base):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                deadline.watch(self)

        return Watched


class _Watched:
    """An http(s) handler whose connections `deadline` can shut."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
        return super().do_open(self._deadline.connection(http_class), req, **kw)  # type: ignore[misc]


class _Handler(_Watched, urllib.request.HTTPHandler):
    pass


class _SecureHandler(_Watched, urllib.request.HTTPSHandler):
    pass


def host_allowed(url: str, hosts: list[str]) -> bool:
    """Whether `url`'s host (or host:port) is among `hosts` (mqtt.url_hosts, lower case); any host where none are listed."""
    if not hosts:
        return True
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host in hosts or f"{host}:{port}" in hosts


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects only to the hosts a trigger may name: an allowed image server's redirect led anywhere the station
    reaches (a controller's web page, a cloud metadata address)."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__()
        self._hosts = hosts

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not host_allowed(newurl, self._hosts):
            raise InspectorError(f"trigger: url redirected to {safe_url(newurl)[:120]!r}, a host not in mqtt.url_hosts; "
                                 "serve the image from a listed host, or list this one")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(deadline: Deadline, hosts: list[str]) -> urllib.request.OpenerDirector:
    """http and https only, redirects too: urlopen's own opener followed a redirect to ftp:// (any FTP server the
    station reaches), and has file: and data: handlers besides."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _Handler(deadline), _SecureHandler(deadline),
                    urllib.request.HTTPDefaultErrorHandler(), _Redirects(hosts), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class TriggerCommand(BaseModel):
    """`<prefix>/trigger`: capture now (no image given), or inspect the image given by path, url or base64."""

    model_config = ConfigDict(extra="forbid", strict=True)
    inspection_id: str | None = Field(None, description="Your id for this inspection; repeats are answered from the store.")
    serial: str | None = Field(None, description="Part serial number.")
    capture: bool | None = Field(None, description="Capture from the station's camera (the default when no image is given).")
    path: str | None = Field(None, description="Image file under one of mqtt.allowed_dirs.")
    url: str | None = Field(None, description="http(s) URL of the image (when mqtt.allow_urls).")
    base64: str | None = Field(None, description="The encoded image (JPEG/PNG) in base64.")
    captured_at: str | None = Field(None, description="When the given image was taken (ISO 8601; without an offset on "
                                    "reports.timezone's clock): the part's time, else when the trigger reached the station.")

    @field_validator("inspection_id", "serial")
    @classmethod
    def _ids(cls, v: str | None) -> str | None:
        return _safe(v)

    @field_validator("captured_at")
    @classmethod
    def _captured(cls, v: str | None, info: ValidationInfo) -> str | None:
        # the part's time: parts that waited at the broker through an outage took the time the station read them
        return None if v is None else stored_time(v, (info.context or {}).get("zone"))

    @model_validator(mode="after")
    def _one_image(self) -> TriggerCommand:
        given = [k for k in ("path", "url", "base64") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of path, url or base64, not {' and '.join(given)}")
        if given and self.capture:
            raise ValueError(f"capture: true and {given[0]} contradict each other; give one")
        if not given and self.capture is False:
            raise ValueError("capture: false and no image (path, url or base64): nothing to inspect; give an image or drop capture")
        if not given and self.captured_at is not None:
            raise ValueError("captured_at dates an image the trigger gives (path, url or base64); a capture is timed by the station")
        return self


def stored_time(value: str, zone: Any) -> str:
    """A time a command or input gives, in the store's UTC form, since the store compares times as text: "04:00+01:00"
    is 03:00Z. A time without an offset is on `zone`'s clock (the station's `reports.timezone`)."""
    from reports.zones import LocalTimeError

    try:
        return parse_utc(value, zone)
    except LocalTimeError:  # a wall-clock time the clocks skip or repeat: its own message says which
        raise
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not a time; use ISO 8601, e.g. 2026-11-26T06:00Z") from None


def epoch(stored: str) -> float:
    """A time in the store's form as epoch seconds."""
    return datetime.fromisoformat(stored.replace("Z", "+00:00")).timestamp()


COMMANDS = ("shift_report", "reload", "review")


class ReviewCommand(BaseModel):
    """`<prefix>/command`: {"command": "review", "inspection_id": ... or "serial": ..., "truth": "good" | "defect", "by": ...,
    "type", "note"}: QA's verdict on a stored result (a serial's: its last inspection), as `inspector review` records it
    (who reviewed it is required here)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    command: Literal["review"]
    inspection_id: str | None = Field(None, min_length=1, max_length=128)
    serial: str | None = Field(None, min_length=1, max_length=128)
    truth: Literal["good", "defect"]
    by: str
    type: str | None = None
    note: str | None = None

    @field_validator("by")
    @classmethod
    def _named(cls, v: str) -> str:
        if not any(c.isprintable() and not c.isspace() for c in v):  # as review.one_line reads it
            raise ValueError("is empty; name who reviewed the part")
        return v

    @model_validator(mode="after")
    def _one_part(self) -> ReviewCommand:
        if (self.inspection_id is None) == (self.serial is None):
            raise ValueError("give the part's inspection_id or its serial (one of them)")
        return self


class ReloadCommand(BaseModel):
    """`<prefix>/command`: {"command": "reload"}: load the model again, as SIGHUP does."""

    model_config = ConfigDict(extra="forbid", strict=True)
    command: Literal["reload"]


class ShiftReportCommand(BaseModel):
    """`<prefix>/command`: {"command": "shift_report", "start": ISO time, "end": ISO time, ...}."""

    model_config = ConfigDict(extra="forbid", strict=True)
    command: str
    start: str | None = None
    end: str | None = None
    shift: str | None = Field(None, max_length=TITLE_MAX)
    formats: list[ReportFormat] | None = None  # as the config's: a typo is this command's error, not the station's
    lang: ReportLang | None = None

    @field_validator("command")
    @classmethod
    def _known(cls, v: str) -> str:
        if v != "shift_report":
            raise ValueError(f"unknown command {v[:40]!r}; known: {', '.join(COMMANDS)}")
        return v

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else stored_time(v, (info.context or {}).get("zone"))

    @model_validator(mode="after")
    def _ordered(self) -> ShiftReportCommand:
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start {self.start} is not before end {self.end}")
        return self


Command = ShiftReportCommand | ReloadCommand | ReviewCommand


def pydantic_line(exc: ValidationError, what: str) -> str:
    """The first validation error as one line naming the field."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{what}: unknown field {where!r}"
    msg = err["msg"].removeprefix("Value error, ")
    named = where and not (where == what and err["type"] == "value_error")  # not "command: command: unknown command ..."
    return f"{what}: {where + ': ' if named else ''}{msg}"


@dataclass
class Job:
    """Accepted work on its way to the engine."""

    inspection_id: str
    rgb: np.ndarray
    serial: str | None
    source: str
    received: float  # time.monotonic() when the input arrived
    accepted: float = field(default_factory=time.monotonic)
    started: float = 0.0  # when its inference batch began
    reply: Reply | None = None  # where its answer goes besides the contract topic (MQTT 5)
    recovered: bool = False  # from the journal: its batch counts a recovery attempt (Inference)
    attempts: int = 0  # recovery attempts before this run's: a job that was in a batch when the daemon died runs alone
    timestamp: str | None = None  # the record's: when the frame was captured or the image arrived (store form, UTC)
    live: bool = False  # a frame of a live source in continuous mode: one of a stream, not a part someone sent
    refused: Callable[[], None] | None = None  # its source's, called when it gets no result (a watched file: to rejected/)
    held: int = 0  # its frame's bytes counted by the JobQueue it was put in, until released


class JobQueue(queue.Queue):
    """Accepted jobs on their way to the engine, bounded in count (`maxsize`: model.queue_size) and in the bytes of their
    decoded frames (`max_bytes`: model.max_queue_bytes), counted from the put until `release` (the sink is done with the
    job, or a stop takes it back unstarted): a job's frame is held in its batch and on its way to the store too. Bounded
    in count only, 32 queued line-scan frames of 16k x 3k (144 MB each) could hold 4.6 GB, more with the batch in the engine and
    the results waiting to be stored. Past either bound `full()` is true, and each input waits or is refused as for a
    queue full of parts. An input is taken while the bytes held are under the budget, its own size known only once it is
    decoded: they pass it by one frame at most (model.max_image_pixels bounds it), and a frame bigger than it still goes."""

    def __init__(self, maxsize: int = 0, max_bytes: int = 1 << 30) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        # the jobs held, weakly (by id: a Job is not hashable): one dropped unreleased (a worker that died with its batch)
        # leaves by itself, where a counter would have kept its bytes and refused every part, as a full queue, until a restart
        self._holding: weakref.WeakValueDictionary[int, Job] = weakref.WeakValueDictionary()

    @property
    def held_bytes(self) -> int:
        with self.mutex:
            return self._held()

    def _held(self) -> int:  # under `mutex`
        return sum(job.held for job in list(self._holding.values()))

    def full(self) -> bool:
        with self.mutex:
            return 0 < self.maxsize <= self._qsize() or self._held() >= self.max_bytes

    def _put(self, item: Job) -> None:  # under `mutex`
        super()._put(item)
        item.held = item.rgb.nbytes
        self._holding[id(item)] = item

    def release(self, job: Job) -> None:
        """`job`'s frame is no longer held here (its result stored or its error said, or it was taken back); once only."""
        with self.mutex:
            if self._holding.get(id(job)) is job:
                del self._holding[id(job)]
            job.held = 0


def full_because(jobs: queue.Queue) -> str:
    """Which bound a full jobs queue reached, and what to do: the end of the refusal of an input that found no room."""
    if isinstance(jobs, JobQueue) and jobs.held_bytes >= jobs.max_bytes and jobs.qsize() < jobs.maxsize:
        return (f"{jobs.held_bytes:,} bytes of decoded images held, model.max_queue_bytes {jobs.max_bytes:,}); slow the trigger "
                "rate, or raise model.max_queue_bytes where the station has the memory")
    return f"{jobs.maxsize} waiting); slow the trigger rate, or raise model.queue_size if the line's bursts are legitimate"


def set_aside(store: Store, inspection_id: str, text: str) -> str:
    """`text`, the reason an accepted job gets no result, with where its image is now kept (Store.set_aside): said
    on the error topic, so that the part can be found and inspected again."""
    try:
        kept = store.set_aside(inspection_id, text)
    except (OSError, sqlite3.Error) as exc:
        log.error("store: cannot set aside %s (%s); it stays in the journal and is tried again at the next start", inspection_id, exc)
        return f"{text}; its image stays in the journal ({exc})"
    return f"{text}; its image is kept at {kept}" if kept else text


class Intake:
    """Runs on its own thread: `step()` takes one input from `inbox` and accepts or rejects it."""

    def __init__(self, cfg: StationConfig, store: Store, jobs: queue.Queue[Job], metrics: Metrics, topics: Topics, *,
                 publish: Callable[..., Any], republish: Callable[[dict, Reply | None], None], source: Any = None,
                 on_command: Callable[[Command, Reply | None], None] | None = None, trouble: StoreTrouble | None = None,
                 repeats: Repeats | None = None) -> None:
        self.cfg, self.store, self.jobs, self.metrics, self.topics = cfg, store, jobs, metrics, topics
        self.trouble = trouble or StoreTrouble()
        self.repeats = repeats if repeats is not None else Repeats()  # shared with the outbox and the sink, which answer them
        self.inbox = Inbox(INBOX_SIZE, cfg.mqtt.max_waiting_bytes)  # bounded in bytes too: a burst of QoS 0 images
        self._frame_slots = threading.BoundedSemaphore(FRAME_SLOTS)
        self.mqtt: MqttClient | None = None
        self.source = source
        self._publish, self._republish, self._on_command = publish, republish, on_command
        self._allowed = [Path(d).resolve() for d in cfg.mqtt.allowed_dirs]
        self._zone = zone_of(cfg.reports.timezone)
        self._max_pixels = cfg.model.max_image_pixels
        self.stopping: Callable[[], bool] = lambda: False
        self.beat: Callable[[], None] = lambda: None  # the worker's heartbeat, for long waits
        self.started_at = 0.0  # when the intake began taking inputs (after the model loaded and the journal was recovered)

    # -- inputs from sources (their threads) ------------------------------------------------------------
    def submit(self, frame: Frame) -> bool:
        """Hand a source frame over: live frames that find no room are counted and skipped, files wait for room.
        At most FRAME_SLOTS source frames wait in the inbox: a video replayed at `fps: max` filled all 10,000 of its
        slots (gigabytes of frames), and MQTT triggers then found none."""
        if self._frame_slots.acquire(timeout=0.5) if frame.wait else self._frame_slots.acquire(blocking=False):
            try:
                self.inbox.put(frame, block=frame.wait, timeout=0.5 if frame.wait else None)
                return True
            except queue.Full:
                self._frame_slots.release()
        if not frame.wait:
            self.metrics.inc("inspector_frames_dropped_total", {"reason": "busy"})
        return False

    # -- rejection ----------------------------------------------------------------------------------------
    def reject(self, text: str, origin: str, *, message: Message | None = None, inspection_id: str | None = None,
               serial: str | None = None, reason: str = "invalid", part: bool | None = None, replies: tuple[Reply | None, ...] = ()) -> None:
        """One line on the error topic for one rejected input (and the message acknowledged: it was answered). `part`:
        whether the input was a part to inspect (None: a message on the image or trigger topic), which the store then
        keeps for the shift report (a part refused on arrival is in no record). `replies`: where a journaled job's
        answer goes (its input's, its repeats'), when there is no message."""
        # control characters escaped: a topic is the sender's to name, and a broker may pass a newline in it, which
        # forged a line of the log (and split the error topic's one line)
        text, origin = one_line(text), one_line(origin)
        log.warning("rejected %s: %s", origin, text)
        self.metrics.inc("inspector_rejected_total", {"reason": reason})
        # kept before the line hears of it, as a result is stored before it is published: read on the error, it was missing
        if part if part is not None else message is not None and self.topics.is_part(message.topic):
            try:
                self.store.note_refusal({"timestamp": utc_now(), "station": self.cfg.station.name, "source": origin,
                                         "inspection_id": inspection_id, "serial": serial, "reason": text, "kind": reason})
            except OSError as exc:  # it is answered on the error topic all the same
                log.error("store: cannot keep the refusal of %s for the shift report (%s)", origin, exc)
        payload = error_payload(text, origin, inspection_id, serial, **self._command_key(message))
        for reply in replies or (message.reply if message else None,):
            self._publish(self.topics.error, payload, reply=reply)
        if message is not None and self.mqtt is not None:
            self.mqtt.ack(message)

    def _command_key(self, message: Message | None) -> dict[str, str | None]:
        """{"command": name} for a reply to an input on the command topic, as docs/mqtt.md promises for every one (the
        refusals at intake had none): the command's name when the payload names a known one, else None."""
        if message is None or message.topic != self.topics.command:
            return {}
        name = None
        if len(message.payload) <= self.cfg.mqtt.max_payload_bytes:  # a bigger one is refused unread
            try:  # a key given twice ({"command": "reload", "command": "review"}) names no command, as its refusal says
                data = json.loads(message.payload.decode("utf-8-sig"), object_pairs_hook=_unique)
            except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deeply, a key twice: its refusal says which
                data = None
            name = data.get("command") if isinstance(data, dict) else None
        return {"command": name if isinstance(name, str) and name in COMMANDS else None}

    # -- the loop body --------------------------------------------------------------------------------
    def step(self, timeout: float = 0.5) -> None:
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        if isinstance(item, Frame):
            self._frame_slots.release()
            self._frame(item)
        else:
            self._message(item)

    def _frame(self, frame: Frame) -> None:
        # after: keep re-reads every kept file at a start: one an earlier version inspected is known by its id from then
        if frame.inspection_id and (self._answered(frame.inspection_id, None) or (frame.known_as and self._answered(frame.known_as, None))):
            if frame.done:
                frame.done(True)
            return
        while frame.wait and self.jobs.full() and not self.stopping():
            self.beat()
            time.sleep(0.005)  # files wait for room: they are durable, nobody needs an error for them
        if self.jobs.full():
            self.metrics.inc("inspector_frames_dropped_total", {"reason": "queue_full"})
            return
        try:
            # encoded frames are files from a watched folder
            rgb = frame.rgb if frame.rgb is not None else decode_image(frame.encoded or b"", frame.source, f"is it a {FORMATS} image?", self._max_pixels)
        except InspectorError as exc:
            self.reject(str(exc), frame.source, inspection_id=frame.inspection_id, serial=frame.serial, part=True)  # as its result would name it
            if frame.done:
                frame.done(False)
            return
        self.accept(rgb, frame.encoded, frame.inspection_id, frame.serial, frame.source, time.monotonic(), done=frame.done,
                    refused=frame.refused, captured=frame.timestamp, live=not frame.wait)

    def _message(self, msg: Message) -> None:
        origin = one_line(msg.topic.removeprefix(self.topics.prefix + "/"))  # as `reject` says it, in the log too
        try:
            self._dispatch(msg, origin)
        except Exception as exc:  # noqa: BLE001 (any input the handlers did not foresee)
            # answered and acknowledged all the same: unacknowledged, 100 such messages filled the broker's window
            # (ReceiveMaximum), and the persistent session brought them back after every restart
            log.exception("%s: input not handled", origin)
            self.reject(f"{origin}: could not be handled ({exc.__class__.__name__}); see the station's log", origin, message=msg,
                        reason="unhandled")

    def _dispatch(self, msg: Message, origin: str) -> None:
        is_image = self.topics.is_image(msg.topic)
        serial = (msg.topic[len(self.topics.image) + 1:] or None) if is_image else None  # named in the error, as in the result
        if len(msg.payload) > self.cfg.mqtt.max_payload_bytes:
            return self.reject(f"{origin}: payload of {len(msg.payload)} bytes exceeds mqtt.max_payload_bytes "
                               f"({self.cfg.mqtt.max_payload_bytes}); send a smaller image", origin, message=msg, reason="too_large",
                               serial=serial)
        # the contract: never retained (a retained reload or review, too, ran again at every start)
        if msg.retain and (self.topics.is_part(msg.topic) or msg.topic == self.topics.command):
            if not msg.payload:  # the MQTT idiom for clearing a retained message (as the refusal below asks): nothing to answer
                log.info("%s: an empty retained message cleared a retained one; nothing to do", origin)
                if self.mqtt is not None:
                    self.mqtt.ack(msg)
                return None
            again = " (each time a new part)" if self.topics.is_part(msg.topic) else ""
            ident, named = self.ids_of(msg)  # the part's ids, as every refusal names them
            # on 3.1.1 the broker sends it again at every subscribe (each reconnect): a part counted once per reconnect
            return self.reject(f"{origin}: a retained message, which the broker hands over again at every start{again}; publish "
                               "without retain, and clear this one with an empty retained message", origin, message=msg,
                               inspection_id=ident, serial=named, part=None if self.cfg.mqtt.protocol == "5" else False)
        if msg.topic == self.topics.command:
            return self._command(msg)
        if msg.topic == self.topics.trigger:
            return self._trigger(msg)
        if is_image:
            return self._image(msg, origin)
        self.reject(f"{msg.topic}: not a topic this station handles", origin, message=msg)

    def _json(self, msg: Message, origin: str) -> Any:
        if not msg.payload:
            raise InspectorError(f"{origin}: empty payload; send a JSON object")
        try:  # -sig: a leading byte order mark (RFC 8259 lets a reader skip it), as Windows tools write UTF-8 files
            return json.loads(msg.payload.decode("utf-8-sig"), object_pairs_hook=_unique)
        except DuplicateKey as exc:
            raise InspectorError(f"{origin}: {exc.key[:40]!r} is given twice; give it once") from None
        except ValueError as exc:  # also a number of over 4,300 digits, which Python refuses to read (not a JSONDecodeError)
            raise InspectorError(f"{origin}: not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]}); send a JSON object") from None
        except RecursionError:
            raise InspectorError(f"{origin}: JSON nested too deeply; send a flat JSON object") from None

    def _trigger(self, msg: Message) -> None:
        ident = serial = None
        try:
            data = self._json(msg, "trigger")
            if not isinstance(data, dict):
                raise InspectorError('trigger: send a JSON object like {"serial": "A123"}')
            ident, serial = _echoed(data.get("inspection_id")), _echoed(data.get("serial"))
            try:
                cmd = TriggerCommand.model_validate(data, context={"zone": self._zone})
            except ValidationError as exc:
                raise InspectorError(pydantic_line(exc, "trigger")) from None
            captured = self._captured(cmd.captured_at, "trigger")
            waits = any(v is not None for v in (cmd.path, cmd.url, cmd.base64))  # an image given, not a capture
            if (cmd.inspection_id and self._answered(cmd.inspection_id, msg)) or self._full("trigger", msg, ident, serial, waits):
                return
            encoded, rgb, source = self._trigger_image(cmd, msg.received)
        except InspectorError as exc:
            return self._refuse(str(exc), "trigger", msg, ident, serial)
        self.accept(rgb, encoded, cmd.inspection_id, cmd.serial, source, msg.received, message=msg, captured=captured)

    def _captured(self, stored: str | None, origin: str) -> float | None:
        """A given capture time as epoch seconds, refused where it would file the part wrongly: ahead of the station's
        clock (a later shift), or older than retention keeps records (one dated 2000 was deleted within the hour)."""
        if stored is None:
            return None
        t, now = epoch(stored), time.time()
        if t > now + AHEAD_S:
            raise InspectorError(f"{origin}: captured_at {stored} is ahead of the station's clock ({utc_now()}); set the sender's "
                                 "clock, or leave captured_at out")
        days = self.cfg.store.retention.max_age_days
        if days is not None and t < now - days * 86400:
            raise InspectorError(f"{origin}: captured_at {stored} is older than store.retention.max_age_days ({days:g}), so its "
                                 "record would be deleted at once; check the sender's clock, or leave captured_at out")
        return t

    def _trigger_image(self, cmd: TriggerCommand, received: float) -> tuple[bytes | None, np.ndarray, str]:
        if cmd.base64 is not None:
            text = cmd.base64
            if text.startswith("data:") and ";base64," in text[:100]:  # a data URI, as a browser or a web tool writes it
                text = text.split(",", 1)[1]
            text = "".join(text.split())  # line breaks, as base64 tools wrap it at 76 characters
            if ("-" in text or "_" in text) and not ("+" in text or "/" in text):
                text = text.translate(_URLSAFE)  # the URL-safe alphabet (RFC 4648 section 5), as JavaScript's base64url writes it
            text += "=" * (-len(text) % 4)  # padding, which base64url and JWT-style encoders leave off
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                bad = f"{m.group()!r} at character {m.start()}" if (m := _NOT_BASE64.search(text)) else None
                raise InspectorError(f"trigger: base64 is not valid base64 ({bad or 'its length or padding is wrong'}); send the image's "
                                     "bytes base64-encoded (RFC 4648)") from None
            return data, decode_image(data, "trigger base64", max_pixels=self._max_pixels), "mqtt:trigger"
        if cmd.path is not None:
            return self._read_path(cmd.path)
        if cmd.url is not None:
            return self._fetch(cmd.url)
        if self.source is None or not self.source.can_capture:
            kind = self.cfg.source.type
            raise InspectorError(f"trigger: this station's source ({kind}) cannot capture; send an image (path, url or base64)"
                                 f" or publish it on {self.topics.image}")
        waited, limit = time.monotonic() - received, self.cfg.source.capture_timeout_s
        if waited > limit:  # behind a slow input: the camera shows what is there now, perhaps the next part, under this serial
            raise InspectorError(f"trigger: waited {waited:.1f} s for its turn, longer than source.capture_timeout_s ({limit:g} s), so "
                                 "the camera may no longer show its part; trigger again")
        frame = self.source.capture()
        return None, frame.rgb, frame.source

    def _read_path(self, given: str) -> tuple[bytes, np.ndarray, str]:
        named = f"trigger: path {given[:120]!r}"
        try:
            path = Path(given).resolve()
            root = next((d for d in self._allowed if path.is_relative_to(d)), None)
            if root is None:
                raise InspectorError(f"{named} is outside mqtt.allowed_dirs; list its folder there")
            data = self._read_under(root, path.relative_to(root), named)
        except ValueError:  # a NUL byte, or a name this file system cannot encode
            raise InspectorError(f"{named} is not a valid file name") from None
        except RuntimeError:  # Python 3.11's resolve() on a loop of links
            raise InspectorError(f"{named} is a loop of symbolic links; name an image file") from None
        except FileNotFoundError:
            raise InspectorError(f"{named}: no such file") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # resolve() left no link: one was put there since
                raise InspectorError(f"{named} became a symbolic link while it was opened; name the image file itself") from None
            raise InspectorError(f"{named} cannot be read ({exc.strerror or exc})") from None
        return data, decode_image(data, f"trigger path {path.name}", max_pixels=self._max_pixels), f"path:{path.name}"

    def _read_under(self, root: Path, rel: Path, named: str) -> bytes:
        """The file at `rel` (resolved: no links) under the allowed folder `root`, opened one folder at a time from it,
        following no link, and read from that one descriptor. Checked by name and then read by name, a file swapped
        for a link (or a FIFO, which blocked the intake for good) in between was read outside mqtt.allowed_dirs."""
        if not rel.parts:
            raise InspectorError(f"{named} is a folder; name an image file in it")
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in rel.parts[:-1]:
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = sub
            # O_NONBLOCK: opening a FIFO waits for a writer; O_NOCTTY: a terminal never becomes the daemon's
            file = os.open(rel.parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        with open(file, "rb", closefd=True) as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise InspectorError(f"{named} is a folder; name an image file in it")
            if not stat.S_ISREG(st.st_mode):
                raise InspectorError(f"{named} is not a regular file (a device, FIFO or socket); name an image file")
            limit = self.cfg.mqtt.max_payload_bytes
            data = f.read(limit + 1) if st.st_size <= limit else b""  # at most the limit, even if it grows meanwhile
        if st.st_size > limit or len(data) > limit:
            raise InspectorError(f"{named} is larger than mqtt.max_payload_bytes")
        return data

    def _fetch(self, url: str) -> tuple[bytes, np.ndarray, str]:
        if not self.cfg.mqtt.allow_urls:
            raise InspectorError("trigger: url images are off; set mqtt.allow_urls: true or send base64")
        shown = safe_url(url)[:120]  # never the URL as given: the error topic and the log would carry its password or token
        if not url.startswith(("http://", "https://")):
            raise InspectorError(f"trigger: url {shown!r}: only http:// and https:// are fetched")
        try:  # a bad host or port ended in a traceback ([::1), or urllib's error echoed the port: a password's start (op:Pa55/word@)
            parts = urllib.parse.urlsplit(url)
            _ = parts.port
        except ValueError:
            raise InspectorError(f"trigger: url {shown!r}: its host or port cannot be read; send an http(s) URL like "
                                 "http://images.line1.local:8080/part.png") from None
        if "@" in parts.netloc:  # urllib sends no user info: it looked the password up in DNS as a host
            raise InspectorError(f"trigger: url {shown!r}: a user name or password in a URL is not sent; serve the image without one")
        if not host_allowed(url, self.cfg.mqtt.url_hosts):  # a trigger publisher could probe the plant network through the station
            raise InspectorError(f"trigger: url {shown!r}: its host is not in mqtt.url_hosts; serve the image from a listed host, "
                                 "or list this one")
        limit, timeout = self.cfg.mqtt.max_payload_bytes, self.cfg.mqtt.url_timeout_s
        chunks, size = [], 0
        deadline = Deadline(timeout)
        try:
            with deadline, _opener(deadline, self.cfg.mqtt.url_hosts).open(url, timeout=timeout) as resp:
                # each read has its own timeout: the deadline ends a server that sends a byte at a time, headers too
                while size <= limit and (chunk := resp.read1(1 << 16)):
                    chunks.append(chunk)
                    size += len(chunk)
                    if deadline.passed:
                        break
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            if not deadline.passed:
                why = safe_url(url, str(getattr(exc, "reason", exc)))
                raise InspectorError(f"trigger: url {shown!r} cannot be fetched ({why})") from None
        if deadline.passed:
            raise InspectorError(f"trigger: url {shown!r} took longer than mqtt.url_timeout_s ({timeout:g} s)")
        data = b"".join(chunks)
        if len(data) > limit:
            raise InspectorError(f"trigger: url {shown!r} is larger than mqtt.max_payload_bytes ({limit})")
        return data, decode_image(data, f"trigger url {shown}", max_pixels=self._max_pixels), "url"

    def _image(self, msg: Message, origin: str) -> None:
        if twice := sorted(set(IMAGE_PROPERTIES) & msg.repeated):  # the last was taken: a part filed under a serial not meant
            ident, serial = self.ids_of(msg)  # neither echoed where it is the one given twice
            return self.reject(f"{origin}: user property {twice[0]!r} is given twice; give it once", origin, message=msg,
                               inspection_id=ident, serial=serial)
        suffix = msg.topic[len(self.topics.image) + 1:] or None
        serial, ident = suffix or msg.user.get("serial"), msg.user.get("inspection_id")
        for what, value in (("serial", serial), ("inspection_id", ident)):
            try:
                _safe(value)
            except ValueError as exc:
                return self.reject(f"{origin}: {what} {exc}", origin, message=msg)
        try:
            captured = self._captured(stored_time(msg.user["captured_at"], self._zone) if msg.user.get("captured_at") else None, origin)
        except ValueError as exc:
            return self.reject(f"{origin}: captured_at {exc}", origin, message=msg, inspection_id=ident, serial=serial)
        except InspectorError as exc:
            return self.reject(str(exc), origin, message=msg, inspection_id=ident, serial=serial)
        if (ident and self._answered(ident, msg)) or self._full(origin, msg, ident, serial, wait=True):
            return
        try:
            rgb = decode_image(msg.payload, msg.topic, max_pixels=self._max_pixels)  # not "image image: ..."
        except InspectorError as exc:
            return self._refuse(f"{exc}{self._mistaken(msg.payload)}", origin, msg, ident, serial)
        self.accept(rgb, msg.payload, ident, serial, "mqtt:image", msg.received, message=msg, captured=captured)

    def _mistaken(self, payload: bytes) -> str:
        """What an image payload that is no image seems to be, where it is a common mistake: a trigger's JSON, or the
        image as base64 text (both were only 'cannot be decoded (UnidentifiedImageError)')."""
        head = payload[:4096].strip()
        if head.startswith(b"{"):
            return f"; this payload is JSON: a trigger goes on {self.topics.trigger}, the image topic takes the image's raw bytes"
        if head.startswith(b"data:image/") or (len(head) >= 64 and not head.translate(None, _BASE64_BYTES)):
            return (f"; this payload is base64 text: send the image's raw bytes here, or the text as a trigger's base64 on "
                    f"{self.topics.trigger}")
        return ""

    def _refuse(self, text: str, origin: str, msg: Message, ident: str | None, serial: str | None) -> None:
        """Refuse a trigger or image that is no valid part. An empty one on MQTT 3.1.1 may be the clearing of a retained
        message (see _dispatch), which the broker hands to a live subscriber without its retain flag: it is answered,
        since it may be a part sent empty, but not kept as a part refused on arrival, since most likely none arrived.
        On MQTT 5 (Retain As Published) a clearing is told apart, and an empty message is a refused part."""
        if msg.payload or self.cfg.mqtt.protocol == "5":
            return self.reject(text, origin, message=msg, inspection_id=ident, serial=serial)
        return self.reject(f"{text}{CLEARED_311}", origin,
                           message=msg, inspection_id=ident, serial=serial, part=False)

    def _command(self, msg: Message) -> None:
        ids: dict[str, str | None] = {}
        try:
            data = self._json(msg, "command")
            name = data.get("command") if isinstance(data, dict) else None
            if isinstance(data, dict):  # a review's part, echoed when the command is refused (null before)
                ids = {"inspection_id": _echoed(data.get("inspection_id")), "serial": _echoed(data.get("serial"))}
            kind = {"reload": ReloadCommand, "review": ReviewCommand}.get(name, ShiftReportCommand) if isinstance(name, str) else ShiftReportCommand
            cmd = kind.model_validate(data, context={"zone": self._zone})
        except ValidationError as exc:
            return self.reject(pydantic_line(exc, "command"), "command", message=msg, **ids)
        except InspectorError as exc:  # an empty one on 3.1.1 may clear a retained command, as the refusal of one asks
            return self.reject(f"{exc}{CLEARED_311 if not msg.payload and self.cfg.mqtt.protocol != '5' else ''}", "command", message=msg, **ids)
        if self._on_command is None:
            return self.reject("command: this station takes no commands", "command", message=msg)
        self._on_command(cmd, msg.reply)
        if self.mqtt is not None:
            self.mqtt.ack(msg)

    def ids_of(self, msg: Message) -> tuple[str | None, str | None]:
        """(inspection_id, serial) a trigger or image message carries, for an error reply that reads no further (the
        inbox is full, the message was retained): only safe ids."""
        if msg.topic == self.topics.trigger:
            try:  # a key given twice (DuplicateKey, a ValueError): neither is echoed, as the trigger is refused for it
                data = json.loads(msg.payload, object_pairs_hook=_unique)
            except (ValueError, RecursionError):
                return None, None
            return (_echoed(data.get("inspection_id")), _echoed(data.get("serial"))) if isinstance(data, dict) else (None, None)
        if self.topics.is_image(msg.topic):  # a property given twice is echoed as neither
            user = {k: v for k, v in msg.user.items() if k not in msg.repeated}
            return _echoed(user.get("inspection_id")), _echoed(msg.topic[len(self.topics.image) + 1:] or user.get("serial"))
        return None, None

    # -- acceptance -------------------------------------------------------------------------------------
    def _answered(self, inspection_id: str, msg: Message | None) -> bool:
        """A repeated id is answered from the store, never inspected twice; a repeat of one whose job is under way,
        when that job ends (`_await`)."""
        pending = self.store.is_pending(inspection_id)  # first: a job stored between the two looks is then found stored, not new
        record = self.store.get(inspection_id)
        # a repeat without correlation data or a Response Topic (every one on MQTT 3.1.1) has nothing to match but the
        # inspection_id, which the first's result carries: acknowledged, not answered with a copy of it
        if record is None and pending and msg is not None and msg.reply is not None:
            return self._await(inspection_id, msg)
        if record is not None:
            record.pop("published_at", None)
            if msg is not None:
                self._republish(record, msg.reply)
        elif not pending:
            return False
        elif inspection_id in self.trouble.unstored:
            self._unstored(inspection_id, msg)
            return True
        if msg is not None and self.mqtt is not None:
            self.mqtt.ack(msg)
        return True

    def _unstored(self, inspection_id: str, msg: Message | None) -> None:
        """A repeat of a part that was inspected, but whose result waits unstored: answered with why, and acknowledged."""
        self.reject(self.trouble.unstored[inspection_id], "store", message=msg, inspection_id=inspection_id, reason="unstored", part=False)

    def _await(self, inspection_id: str, msg: Message) -> bool:
        """A repeat of an id whose job is under way is remembered (`repeats`), to get what the job's end publishes: its
        result once more, or the error it got instead, each with this repeat's `reply` (acknowledged and
        dropped, such a repeat was never answered). False: a new part (its job was set aside meanwhile)."""
        kept = self.repeats.add(inspection_id, msg.reply)
        if self.store.is_pending(inspection_id):  # still under way: the sink takes the repeats after the job ends, so this one too
            if inspection_id in self.trouble.unstored:  # said now, and published once stored
                self._unstored(inspection_id, msg)
            elif not kept:
                origin = msg.topic.removeprefix(self.topics.prefix + "/")
                self.reject(f"{origin}: {inspection_id} is being inspected, and too many repeats of it wait for its result to answer "
                            "this one with it too; its result is published under its inspection_id", origin, message=msg,
                            inspection_id=inspection_id, reason="repeats", part=False)
            else:
                self._journal_repeat(inspection_id, msg)
            return True
        # the job ended between the looks and may have taken its repeats before this one came: answered here unless it took it
        if kept and not self.repeats.drop(inspection_id, msg.reply):
            if self.mqtt is not None:
                self.mqtt.ack(msg)
            return True
        return self._answered(inspection_id, msg)  # pending no more (only this thread journals): from the store, or a new part

    def _journal_repeat(self, inspection_id: str, msg: Message) -> None:
        """A remembered repeat journaled beside its job, then acknowledged: a crash before the job ends leaves it
        answered after the restart, not dropped with the memory that held it."""
        try:
            self.store.keep_repeat(inspection_id, msg.reply)
        except (OSError, sqlite3.Error) as exc:  # still answered when the job ends, unless the station stops first
            log.error("store: cannot journal a repeat of %s (%s); it is answered unless the station stops first", inspection_id, exc)
        if self.mqtt is not None:
            self.mqtt.ack(msg)

    def _full(self, origin: str, msg: Message | None, ident: str | None, serial: str | None, wait: bool = False) -> bool:
        """Whether the queue has no room for this input, which is then rejected. An image the input carries (`wait`)
        first waits up to model.queue_wait_s from its arrival: at a start, the broker sends the parts it held for the
        station all at once, and all but the first queue_size were rejected as if the line sent too fast. The wait counts
        from the start where the input came while the model loaded. One the station stops for is left unacknowledged, for
        the broker to send again at the next start."""
        if wait and msg is not None:
            deadline = max(msg.received, self.started_at) + self.cfg.model.queue_wait_s
            while self.jobs.full() and time.monotonic() < deadline:
                if self.stopping():
                    log.info("%s: left to the broker, which sends it again at the next start (the station stops)", origin)
                    return True
                self.beat()
                time.sleep(0.005)
        if not self.jobs.full():
            return False
        self.reject(f"{origin}: the inspection queue is full ({full_because(self.jobs)}", origin, message=msg, inspection_id=ident, serial=serial, reason="queue_full")
        return True

    def accept(self, rgb: np.ndarray, encoded: bytes | None, inspection_id: str | None, serial: str | None, source: str,
               received: float, *, message: Message | None = None, done: Callable[[bool], None] | None = None,
               refused: Callable[[], None] | None = None, captured: float | None = None, live: bool = False) -> None:
        """Journal, acknowledge and queue (the caller checked the id is new and the queue has room). `captured`: the
        frame's capture time (epoch seconds); else the input's arrival is the part's time."""
        ident = inspection_id or uuid.uuid4().hex
        if encoded is None:  # a captured frame: journal it losslessly, fast
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            encoded = buf.tobytes() if ok else b""
        wall = captured if captured is not None else time.time() - (time.monotonic() - received)
        job = Job(ident, rgb, serial, source, received, reply=message.reply if message else None,
                  timestamp=iso_utc(datetime.fromtimestamp(wall, timezone.utc)), refused=refused, live=live)
        # the time travels with the journal: a job recovered after a crash is a part of then, not of the restart
        meta = {"serial": serial, "station": self.cfg.station.name, "source": source, **(job.reply or Reply()).to_meta(),
                "timestamp": job.timestamp}
        try:
            self.store.accept(ident, meta, encoded, delivery=message.delivery if message is not None else None)
        except (OSError, sqlite3.Error) as exc:  # disk full, store broken: not accepted, so the sender must hear it
            self.metrics.inc("inspector_store_failures_total")
            if done:  # a watched file: not taken, not bad; it stays where it is and its source tries it again (no error each time)
                self.trouble.failed(f"{source}: could not be journaled ({exc}); it stays in the folder and is tried again")
                done(None)
                return
            text = f"{source}: could not be journaled ({exc}); it was not accepted, send it again once the store takes writes"
            self.trouble.failed(text)
            self.reject(text, source, message=message, inspection_id=inspection_id, serial=serial, reason="store_failed", part=True)
            return
        if message is not None and self.mqtt is not None:
            self.mqtt.ack(message)  # now, and not before: the job survives a crash from here on
        if done:
            done(True)
        self.jobs.put_nowait(job)  # room checked above; this thread is the only producer
        self.metrics.inc("inspector_frames_total", {"source": source.split(":")[0]})
        self.metrics.observe("inspector_stage_seconds", time.monotonic() - received, {"stage": "intake"})

    def recover(self) -> int:
        """Re-queue journaled jobs left by a previous run (blocking: they were accepted, they must not be rejected)."""
        n = 0
        for ident, meta, attempts in self.store.pending():  # images one at a time: a backlog may not fit in memory
            if self.stopping():
                break
            try:
                n += self._recover(ident, meta, attempts)
            except (OSError, sqlite3.Error) as exc:  # a full disk: it stays journaled, not the intake dead at every start
                text = f"store: cannot recover {ident} ({exc}); it stays in the journal"
                self.trouble.failed(text)
                log.error(text)
            except Exception as exc:  # noqa: BLE001 - a job no check foresaw: raised, it ended recovery before the intake took any
                # input, at every restart of its thread, and the station said online while it inspected nothing
                log.exception("recovery: cannot recover %s; it is set aside", ident)
                self.reject(set_aside(self.store, ident, f"recovery: cannot recover it ({type(exc).__name__}: {exc})"), "recovery",
                            inspection_id=ident)
        if n:
            log.info("recovered %d accepted job(s) from the journal", n)
        self.started_at = time.monotonic()
        return n

    def _recover(self, ident: str, meta: dict, attempts: int) -> int:
        # the job's own answer, and its repeats' (journaled while it was under way), as it came
        replies = (Reply.from_meta(meta), *(Reply.from_meta(r) for r in journaled_repeats(meta)))
        if attempts >= MAX_ATTEMPTS:
            text = f"recovery: gave up {ident} after {attempts} attempts (it stopped the daemon each time)"
            self.reject(set_aside(self.store, ident, text), "recovery", inspection_id=ident, serial=meta.get("serial"), reason="gave_up",
                        replies=replies)
            return 0
        try:
            rgb = decode_image(self.store.pending_image(ident) or b"", f"journaled {ident}")
        except InspectorError as exc:
            self.reject(set_aside(self.store, ident, str(exc)), "recovery", inspection_id=ident, serial=meta.get("serial"), replies=replies)
            return 0
        for again in replies[1:]:  # taken, as a repeat remembered in this run is, by whoever ends the job
            self.repeats.add(ident, again)
        job = Job(ident, rgb, meta.get("serial"), meta.get("source") or "recovered", time.monotonic(), reply=replies[0], recovered=True,
                  attempts=attempts, timestamp=meta.get("timestamp"))
        while not self.stopping():
            self.beat()
            if not self.jobs.full():  # its bytes too (JobQueue), which a blocking put does not wait for
                self.jobs.put_nowait(job)  # this thread is the only producer
                return 1
            time.sleep(0.02)
        return 0

    def release_unstarted(self) -> int:
        """After a drain that timed out: take back the queued jobs no batch started (they stay journaled, their recovery
        attempts uncounted: Inference counts one as its batch starts); how many."""
        n = 0
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return n
            if isinstance(self.jobs, JobQueue):
                self.jobs.release(job)
            self.jobs.task_done()
            n += 1
