"""The station daemon: threads joined by bounded queues, a watchdog, an ordered start and shutdown.

    source --> intake --(jobs, bounded: full = reject on the error topic)--> inference (owns the engine,
    batches) --(results)--> sink (record -> store -> outbox -> Sparkplug -> report hooks)
    watchdog: every few seconds: gauges, dead workers restarted, a silent source replaced, the status, systemd pinged

Start: the cheap checks (source, model, password variable, TLS files), store, broker (credentials checked), engine,
workers, journal recovery, source, `online`; a refusal ends the start with one clear line (and before the store, leaves
none behind). SIGHUP or a `reload` command: the model is loaded again beside the one in use and swapped in
between batches (a model that fails to load leaves the old one serving). SIGTERM: the source stops, accepted work drains (up to
daemon.drain_timeout_s, or until a second SIGTERM or Ctrl-C; what is left stays in the journal for the next start), the broker
acknowledges what was sent, then `offline` and disconnect. Unacknowledged MQTT input is redelivered to the next run.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inspector.api import Inspector
from inspector.cli import one_line
from inspector.config import ModelSection, StationConfig, load_config
from inspector.decision import DecisionConfig
from inspector.engines import locate_model
from inspector.health import HealthServer, Metrics, StoreTrouble
from inspector.hooks import OnFail, OnShift, ReportHooks
from inspector.intake import Command, Intake, JobQueue, ReviewCommand, ShiftReportCommand
from inspector.live import LiveView
from inspector.mqtt import DEGRADED, OFFLINE, ONLINE, Message, MqttClient, Reply, Topics, Will, ack_lost_s
from inspector.outbox import Outbox, Repeats
from inspector.pipeline import Inference, Sink
from inspector.result import error_payload, utc_now
from inspector.review import ids_of_serials, review_parts
from inspector.sources import open_source
from inspector.store import BDSEQ_FILE, DB_NAME, Store, discard_new
from inspector.verification import FIELDS, verify
from model.errors import InspectorError, file_problem

log = logging.getLogger(__name__)

RESTART_AT_START = ("queue_size", "queue_wait_s", "max_image_pixels", "max_queue_bytes")  # model settings a reload cannot apply: the queue and intake are built
CLOSE_WAIT_S = 10.0  # a stop waits this long for a batch still in the engine before it closes the model
STATUS_HEARD_S = 10.0  # a status published and not heard back within this (MQTT 5): the broker does not let the station read it
RESTART_SHOWN_S = 600.0  # a worker that died and was restarted keeps /health degraded this long, for monitors that poll slowly


def model_files(path: str, configured: str | Path | None = None) -> list[Path]:
    """The files whose change means the model on disk is not the one loaded (and may not load: the next start would
    then fail): a checkpoint's manifest and the files it seals, an export and its sidecar, and the folder `configured`
    (model.path) where it holds the one export loaded (a second export put there refuses the next start)."""
    p = Path(path)
    if not p.is_dir():
        files = [p, p.with_name(p.name + ".json")]
    else:
        try:
            sealed = json.loads((p / "manifest.json").read_bytes()).get("files")
        except (OSError, ValueError, AttributeError):
            sealed = None  # the loader has said, or will say, what is wrong with it
        # weights copied over a served checkpoint's: /health said ok, and the next reload or start refused them
        files = [p / "manifest.json", *(p / name for name in sorted(sealed) if isinstance(name, str))] if isinstance(sealed, dict) \
            else [p / "manifest.json"]
    if configured is not None and Path(configured).is_dir() and Path(configured).resolve() != p.resolve():
        files.append(Path(configured))
    return files


def files_stamp(files: list[Path]) -> tuple[tuple[Any, ...] | None, ...]:
    """Each file's time and size; a folder's (model.path holding one export) by the models in it, which the next start
    would choose from: a .DS_Store or a .bak dropped in changed the folder's time, not what the station loads."""
    def stamp(f: Path) -> tuple[Any, ...] | None:
        try:
            if f.is_dir():
                return _models_in(f)
            st = f.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    return tuple(stamp(f) for f in files)


def _models_in(folder: Path) -> tuple[str, ...]:
    from inspector.engines import runs_as_model

    return tuple(sorted(p.name for p in folder.iterdir() if p.name == "manifest.json" or runs_as_model(p)))


def files_digest(files: list[Path]) -> tuple[Any, ...]:
    """Each file's sha256 (a folder's models, as stamped; None for one that cannot be read): whether files stamped anew
    hold other bytes, or the same copied again (a deploy's `cp`, a `touch`), which is no change to the model."""
    from model.hashing import sha256_file

    def digest(f: Path) -> Any:
        try:
            return _models_in(f) if f.is_dir() else sha256_file(f)
        except OSError:
            return None

    return tuple(digest(f) for f in files)


# a restart loads the same files and config, and the shipped unit does not restart a start refused (exit 2): said before
# it happens (a threshold the verification images refuse was written, refused at reload, and stopped the next start)
RELOAD_FAILED = "the last reload failed, and a restart would fail the same way until the model's files or the config are mended"


def in_use(inspector: Inspector) -> dict[str, Any]:
    """What judges parts: the model (its weights' id), the file and runtime that run it, and the thresholds applied."""
    meta = inspector.engine.meta
    return {"model": meta.model_id, "runtime": meta.runtime, "path": meta.path, "image_threshold": inspector.image_threshold,
            "pixel_threshold": inspector.pixel_threshold}


def decision_of(section: ModelSection) -> DecisionConfig:
    return DecisionConfig(image_threshold=section.image_threshold, pixel_threshold=section.pixel_threshold, mm_per_px=section.mm_per_px)


def broker_client(cfg: StationConfig, **kw: Any) -> MqttClient:
    """The station's broker client, built, not connected: building it reads the password variable and loads the TLS
    files, and refuses what is wrong there. `serve` builds it before it creates its store; `config validate --here`
    builds one through this same function, so the two cannot disagree."""
    if cfg.mqtt.tls is not None:
        cfg.mqtt.tls.check_files()
    return MqttClient(cfg.mqtt, station_client_id(cfg), **kw)


def station_client_id(cfg: StationConfig) -> str:
    """The station's MQTT client id: `mqtt.client_id`, else one of its name."""
    return cfg.mqtt.client_id or f"inspector-{cfg.station.name}"


def check_verification_files(section: ModelSection) -> None:
    """A verification image that is not there, said before anything is created or loaded (`verify` would say it after)."""
    for field, paths in zip(FIELDS, (section.verify_good, section.verify_defect), strict=True):
        for path in paths:
            if what := file_problem(path, "image file"):  # a folder, or a FIFO, read "no such file"
                raise InspectorError(f"{field}: {path}: {what}; give images of parts that exist")


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify, WatchdogSec) about readiness and liveness; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError as exc:
        log.debug("sd_notify(%s) failed: %s", state, exc)


class Worker:
    """`while not stop: step()` on a thread, with a heartbeat; an exception in one step is logged, not fatal."""

    def __init__(self, name: str, step: Callable[[], None], on_start: Callable[[], Any] | None = None) -> None:
        self.name, self.step, self.on_start = name, step, on_start
        self.stop = threading.Event()
        self.heartbeat = time.monotonic()
        self.restarts = 0
        self.restarted_at: float | None = None  # monotonic
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def start(self) -> None:
        self.heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.on_start is not None:
            self.on_start()
            self.on_start = None  # once per daemon, not per restart
        while not self.stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                self.step()
            except Exception:
                log.exception("%s: unexpected error; carrying on", self.name)
                time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class Daemon:
    """One station. `run()` for the command line; `start()` / `shutdown()` for tests and embedding (`start()` returns
    ready to receive: with the broker reachable, once it acknowledged the station's subscriptions).

    `inspector` may be given (an `api.Inspector`, e.g. shared by tests); `on_fail(record)` and
    `on_shift_report(records, meta)` replace the default report renderers. `config_path`, the file `cfg` came from,
    is read again by `reload()`.
    """

    def __init__(self, cfg: StationConfig, *, inspector: Any = None, on_fail: OnFail | None = None, on_shift_report: OnShift | None = None,
                 config_path: str | Path | None = None) -> None:
        self.cfg, self.config_path = cfg, config_path
        self.topics = Topics(cfg.mqtt.prefix)
        self.metrics = Metrics()
        self.trouble = StoreTrouble()  # shared by intake (journal writes) and sink (result writes), shown on /health
        self.jobs = JobQueue(cfg.model.queue_size, cfg.model.max_queue_bytes)
        self.results: queue.Queue = queue.Queue(maxsize=max(2 * cfg.model.batch_size, 16))
        self._given_inspector, self._on_fail, self._on_shift = inspector, on_fail, on_shift_report
        self.halt = threading.Event()  # set by SIGTERM/SIGINT or stop()
        self.hurry = threading.Event()  # a second SIGTERM/SIGINT: the stop no longer waits for accepted work (it stays journaled)
        self.ready = False
        self._status_lock = threading.Lock()  # the watchdog and paho's thread both publish it; `offline` must stay last
        self._status_sent: bytes | None = None
        # on the status (MQTT 5 user properties), so that a station sharing the prefix is told from this one's earlier run
        self.identity = {"client_id": station_client_id(cfg), "station": cfg.station.name, "host": socket.gethostname(), "instance": uuid.uuid4().hex[:12]}
        self._others: dict[str, dict[str, str]] = {}  # client id -> identity of another live station on this prefix (paho's thread)
        self._status_first: float | None = None  # when this run first published its status (monotonic)
        self._status_heard = False  # this run's own status came back on the watch: another station's would too
        self._status_unread_said = False
        self.problems: list[str] = []
        self._source_lock = threading.Lock()  # the watchdog's replacement of a source against the stop
        self._reopen_failed: str | None = None  # why the watchdog could not reopen a source it replaced (tried again at each check)
        self._reload_queue, self._reload_waiting = threading.Lock(), False  # a reload asked for while one runs waits for it
        self.workers: dict[str, Worker] = {}
        self.started_at = time.monotonic()
        self.store: Store | None = None
        self._model_files: list[Path] = []
        self._model_stamp: tuple = ()
        self._model_digest: tuple = ()
        self._unlike: tuple | None = None  # the files' stamp last found to hold other bytes than those loaded
        self.mqtt: MqttClient | None = None
        self.sparkplug: Any = None
        self.http: HealthServer | None = None
        self.live: LiveView | None = None
        self.source: Any = None
        self.inspector: Any = None
        self._owns_engine = inspector is None  # a given inspector's engine is its owner's to close
        self._model_lock = threading.Lock()  # the engine in use is swapped or closed under it, never both at once
        self._reloading = threading.Lock()  # one reload at a time
        self.loaded_at = ""
        self.verified: dict[str, int] | None = None  # the verification images the model in use judged right
        self.last_reload: dict[str, Any] | None = None
        # reloads begun: `inspector reload` waits for the outcome of one begun after its signal, by number (compared by the
        # wall clock's time, a clock stepped back at that moment made a reload that worked time out, and `systemctl reload` fail)
        self.reloads = 0
        self.outbox: Outbox | None = None
        self.sink: Sink | None = None
        self.hooks: ReportHooks | None = None

    # -- start ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        root = Path(self.cfg.store.data_dir)
        made, fresh = not root.exists(), not (root / DB_NAME).exists()
        try:
            self._check_start()
            self.store = Store(root, exclusive=True)
            self._start_parts()
        except BaseException:
            for part in (self.http, self.sparkplug, self.mqtt):
                if part is not None:
                    part.stop()
            if self.inspector is not None and self._owns_engine:  # e.g. loaded, then misjudged a verification image
                self.inspector.close(timeout=CLOSE_WAIT_S)
            # a start refused after the store was made (the broker refused the password, the model did not load, the port
            # was taken): a new store with nothing in it goes again
            unused = fresh and self.store is not None and not any(self.store.counts().values())
            self._close_store()
            if unused:
                discard_new(root, made)
            raise

    def _answer_set_aside(self, source: Any) -> None:
        """A watched folder's file set aside unread (a link, too big, unreadable) is answered on the error topic, as every
        rejected input is (the contract); it was only logged."""
        if hasattr(source, "on_set_aside"):
            # named as the file's frame would have been (its result's `source`), not as the folder
            source.on_set_aside = lambda text, origin, serial: self.intake.reject(text, origin, serial=serial, reason="set_aside", part=True)

    def _check_start(self) -> None:
        """The cheap checks that refuse a start (a missing source, model or verification image, a password variable not
        set, a TLS file missing), before the store is created: a refused start left an empty store, which `inspector
        report` then reported on. Nothing connects here; loading the model comes after the broker."""
        cfg = self.cfg
        self.source = open_source(cfg.source)
        if self._given_inspector is None:
            locate_model(cfg.model.path)
        check_verification_files(cfg.model)
        self.mqtt = broker_client(cfg, will=Will(self.topics.status, OFFLINE, user=self.identity), persistent=True,
                                  subscriptions=self.topics.subscriptions(), retired=self.topics.retired(), manual_ack=True,
                                  on_connected=self._connected, on_overflow=self._overflow, on_new_session=self._new_session,
                                  watch=self.topics.status, on_watched=self._other_status)

    def _renamed(self) -> str | None:
        """What a station renamed over its store loses, said at start: its shift reports (by station.name) left out the
        parts judged under the old name, and with the client id taken from the name, the broker's session of the old one
        kept the inputs it held unanswered, with nothing in the log."""
        old, new = self.store.latest_station(), self.cfg.station.name
        if not old or old == new:
            return None
        text = (f"store {self.store.root}: its latest part was judged as station {old!r}, and this config names it {new!r}: "
                f"shift reports and `inspector report --station {new}` leave out the parts stored as {old!r}")
        if self.cfg.mqtt.client_id is None:
            text += (f"; the inputs the broker holds for client id inspector-{old} are not delivered to inspector-{new} "
                     f"(set mqtt.client_id: inspector-{old} to keep that session)")
        return text + "; keep station.name, or give a renamed station its own store.data_dir"

    def _start_parts(self) -> None:
        cfg = self.cfg
        if renamed := self._renamed():
            log.warning("%s", renamed)
        self.repeats = Repeats()  # repeats of ids under way: remembered by the intake, answered by the outbox or the sink
        self.intake = Intake(cfg, self.store, self.jobs, self.metrics, self.topics, publish=self.publish,
                             republish=lambda record, reply: self.outbox.publish(record, reply), source=self.source,
                             on_command=self._command, trouble=self.trouble, repeats=self.repeats)
        self.intake.stopping = lambda: self.workers["intake"].stop.is_set() if "intake" in self.workers else False
        self._answer_set_aside(self.source)
        self.mqtt.inbox = self.intake.inbox  # built before the store and the intake; nothing arrives before start()
        self.intake.mqtt = self.mqtt
        # inputs the last run journaled, which a crash may have left unacknowledged at the broker: their copies are known
        self.mqtt.recall(self.store.deliveries(ack_lost_s(cfg.mqtt)))
        self.mqtt.start()  # wrong credentials / TLS: InspectorError here, before the slow model load
        self._start_rest(self.identity["client_id"])

    def _start_rest(self, client_id: str) -> None:
        cfg = self.cfg
        if self._given_inspector is not None:
            engine = self._given_inspector.engine
            self._model_files = model_files(engine.meta.path, cfg.model.path)
            self._model_stamp, self._model_digest = files_stamp(self._model_files), files_digest(self._model_files)
            self.inspector = Inspector(engine, decision_of(cfg.model), cfg.station.name)
        else:
            self.inspector, self._model_files, (self._model_stamp, self._model_digest) = self._load(cfg.model)
        self.verified = verify(self.inspector, cfg.model.verify_good, cfg.model.verify_defect)  # before anything is judged
        if self.verified:
            log.info("verified: model %s passed %d good and failed %d defect verification images", self.inspector.engine.meta.model_id,
                     self.verified["good"], self.verified["defect"])
        self.loaded_at = utc_now()
        if cfg.sparkplug.enabled:
            from inspector.sparkplug import SparkplugNode

            self.sparkplug = SparkplugNode(cfg.mqtt, cfg.sparkplug, cfg.station.name, f"{client_id}-spb",
                                           Path(cfg.store.data_dir) / BDSEQ_FILE)
            self.sparkplug.start()
        self.outbox = Outbox(self.store, self.mqtt, self.topics.result, self.metrics, self.repeats)
        self.hooks = ReportHooks(cfg, self.store, self.publish, self.topics.report, self.topics.error, self._on_fail, self._on_shift)
        self.inference = Inference(self.inspector, self.jobs, self.results, cfg.model.batch_size, self.metrics, self.store)
        self.live = LiveView(cfg, self.health) if cfg.http.enabled and cfg.http.live else None
        self.sink = Sink(cfg, self.store, self.results, self.outbox, self.metrics, self.hooks, self.publish, self.topics.error, self.sparkplug,
                         self.trouble, self.live, release=self.jobs.release)
        if cfg.http.enabled:
            self.http = HealthServer(cfg.http.host, cfg.http.port, self.health, self.render_metrics, self.live.page if self.live else None)
            self.http.start()
            log.info("http: /health and /metrics%s on http://%s:%d/", " and the live view" if self.live else "", cfg.http.host, self.http.port)
        self.hooks.start()
        self.workers = {"sink": Worker("sink", self.sink.step), "inference": Worker("inference", self.inference.step),
                        "intake": Worker("intake", self.intake.step, on_start=self.intake.recover)}
        self.intake.beat = self.workers["intake"].beat
        for w in self.workers.values():
            w.start()
        if self.source is not None:
            self.source.start(self.intake.submit)
        self.ready = True
        if self.mqtt.connected:
            self._connected()
            # start() returns ready to receive (an embedder or test that published at once lost its first input, when the
            # broker took it before the station's SUBSCRIBE); a PLC waits for `online`, sent after the SUBSCRIBEs
            if not self.mqtt.wait_subscribed(cfg.mqtt.connect_timeout_s):
                log.warning("%s: the broker has not acknowledged every subscription within %g s; inputs sent now may be lost",
                            self.mqtt.where, cfg.mqtt.connect_timeout_s)
        self._watchdog = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._watchdog.start()
        log.info("station %s ready: source %s, model %s, topics under %s", cfg.station.name, cfg.source.type,
                 self.inspector.engine.meta.model_id, self.topics.prefix)

    # -- MQTT glue --------------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: str | bytes, reply: Reply | None = None) -> None:
        self.mqtt.publish(topic, payload, qos=1, reply=reply)

    def _connected(self) -> None:
        self._publish_status(again=True)

    def _new_session(self) -> None:
        """The broker kept no session of the station (its first start, a broker restarted without persistence): the
        packet ids of the inputs journaled before name other inputs now."""
        if self.store is None:
            return
        try:
            self.store.forget_deliveries()
        except (OSError, sqlite3.Error) as exc:  # paho's thread: said, never raised there
            log.error("store: cannot forget the inputs of the broker's earlier session (%s)", exc)

    def _publish_status(self, again: bool = False) -> None:
        """The retained status, when it changed (`again`: after a reconnect): `online` means able to inspect, not merely
        connected, and `degraded` that the store refuses writes or the source (camera, stream, folder) gives no frames, so
        the line sees it without polling /health (a PLC that gates its triggers on it kept triggering a dead camera)."""
        with self._status_lock:
            if not self.ready or self.halt.is_set():
                return
            status = DEGRADED if self.trouble.error or not self._source_up() else ONLINE
            if again or status != self._status_sent:
                self.mqtt.publish(self.topics.status, status, qos=1, retain=True, user=self.identity)
                self._status_sent = status
                self._status_first = self._status_first or time.monotonic()

    def _other_status(self, msg: Message) -> None:
        """A status on this station's prefix (paho's thread; MQTT 5). Another client id's `online` or `degraded` is a second
        station on the prefix (a copied config): each trigger was inspected twice, the line got two results per part and
        each station's status overwrote the other's, with nothing said. Said in the log, on `error` and on /health until
        that station says `offline` (its last will too) or its retained status is cleared. This client id's own (a retained
        one of an earlier run) is not another station; a status naming no client id (an MQTT 3.1.1 station) tells nothing."""
        if self.halt.is_set():
            return
        who = msg.user.get("client_id")
        if who == self.identity["client_id"] or (who is None and msg.payload):
            self._status_heard = self._status_heard or msg.user.get("instance") == self.identity["instance"]
            return
        if who is None:  # an empty retained message cleared the status, whoever's it was
            gone, self._others = list(self._others.values()), {}
        elif msg.payload not in (ONLINE, DEGRADED):
            gone = [self._others.pop(who)] if who in self._others and msg.payload == OFFLINE else []
        elif who in self._others:  # said already: a change of its status, or its retained one again after a reconnect
            self._others[who] = dict(msg.user)
            return
        else:
            self._others[who] = dict(msg.user)
            text = (f"{self.topics.prefix}: {self._named(msg.user)} publishes its status on this station's mqtt.prefix too "
                    f"({self._named(self.identity)}): every trigger and image is inspected by both, the line gets two results per "
                    "part and each overwrites the other's status; give each station its own mqtt.prefix")
            log.error("%s", text)
            self.mqtt.publish(self.topics.error, error_payload(text, "status"), qos=1)
            return
        for identity in gone:
            log.warning("%s: %s no longer shares this station's mqtt.prefix (its status went %s)", self.topics.prefix,
                        self._named(identity), "offline" if msg.payload else "cleared")
        if gone:  # the retained status was the other's: this station's own again
            self._publish_status(again=True)

    @staticmethod
    def _named(identity: dict[str, str]) -> str:
        return (f"station {one_line(identity.get('station', '?'))} on host {one_line(identity.get('host', '?'))} "
                f"(client id {one_line(identity.get('client_id', '?'))})")

    def _command(self, cmd: Command, reply: Reply | None) -> None:
        if isinstance(cmd, ShiftReportCommand):
            self.hooks.shift(cmd, reply)
        elif isinstance(cmd, ReviewCommand):  # one row written: on the intake's thread
            self._review(cmd, reply)
        else:  # off the intake's thread, which parts wait on
            threading.Thread(target=self._reload_and_reply, args=(reply,), name="reload", daemon=True).start()

    def _review(self, cmd: ReviewCommand, reply: Reply | None) -> None:
        """A QA review sent over MQTT (e.g. from a rework station's terminal): recorded as `inspector review` does it,
        answered on `report`, or why not on `error`."""
        try:
            ident = cmd.inspection_id or ids_of_serials(self.store, [str(cmd.serial)])[0]  # one of them, as ReviewCommand checks
            (done,) = review_parts(self.store, [ident], cmd.truth, cmd.type, cmd.by, cmd.note, ("type", "by", "note", "truth", "serial"))
        except (InspectorError, OSError, sqlite3.Error) as exc:
            self.publish(self.topics.error, error_payload(f"command: review not recorded: {exc}", "command", cmd.inspection_id, cmd.serial,
                                                          command="review"), reply)
            return
        self.publish(self.topics.report, json.dumps({"command": "review", **done}), reply)

    def _reload_and_reply(self, reply: Reply | None) -> None:
        """A reload asked for over MQTT: its outcome on `report`, or why it failed on `error`."""
        outcome = self.reload()
        if outcome["ok"]:
            self.publish(self.topics.report, json.dumps({"command": "reload", **outcome}), reply)
        else:
            self.publish(self.topics.error, error_payload(f"command: reload failed; parts go on with model {outcome['model']}: "
                                                          f"{outcome['error']}", "command", command="reload"), reply)

    def _overflow(self, msg: Message, why: str) -> None:
        # paho's thread, but only when 10,000 inputs, or mqtt.max_waiting_bytes of them, wait: answer at once rather than
        # let the inbox grow (`why` says which)
        ident, serial = self.intake.ids_of(msg)
        self.intake.reject(f"{msg.topic}: the station is overloaded {why}", msg.topic, message=msg, inspection_id=ident,
                           serial=serial, reason="overloaded")

    # -- health -----------------------------------------------------------------------------------------------
    def _gauges(self, records: bool = False) -> dict[str, int]:
        counts = self.store.counts(records) if self.store is not None else {}
        m = self.metrics
        m.set("inspector_queue_depth", self.jobs.qsize())
        m.set("inspector_queue_bytes", self.jobs.held_bytes)
        m.set("inspector_inbox_bytes", self._inbox_bytes())
        m.set("inspector_pending", counts.get("pending", 0))
        m.set("inspector_unpublished", counts.get("unpublished", 0))
        m.set("inspector_broker_connected", int(bool(self.mqtt and self.mqtt.connected)))
        m.set("inspector_source_up", int(self._source_up()))
        m.set("inspector_source_reconnects", self.source.reconnects if self.source is not None else 0)
        m.set("inspector_healthy", int(not self.problems))
        m.set("inspector_prefix_shared", len(self._others))
        return counts

    def _inbox_bytes(self) -> int:
        """Bytes of MQTT inputs waiting for the intake (none before the start built it)."""
        return self.intake.inbox.waiting_bytes if hasattr(self, "intake") else 0

    def _source_up(self) -> bool:
        return self.source is None or self.source.delivering

    def render_metrics(self) -> str:
        self._gauges()
        return self.metrics.render()

    def health(self) -> dict[str, Any]:
        counts = self._gauges(records=True)
        broker = self.mqtt.state if self.mqtt else "not started"
        source = self.source.state if self.source is not None else "mqtt only"
        status = "failing" if self.problems or not self.ready else "ok"
        refused = self.outbox.refusing() if self.outbox is not None else None
        sink = self.sink
        disk = {"free_mb": sink.disk_free_mb, "images": sink.images_off or "saved"} if sink else None
        model = self._model_health()
        reports = None
        if self.hooks is not None:  # `missing`: FAIL reports waiting to be rendered from their records (found missing at start, or set aside while busy)
            missing = self.hooks.missing
            reports = {"failed": self.hooks.failed, "error": self.hooks.last_error, **({"missing": missing} if missing else {})}
        now = time.monotonic()
        restarted = {n: f"died and was restarted {now - w.restarted_at:.0f} s ago ({w.restarts} times so far)"
                     for n, w in self.workers.items() if w.restarted_at is not None and now - w.restarted_at < RESTART_SHOWN_S}
        # results left unstored wait in the journal: degraded until they are stored, not only until a later one is
        concerns = [why for cond, why in (
            (broker != "connected", f"broker {broker}"), (source not in ("open", "watching", "mqtt only"), f"source {source}"),
            (self.trouble.error, "the store refuses writes"), (self.trouble.unstored, "results wait to be stored"),
            (self.hooks and self.hooks.recent_error, "a report failed"), (restarted, "a worker was restarted"),
            (refused, "the broker refuses results"), (sink and sink.images_off, "images are not saved"),
            ((model or {}).get("changed_on_disk"), "the model's files changed since it was loaded"),
            (((model or {}).get("last_reload") or {}).get("ok") is False, RELOAD_FAILED),
            *((True, f"mqtt.prefix shared: {self._named(o)} publishes on it too; give each station its own mqtt.prefix")
              for o in list(self._others.values()))) if cond]
        if status == "ok" and concerns:
            status = "degraded"
        return {"status": status, "station": self.cfg.station.name, "pid": os.getpid(), "problems": self.problems,
                **({"degraded": concerns} if status == "degraded" else {}), "broker": broker, "source": source,
                **({"model": model} if model else {}),
                **({"publish_refused": refused} if refused else {}), **({"disk": disk} if disk else {}),
                **({"reports": reports} if reports and (reports["failed"] or "missing" in reports) else {}), **({"restarted": restarted} if restarted else {}),
                "store": self.trouble.health(), "queue": self.jobs.qsize(), "queue_bytes": self.jobs.held_bytes,
                "inbox_bytes": self._inbox_bytes(), **counts, "uptime_s": round(now - self.started_at, 1),
                "verdicts": {v: int(self.metrics.value("inspector_verdicts_total", {"verdict": v})) for v in ("PASS", "FAIL")},  # counts
                "rejected": int(self.metrics.total("inspector_rejected_total")),
                "workers": {n: {"alive": w.alive, "silent_s": round(now - w.heartbeat, 1), "restarts": w.restarts} for n, w in self.workers.items()}}

    def _model_health(self) -> dict[str, Any] | None:
        """The model and thresholds parts are judged with, and whether its files changed since they were loaded:
        `inspector threshold`, a refit or a re-export takes effect at a reload or the next start, not before."""
        if self.inspector is None:
            return None
        used = in_use(self.inspector)
        out: dict[str, Any] = {"id": used.pop("model"), **used, "loaded_at": self.loaded_at}
        if overridden := self._threshold_override():
            out["threshold_override"] = overridden
        if (stamp := files_stamp(self._model_files)) != self._model_stamp and (stamp, self._model_digest) != self._unlike:
            if files_digest(self._model_files) == self._model_digest:
                self._model_stamp = stamp  # the same bytes under new times (copied again, touched)
            else:
                self._unlike = stamp, self._model_digest  # hashed once, not again at each /health
        if stamp != self._model_stamp:
            out["changed_on_disk"] = "its files changed since it was loaded (threshold, refit or export); reload (SIGHUP or a reload command) or restart to use them"
        if self.verified is not None:
            out["verified"] = self.verified
        out["reloads"] = self.reloads
        if self.last_reload is not None:
            out["last_reload"] = self.last_reload
        return out

    def _threshold_override(self) -> str | None:
        """What the config's model section sets over the model's own thresholds: `inspector threshold` on the model then
        changes nothing the station uses (a reload said ok, and /health cleared its changed_on_disk)."""
        section, meta = self.cfg.model, self.inspector.engine.meta
        said = [f"{name} {value:g} from the config (the model's own: {own:g})" for name, value, own in (
            ("image_threshold", section.image_threshold, meta.image_threshold), ("pixel_threshold", section.pixel_threshold, meta.pixel_threshold))
            if value is not None]
        return "; ".join(said) + "; `inspector threshold` does not change it" if said else None

    # -- reload -----------------------------------------------------------------------------------------------
    def _load(self, section: ModelSection) -> tuple[Inspector, list[Path], tuple]:
        """Open the model `section` names, with its thresholds, and stamp the files /health compares with what is on disk."""
        # stamped before loading: a threshold written during the load is then seen as a change
        files = model_files(str(locate_model(section.path)[0]), section.path)
        stamp = files_stamp(files), files_digest(files)
        try:
            inspector = Inspector.load(section.path, section.device, decision_of(section), self.cfg.station.name)
        except InspectorError as exc:
            # the engines word a missing device for the CLI's option; here it came from the station config
            raise InspectorError(str(exc).replace("--device", "model.device")) from None
        return inspector, files, stamp

    def reload(self) -> dict[str, Any]:
        """Load the model again and swap it in between batches (SIGHUP, `systemctl reload`, or a `reload` command):
        `inspector threshold`, a refit or a re-export then takes effect without a stop. With the config file `serve` was
        started from, its `model` section is read again too (but `queue_size`, `max_queue_bytes`, `max_image_pixels` and the other sections
        take a restart). The new model inspects a blank image before it is swapped in; whatever fails is logged and shown
        on /health (`model.last_reload`), and parts go on with the model in use. Returns the outcome: `ok`, `model`
        (the one now in use) and `was`, or `error`."""
        was = self.inspector
        was_id = was.engine.meta.model_id if was is not None else None
        if not self.ready or self.halt.is_set():
            return {"ok": False, "model": was_id, "error": "the station is starting or stopping"}
        # one runs, one waits for it: dropped, a request after a config edit during a reload left the old model serving,
        # /health ok; the waiting one reads the files as they are when it runs, so a third has nothing more to ask for
        with self._reload_queue:
            if self._reload_waiting:
                log.info("reload: one already waits to run after the one running; it reads the files as they are then")
                return {"ok": False, "model": was_id, "error": "a reload already waits to run after the one running, and reads the "
                        "files and config as they are then; see /health's model.last_reload for its outcome"}
            self._reload_waiting = True
        self._reloading.acquire()
        with self._reload_queue:
            self._reload_waiting = False
        # the model in use now, which the reload this one waited for may have replaced: the one asked about earlier was
        # closed again (or a caller's given Inspector closed), and the one it had loaded left open
        was = self.inspector
        was_id = was.engine.meta.model_id if was is not None else None
        if self.halt.is_set():
            self._reloading.release()
            return {"ok": False, "model": was_id, "error": "the station is stopping"}
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.reloads += 1
        number, started, new = self.reloads, utc_now(), None  # `inspector reload` waits for an outcome begun after its signal
        try:
            section, later = self._reread_model_section()
            new, files, stamp = self._load(section)
            width, height = new.engine.meta.framing.least_frame()  # a framed model refuses a frame without its region
            new.inspect(np.full((height, width, 3), 128, np.uint8))  # a model that cannot run must not replace one that can
            verified = verify(new, section.verify_good, section.verify_defect)  # nor one that misjudges a known part
        except Exception as exc:  # noqa: BLE001 - a reload must never take the station down
            if new is not None:
                new.close()
            reason = str(exc) if isinstance(exc, InspectorError) else f"{type(exc).__name__}: {exc}"
            log.error("reload failed; parts go on with model %s: %s", was_id, reason)
            self.last_reload = {"ok": False, "number": number, "started_at": started, "at": utc_now(), "error": reason}
            self.metrics.inc("inspector_model_reloads_total", {"outcome": "failed"})
            return {**self.last_reload, "model": was_id}
        else:
            with self._model_lock:
                if self.halt.is_set():  # stopping: the engine in use was, or will be, closed by the stop
                    new.close()
                    return {"ok": False, "model": was_id, "error": "the station is stopping"}
                self.inference.swap(new, section.batch_size)
                self.inspector, owned, self._owns_engine = new, self._owns_engine, True
                self._model_files, (self._model_stamp, self._model_digest), self.loaded_at, self.verified = files, stamp, utc_now(), verified
                self.cfg = self.cfg.model_copy(update={"model": section})
            if owned:
                was.close()
            now, before = in_use(new), in_use(was)
            overridden = self._threshold_override()
            # the id is the checkpoint's weights for the checkpoint and each of its exports: the path and runtime tell
            # an FP32 checkpoint from its INT8 export, and a pixel threshold's change is one too
            log.info("reloaded: model %s %s from %s, image threshold %.4g, pixel threshold %.4g (was %s %s from %s, %.4g, %.4g)%s%s",
                     *now.values(), *before.values(), f"; {', '.join(later)} changed and take effect at the next start" if later else "",
                     f"; {overridden}" if overridden else "")
            self.last_reload = {"ok": True, "number": number, "started_at": started, "at": self.loaded_at, **now, **({"restart_needed_for": later} if later else {}),
                                **({"threshold_override": overridden} if overridden else {})}
            self.metrics.inc("inspector_model_reloads_total", {"outcome": "ok"})
            return {**self.last_reload, "was": was_id, "previous": before}
        finally:
            if not self.halt.is_set():  # STOPPING=1 may have been sent meanwhile
                sd_notify("READY=1")
            self._reloading.release()

    def _reread_model_section(self) -> tuple[ModelSection, list[str]]:
        """The config file's model section as a reload applies it, and what else changed there (applied at the next start)."""
        if self.config_path is None:
            return self.cfg.model, []
        new = load_config(self.config_path)
        later = [name for name in StationConfig.model_fields if name != "model" and getattr(new, name) != getattr(self.cfg, name)]
        later += [f"model.{k}" for k in RESTART_AT_START if getattr(new.model, k) != getattr(self.cfg.model, k)]
        return new.model.model_copy(update={k: getattr(self.cfg.model, k) for k in RESTART_AT_START}), later

    # -- watchdog ---------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        wd, said = self.cfg.watchdog, None
        while not self.halt.wait(wd.interval_s):
            try:
                self.check()
                said = None
            except Exception as exc:  # noqa: BLE001 - e.g. the store's counts on a disk error: raised, it ended the watchdog for
                # good (no dead worker restarted, no status, and outside systemd nothing said so); a failing check withholds the ping
                why = f"{type(exc).__name__}: {exc}"
                if why != said:
                    log.exception("watchdog: its check failed; trying again at each check")
                said, self.problems = why, [f"the watchdog's check failed ({why})"]
            if not self.problems:
                sd_notify("WATCHDOG=1")  # withheld while failing, so systemd restarts a stuck process

    def check(self) -> list[str]:
        """Restart dead workers, replace a silent source, list what is stuck."""
        now, stall, problems = time.monotonic(), self.cfg.watchdog.stall_s, []
        for w in self.workers.values():
            if w.stop.is_set():
                continue
            if not w.alive:  # restarted, so not a problem (that withholds the watchdog ping): degraded for a while
                log.error("watchdog: worker %s died; restarting it", w.name)
                w.restarts, w.restarted_at = w.restarts + 1, now
                self.metrics.inc("inspector_worker_restarts_total", {"worker": w.name})
                w.start()
            elif now - w.heartbeat > stall:
                problems.append(f"{w.name} silent for {now - w.heartbeat:.0f} s")
        src = self.source
        silent = src is not None and getattr(src, "_thread", None) is not None and src.state not in ("finished", "stopped") \
            and now - src.heartbeat > stall
        if (silent or self._reopen_failed is not None) and not self.halt.is_set():
            if silent:
                log.error("watchdog: source %s silent for %.0f s; replacing it", src.name, now - src.heartbeat)
                threading.Thread(target=src.stop, daemon=True).start()  # it may hang: do not wait on it
            try:
                self._replace_source()
                self._reopen_failed = None
            except InspectorError as exc:  # e.g. its folder or video gone: raised, it ended the watchdog for good
                if self._reopen_failed != str(exc):
                    log.error("watchdog: %s; trying again at each check (the status is degraded meanwhile)", exc)
                self._reopen_failed = str(exc)
        self.problems = problems
        self._status_unread()
        self._gauges()
        if self.mqtt is not None and self.mqtt.connected:
            self._publish_status()
        return problems

    def _status_unread(self) -> None:
        """Said once: the broker never sent this station its own status back, so it would not send another station's either
        (an ACL that lets the station write its status but not read it); a second station on the prefix goes unnoticed."""
        if self.mqtt is None or self.mqtt.watch is None or self._status_heard or self._status_unread_said or self._status_first is None:
            return
        if time.monotonic() - self._status_first > STATUS_HEARD_S:
            self._status_unread_said = True
            log.warning("%s: the broker does not let this station read its own status (%s s after publishing it, nothing came "
                        "back): another station started on the same mqtt.prefix cannot be noticed; let the broker's ACL grant the "
                        "station read on %s", self.mqtt.where, f"{STATUS_HEARD_S:g}", self.topics.status)

    def _replace_source(self) -> None:
        with self._source_lock:  # a source started after the stop took the old one would never be stopped
            if self.halt.is_set():
                return
            source = open_source(self.cfg.source, self.source)
            self.source = self.intake.source = source
            self._answer_set_aside(source)
            source.start(self.intake.submit)
        self.metrics.inc("inspector_worker_restarts_total", {"worker": "source"})

    # -- stop -------------------------------------------------------------------------------------------------
    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            if time.monotonic() >= deadline or self.hurry.is_set():
                return False
            time.sleep(0.02)
        return True

    def shutdown(self) -> None:
        """Ordered stop: source, intake, drain inference and sink, broker acks, `offline`, disconnect; the store and
        its lock are let go whatever fails on the way."""
        try:
            self._stop_parts()
        finally:
            self._close_store()

    def _stop_parts(self) -> None:
        self.halt.set()
        sd_notify("STOPPING=1")
        deadline = time.monotonic() + self.cfg.daemon.drain_timeout_s
        with self._source_lock:
            source = self.source
        if source is not None:
            source.stop()
        if "intake" in self.workers:
            self.workers["intake"].join(5)
            # unfinished_tasks: queued or being worked on (task_done comes after the hand-over)
            drained = self._wait(lambda: self.jobs.unfinished_tasks == 0 and self.results.unfinished_tasks == 0, deadline)
            if self.hurry.is_set():
                log.warning("asked again to stop: not waiting for the rest of the accepted work, which stays in the journal "
                            "for the next start")
            self.workers["inference"].join(5)
            if not drained:
                self.intake.release_unstarted()
            acked = self._wait(lambda: self.outbox.in_flight == 0 or not self.mqtt.connected, min(deadline, time.monotonic() + 5))
            self.workers["sink"].join(5)
            self.outbox.drain_acks()
            left = self.store.counts(records=False)
            how = "complete" if drained else "cut short" if self.hurry.is_set() else "timed out"
            log.info("drained: %s; %d job(s) left in the journal, %d result(s) not yet acknowledged%s", how, left["pending"],
                     left["unpublished"], "" if acked else " (they are re-sent at the next start)")
            self.hooks.stop()
        if self.sparkplug is not None:
            self.sparkplug.stop()
        if self.mqtt is not None:
            with self._status_lock:  # halt is set: no status after this one
                if self.mqtt.connected:
                    self.mqtt.publish(self.topics.status, OFFLINE, qos=1, retain=True, user=self.identity)
            self.mqtt.stop(timeout=2)
        if self.http is not None:
            self.http.stop()
        with self._model_lock:
            # through the Inspector, which waits for a batch still in the engine (a drain that timed out): closed under
            # it, a TensorRT context was freed mid-execution
            if self.inspector is not None and self._owns_engine and not self.inspector.close(timeout=CLOSE_WAIT_S):
                log.warning("the model is still inferring a batch after %.0f s; it is left to the end of the process", CLOSE_WAIT_S)

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()  # and its lock

    def stop(self) -> None:
        self.halt.set()

    def _asked_to_stop(self) -> None:
        """SIGTERM or SIGINT: stop, draining accepted work; asked again while stopping (a second Ctrl-C), stop without
        waiting for it. Nothing is lost either way: what is not done stays in the journal for the next start."""
        (self.hurry if self.halt.is_set() else self.halt).set()

    def _reload_in_background(self) -> None:
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain, stop. Returns the exit code."""
        before: dict[int, Any] = {}
        early: list[bool] = []  # a SIGHUP while starting: the model being loaded may predate the change it was sent for
        if hasattr(signal, "SIGHUP"):  # not on Windows
            # taken before the start: SIGHUP's default ends the process, and `inspector reload` (the unit's ExecReload, or by
            # hand once /health answered) killed a station still loading its model
            before[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self._reload_in_background() if self.ready else early.append(True))
        try:
            self.start()
            before.update({sig: signal.signal(sig, lambda *_: self._asked_to_stop()) for sig in (signal.SIGTERM, signal.SIGINT)})
            if early:
                log.info("reload: asked for while the station started; reloading now")
                self._reload_in_background()
            sd_notify("READY=1")
            while not self.halt.wait(1.0):
                pass
            log.info("stopping: draining accepted work")
            self.shutdown()
        finally:  # a process that goes on (tests, an embedding program) gets its own Ctrl-C back
            for sig, handler in before.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        return 0
