"""Report hooks: an inspection report per FAIL and a shift report on command, rendered off the result path.

The callables are pluggable (`on_fail(record)`, `on_shift_report(records, meta)`); by default they call the
`reports` package, imported lazily so a station without it still inspects (it is logged once). Rendering
(a PDF takes about a second) runs on this worker's thread; when its queue is full a FAIL report waits aside and is
rendered when none is queued. At start the worker looks for the FAIL records of the last day whose linked reports are
missing (a crash or a kill lost its queue) and renders them the same way.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from inspector.config import StationConfig, zone_of
from inspector.intake import ShiftReportCommand
from inspector.result import Reply, error_payload, iso_utc, utc_now
from inspector.store import Store

log = logging.getLogger(__name__)

FAILED_SHOWN_S = 3600.0  # a failed report keeps /health degraded this long, unless one succeeds first
MISSING_WITHIN = timedelta(days=1)  # at start, the FAIL records of this last day (part time) whose reports are missing
MISSING_MOST = 500  # ... the newest this many of them, and at most this many reports waiting aside in all, are rendered

OnFail = Callable[[dict[str, Any]], Any]
OnShift = Callable[[list[dict[str, Any]], dict[str, Any]], Any]


class ReportHooks:
    def __init__(self, cfg: StationConfig, store: Store, publish: Callable[..., Any], report_topic: str, error_topic: str,
                 on_fail: OnFail | None = None, on_shift_report: OnShift | None = None) -> None:
        self.cfg, self.store, self._publish = cfg, store, publish
        self.report_topic, self.error_topic = report_topic, error_topic
        self.out_dir = Path(cfg.store.data_dir) / "reports"
        self._zone = zone_of(cfg.reports.timezone)
        if "pdf" in cfg.reports.formats and (cfg.reports.on_fail or on_shift_report is None):
            self._check_pdf()
        self._reports_checked = False
        self._reports: Any = None
        self.on_fail = on_fail if on_fail is not None else (self._default_fail if cfg.reports.on_fail else None)
        self.on_shift_report = on_shift_report if on_shift_report is not None else self._default_shift
        self.skipped = 0
        self.failed = 0  # reports that could not be rendered or written (e.g. a full disk): on /health, not only in the log
        self.last_error: str | None = None  # the last one's reason, until a report succeeds again
        self._failed_at = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=256)
        # ids of FAIL records whose reports are missing (found at start, or skipped while the queue was full), rendered
        # when no other report waits: their records are in the store, so only the ids wait, and only in this process
        self._missing: deque[str] = deque()
        self._started_at = ""
        self._shift_lock = threading.Lock()
        self._shifts_waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reports", daemon=True)

    @staticmethod
    def _check_pdf() -> None:
        """Said at start, not at the first FAIL: every PDF report would fail on this station."""
        try:
            from reports import ReportError
            from reports.render import pdf_renderer
        except ImportError:
            return  # the reports package itself: said when it is first used
        try:
            pdf_renderer()
        except ReportError as exc:
            log.warning("reports: %s; reports.formats asks for pdf, so those reports will fail until it is installed", exc)

    # -- default renderers (the reports package, imported on first use) -----------------------------------
    def _module(self) -> Any:
        if not self._reports_checked:
            self._reports_checked = True
            try:
                import reports

                reports.render_inspection, reports.render_shift  # noqa: B018 (the API this module relies on)
                self._reports = reports
            except (ImportError, AttributeError) as exc:
                log.warning("reports: the reports package is not usable (%s); automatic reports are off", exc)
        return self._reports

    def _fail_folder(self, mod: Any, record: dict[str, Any]) -> Path:
        t = mod.records.parse_time(record.get("timestamp"))
        return self.out_dir / (t.astimezone(self._zone).strftime("%Y-%m-%d") if t else "undated")  # the day on the reports' clock

    def report_links(self, record: dict[str, Any]) -> dict[str, str]:
        """Where this FAIL's report will be written, relative to the store as its image links are: the contract's "links
        to stored images and reports" (a record published before its report is rendered named none). None ({}) for a
        PASS, or for a renderer of the caller's own."""
        mod = self._module() if self.on_fail == self._default_fail and record.get("verdict") == "FAIL" else None
        if mod is None:
            return {}
        name = mod.render.inspection_filename(record["inspection_id"], self.cfg.reports.lang)
        folder = self._fail_folder(mod, record).relative_to(self.store.root)
        return {fmt: (folder / f"{name}.{fmt}").as_posix() for fmt in self.cfg.reports.formats}

    def _default_fail(self, record: dict[str, Any]) -> Any:
        mod = self._module()
        if mod is None:
            return None
        rc = self.cfg.reports
        return mod.render_inspection(record, self._fail_folder(mod, record), rc.formats, rc.lang, store_root=self.store.root,
                                     tz=rc.timezone, letterhead=rc.letterhead)

    def _default_shift(self, records: list[Any], meta: dict[str, Any]) -> Any:  # normalised records (see _shift_report)
        mod = self._module()
        if mod is None:
            raise RuntimeError("the reports package is not available on this station")
        rc = self.cfg.reports
        formats = meta.pop("formats", None) or rc.formats
        lang = meta.pop("lang", None) or rc.lang
        return mod.render_shift(records, meta, self.out_dir / "shifts", formats, lang, store_root=self.store.root, tz=rc.timezone,
                                letterhead=rc.letterhead)

    # -- queueing -------------------------------------------------------------------------------------------
    def fail(self, record: dict[str, Any]) -> None:
        if self.on_fail is None:
            return
        try:
            self._queue.put_nowait(("fail", record, None))
        except queue.Full:
            self.skipped += 1
            if len(self._missing) < MISSING_MOST:  # its record is stored: rendered from there when the queue is empty
                self._missing.append(record["inspection_id"])
                log.warning("reports: busy; the report of %s is rendered once no other waits", record["inspection_id"])
            else:
                log.warning("reports: busy; skipped the report of %s (it is rendered at the next start, if of the last day)",
                            record["inspection_id"])

    def shift(self, cmd: ShiftReportCommand, reply: Reply | None) -> None:
        """Queue a shift report; one waits at most (on the intake's thread, a burst of 400 blocked every part for
        minutes): a further request is answered on the error topic."""
        with self._shift_lock:
            busy = "a shift report is already waiting to be rendered; ask again when its reply comes" if self._shifts_waiting >= 1 else None
            if busy is None:
                try:
                    self._queue.put_nowait(("shift", cmd, reply))
                    self._shifts_waiting += 1
                except queue.Full:  # FAIL reports fill the queue: no shift report waits, and no reply would come
                    busy = (f"the report worker is busy with {self._queue.qsize()} FAIL reports waiting to be rendered; ask again "
                            "in a few minutes")
        if busy is not None:
            self._publish(self.error_topic, error_payload(f"command: {busy}", "command", command="shift_report"), reply=reply)

    def start(self) -> None:
        self._started_at = utc_now()  # records stored from now on come through `fail`; those before, `_find_missing` checks
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def missing(self) -> int:
        """FAIL reports waiting to be rendered from their records (found missing at start, or kept aside when busy)."""
        return len(self._missing)

    @property
    def recent_error(self) -> str | None:
        """The last failure's reason while it is recent: on a line that rarely FAILs, the next report that could show
        the cause gone may be hours away."""
        return self.last_error if self.last_error and time.monotonic() - self._failed_at < FAILED_SHOWN_S else None

    def _unrendered(self, record: dict[str, Any]) -> bool:
        """Whether a FAIL record links reports that are not there, and rendering it now writes them (not where the
        config's language has changed the names since)."""
        links = record.get("reports")
        if not isinstance(links, dict) or not links or not links.items() <= self.report_links(record).items():
            return False
        return any(not (self.store.root / rel).is_file() for rel in links.values())

    def _find_missing(self) -> None:
        """The FAIL records of the last day, stored before this start, whose reports a crash, a kill or a busy queue
        left unrendered, newest first, waiting to be rendered when no other report does. On the worker's thread: a
        station starts without waiting on it."""
        if self.on_fail != self._default_fail or self._module() is None:  # reports of the caller's own, or none: no links
            return
        since = iso_utc(datetime.now(timezone.utc) - MISSING_WITHIN)
        try:
            records = self.store.fails_stored_before(since, self._started_at, self.cfg.station.name, MISSING_MOST)
            ids = [r["inspection_id"] for r in records if self._unrendered(r)]
        except Exception as exc:  # noqa: BLE001 - a report must never take the inspector down
            log.error("reports: cannot look for FAIL reports left unrendered (%s)", exc)
            return
        if ids:
            self._missing.extend(ids)
            log.info("reports: %d FAIL report(s) of the last day are missing (the last run stopped before rendering them); "
                     "rendering them while no other report waits", len(ids))

    def _next(self) -> tuple[str, Any, Reply | None] | None:
        """The next report: a queued one, else one found missing (its record read again: the store has the truth)."""
        try:
            return self._queue.get_nowait() if self._missing else self._queue.get(timeout=0.3)
        except queue.Empty:
            pass
        while self._missing and not self._stop.is_set():
            record = self.store.get(self._missing.popleft())
            if record is not None and self._unrendered(record):
                record.pop("published_at", None)
                return "fail", record, None
        return None

    def _run(self) -> None:
        self._find_missing()
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                if (work := self._next()) is None:
                    continue
            except Exception as exc:  # noqa: BLE001 - the store's read failed: the worker goes on with the queue
                log.error("reports: cannot read a record whose report is missing (%s)", exc)
                continue
            kind, item, reply = work
            try:
                if kind == "fail":
                    self.on_fail(item)
                else:
                    with self._shift_lock:
                        self._shifts_waiting -= 1
                    self._shift_report(item, reply)
                self.last_error = None
            except Exception as exc:  # a report must never take the inspector down
                what = f"{kind} report" + (f" of {item['inspection_id']}" if kind == "fail" else "")
                error = f"{what} failed ({exc})"
                # a known cause (the reports package's own errors, a full disk) is one line: a traceback per part before
                if isinstance(exc, OSError) or type(exc).__module__.startswith("reports."):
                    log.error("reports: %s", error)
                else:
                    log.exception("reports: %s failed", what)
                # counted once said: a reader of the count (/health, a test) finds the log line there
                self.last_error, self._failed_at = error, time.monotonic()
                self.failed += 1
                if kind == "shift":
                    self._publish(self.error_topic, error_payload(f"command: shift report failed ({exc})", "command", command="shift_report"),
                                  reply=reply)

    def _shift_report(self, cmd: ShiftReportCommand, reply: Reply | None) -> None:
        t0 = time.monotonic()  # the reply's seconds include reading the records (half the time at 144,000)
        end = cmd.end or utc_now()  # "so far": named by its end, so the next one does not overwrite it
        rows = self.store.iter_records(cmd.start, end, station=self.cfg.station.name)
        mod = self._module() if self.on_shift_report == self._default_shift else None
        # the built-in renderer takes them normalised, each decoded record let go (at 144,000: 0.9 GB less at the peak)
        records = [mod.records.inspection(r) for r in rows] if mod is not None else list(rows)
        meta = {"station": self.cfg.station.name, "start": cmd.start, "end": end, "title": cmd.shift, "line": self.cfg.station.line,
                "formats": cmd.formats, "lang": cmd.lang, **self.store.unjudged(cmd.start, end, self.cfg.station.name)}
        out = self.on_shift_report(records, meta)
        files = {k: str(v) for k, v in out.items()} if isinstance(out, dict) else {}
        body = {"command": "shift_report", "records": len(records), "not_inspected": meta["not_inspected"]["count"],
                "refused_on_arrival": meta["refused_on_arrival"]["count"], "files": files, "seconds": round(time.monotonic() - t0, 3)}
        self._publish(self.report_topic, json.dumps(body), reply=reply)
