"""Inference (owns the engine, batches what queued up) and the sink (decision record -> store -> publish).

The sink is the store's single writer: a result is written (images, then the row, which also clears the
job from the journal) before it is handed to the outbox, and it marks results published as the broker
acknowledges them.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.api import Inspector
from inspector.config import StationConfig
from inspector.health import Metrics, StoreTrouble
from inspector.hooks import ReportHooks
from inspector.intake import Job, set_aside
from inspector.live import LiveView
from inspector.outbox import Outbox
from inspector.result import InspectionResult, error_payload
from inspector.store import REFUSED_DIR, Store
from model.errors import InspectorError

log = logging.getLogger(__name__)

STORE_RETRY_S = 5.0  # a result the store refused is offered to it again after this long
LIVE_REFUSALS_KEPT, LIVE_REFUSAL_WINDOW_S = 10, 60.0  # refused live frames set aside (image kept, error said) a minute
# the newest results held in memory for that (each holds its frame and map): at most this many, and this many bytes
# (the newest is always held); older ones wait in the journal for the next start
UNSTORED_KEPT, UNSTORED_BYTES = 32, 512 * 2**20
STORE_ERRORS = (InspectorError, OSError, sqlite3.Error)  # a full disk, a broken store: the job stays journaled


class Inference:
    """One `step()`: take a job, plus whatever else is waiting (up to batch_size), inspect them together."""

    def __init__(self, inspector: Inspector, jobs: queue.Queue[Job], results: queue.Queue, batch_size: int, metrics: Metrics,
                 store: Store | None = None) -> None:
        self.inspector, self.jobs, self.results, self.batch_size, self.metrics = inspector, jobs, results, batch_size, metrics
        self.store = store  # counts the recovery attempts of recovered jobs as their batch starts
        self._lock = threading.Lock()  # held over a batch, so a reloaded model is swapped in between batches

    def swap(self, inspector: Inspector, batch_size: int) -> None:
        with self._lock:
            self.inspector, self.batch_size = inspector, batch_size

    def step(self, timeout: float = 0.5) -> None:
        try:
            batch = [self.jobs.get(timeout=timeout)]
        except queue.Empty:
            return
        while len(batch) < self.batch_size:
            try:
                batch.append(self.jobs.get_nowait())
            except queue.Empty:
                break
        # a job that was in a batch when the daemon died runs alone: batched, the one that kills the process took the
        # others' attempts with it each time, and all were given up together
        together = [job for job in batch if not job.attempts]
        for run in ([together] if together else []) + [[job] for job in batch if job.attempts]:
            self._run(run)

    def _run(self, batch: list[Job]) -> None:
        t0 = time.monotonic()
        for job in batch:
            job.started = t0
            self.metrics.observe("inspector_stage_seconds", t0 - job.accepted, {"stage": "queue"})
        self.metrics.observe("inspector_batch_size", len(batch))
        self._count_attempts([job.inspection_id for job in batch if job.recovered])
        with self._lock:
            outcomes = self._inspect(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            self.results.put((job, outcome))  # bounded: a slow store slows inference, which fills the intake queue
            self.jobs.task_done()  # counted only once its result is on the way: shutdown drains by these counts
        self.metrics.observe("inspector_stage_seconds", time.monotonic() - t0, {"stage": "inference"})

    def _count_attempts(self, recovered: list[str]) -> None:
        """An attempt is counted as its batch starts, not as its job is queued: three starts stopped by a crash before
        a backlog ran (a restart loop, a driver failing at start) gave up parts that had never run."""
        if not recovered or self.store is None:
            return
        try:
            self.store.count_attempts(recovered)
        except STORE_ERRORS as exc:  # inspected uncounted rather than not at all
            log.error("store: cannot count the recovery attempts of %s (%s); inspecting them uncounted", ", ".join(recovered), exc)

    def _inspect(self, batch: list[Job]) -> list[InspectionResult | str]:
        """Results in order; a job that cannot be inspected gets its error text instead (the others still run)."""
        if len(batch) > 1:
            try:
                return self.inspector.inspect_batch([j.rgb for j in batch], serials=[j.serial for j in batch],
                                                    sources=[j.source for j in batch], ids=[j.inspection_id for j in batch])
            except Exception:  # each job is run again alone below, which says what broke
                pass
        return [self._inspect_one(job) for job in batch]  # a single job, or isolating the one that broke the batch

    def _inspect_one(self, job: Job) -> InspectionResult | str:
        try:
            return self.inspector.inspect_batch([job.rgb], serials=[job.serial], sources=[job.source], ids=[job.inspection_id])[0]
        except InspectorError as exc:  # e.g. a frame that does not contain the model's region of interest
            return str(exc)
        except Exception:
            log.exception("inference failed for %s", job.inspection_id)
            return f"inspection failed on {job.source}; see the daemon log"


class LiveRefusals:
    """How many refused frames of a live source in continuous mode are set aside (image kept, error published): a camera
    whose frames the model cannot take (a changed resolution, an empty belt with `--locate`) wrote two files and an error
    for each of 30 frames a second. Beyond LIVE_REFUSALS_KEPT a minute, they are dropped, counted, and said once."""

    def __init__(self) -> None:
        self._kept: collections.deque[float] = collections.deque()
        self._dropped = 0

    def keep(self) -> bool:
        now = time.monotonic()
        while self._kept and now - self._kept[0] > LIVE_REFUSAL_WINDOW_S:
            self._kept.popleft()
        if len(self._kept) >= LIVE_REFUSALS_KEPT:
            if not self._dropped:
                log.warning("more than %d live frames a minute are refused; the rest are dropped unkept until fewer are "
                            "(inspector_frames_dropped_total{reason=\"refused\"})", LIVE_REFUSALS_KEPT)
            self._dropped += 1
            return False
        self._kept.append(now)
        return True

    def dropped_note(self) -> str:
        """For the next error kept: how many were dropped since the last (then forgotten)."""
        n, self._dropped = self._dropped, 0
        return f" ({n} more live frames refused since the last one said were dropped, not kept)" if n else ""


CLOCK_NOT_SET = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()  # earlier, a box's clock was never set (no RTC battery)


class RetentionClock:
    """The time retention measures ages at: the wall clock, but never ahead of the start time plus the time elapsed
    since (monotonic). A clock stepped a year ahead while the station runs (a hand edit, a bad time server) would
    otherwise make every stored record look a year old and delete it. The start time is the wall clock's, or the
    newest stored record's where that is later (`floor`): a box without an RTC battery starts on a stale clock, which
    NTP then steps forward to the right time, and measured from the stale start nothing was ever deleted by age."""

    WARN_S = 600.0  # a lead beyond this is said once per further jump; NTP's slewing drifts seconds a day at most

    def __init__(self, wall: Callable[[], float] = time.time, steady: Callable[[], float] = time.monotonic,
                 floor: float | None = None) -> None:
        self._wall, self._steady = wall, steady
        self._start_wall, self._start_steady = max(wall(), floor or 0.0), steady()
        if floor is not None and floor > wall() + self.WARN_S:
            log.warning("retention: the clock reads %.0f s earlier than the newest stored record; ages are counted from "
                        "that record's time (a clock not yet set: check it, timedatectl)", floor - wall())
        elif wall() < CLOCK_NOT_SET:  # a fresh store: nothing else would say that every part is stamped 1970
            log.warning("the clock reads %s, before this inspector was written: parts are stamped with that time until it "
                        "is set (check it, timedatectl, NTP)", datetime.fromtimestamp(wall(), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"))
        self._said = 0.0  # the lead last warned of

    def now(self) -> float:
        wall, elapsed = self._wall(), self._steady() - self._start_steady
        kept = self._start_wall + elapsed
        lead = wall - kept
        if lead > self._said + self.WARN_S:
            self._said = lead
            log.warning("retention: the wall clock is %.0f s ahead of the time elapsed since the station started (a clock "
                        "stepped forward); ages are counted from the start time until the station restarts, so nothing "
                        "is deleted early - check the clock (timedatectl)", lead)
        return min(wall, kept)


class Sink:
    """One `step()`: store and publish one result; between results, process broker acks, the outbox and retention."""

    def __init__(self, cfg: StationConfig, store: Store, results: queue.Queue, outbox: Outbox, metrics: Metrics, hooks: ReportHooks,
                 publish: Callable[..., Any], error_topic: str, sparkplug: Any = None, trouble: StoreTrouble | None = None,
                 live: LiveView | None = None, release: Callable[[Job], None] | None = None) -> None:
        self.cfg, self.store, self.results, self.outbox, self.metrics, self.hooks = cfg, store, results, outbox, metrics, hooks
        self.live = live
        self._release = release  # the jobs queue's (JobQueue.release): a job's frame no longer counts once the sink is done with it
        self.trouble = trouble or StoreTrouble()
        self._publish, self.error_topic, self.sparkplug = publish, error_topic, sparkplug
        self._next_resend = 0.0
        self._next_prune = time.monotonic() + 60.0  # not in the middle of start-up
        self._pruned = 0  # records deleted in this retention pass so far (it runs a chunk per step)
        try:
            newest = store.newest_time()
        except STORE_ERRORS as exc:  # counted from the wall clock then; the store's trouble is said where it is written
            log.error("retention: cannot read the newest record's time (%s); ages are counted from the clock's", exc)
            newest = None
        self.retention_clock = RetentionClock(floor=newest.timestamp() if newest else None)
        self._last_warnings: tuple[str, ...] = ()  # the last part's: a part may carry two, each logged once per change
        self._next_disk_check = 0.0
        self._unstored: dict[str, tuple[Job, InspectionResult]] = {}  # oldest first
        self.live_refusals = LiveRefusals()
        self._next_store_retry = 0.0
        self.disk_free_mb: int | None = None
        self.disk_low = False  # below store.min_free_mb: images are not saved, so that results still can be
        self.images_failed: str | None = None  # why image files could not be written with room on the disk (another disk, permissions)
        self._next_image_try = 0.0

    def step(self, timeout: float = 0.2) -> None:
        try:
            job, outcome = self.results.get(timeout=timeout)
        except queue.Empty:
            job = None
        if job is not None:
            try:
                if isinstance(outcome, str):
                    if job.live and not self.live_refusals.keep():
                        self.store.drop_pending(job.inspection_id)
                        self.metrics.inc("inspector_frames_dropped_total", {"reason": "refused"})
                    else:
                        self.metrics.inc("inspector_rejected_total", {"reason": "inspection_failed"})
                        self._error(set_aside(self.store, job.inspection_id, outcome + (self.live_refusals.dropped_note() if job.live else "")), job, ended=True)
                    if job.refused:
                        job.refused()
                else:
                    self.handle(job, outcome)
                    self.trouble.error = None  # the store takes writes again
            except STORE_ERRORS as exc:
                log.error("cannot store the result of %s (%s); it is tried again while it stays in the journal", job.inspection_id, exc)
                text = f"result of {job.inspection_id} could not be stored ({exc}); it is tried again every {STORE_RETRY_S:g} s" \
                       " and at the next start, and published once stored"
                self.trouble.failed(text, job.inspection_id)
                self.metrics.inc("inspector_store_failures_total")
                self._error(text, job)
                if not isinstance(outcome, str):
                    self._hold(job, outcome)
                if job.recovered:  # the store failed, the daemon did not: three such starts gave the part up, and lost it
                    try:
                        self.store.uncount_attempts([job.inspection_id])
                    except (OSError, sqlite3.Error) as again:  # said, so that a part given up later can be explained
                        log.error("cannot take back the recovery attempt of %s (%s)", job.inspection_id, again)
            finally:
                if self._release is not None:  # stored, answered, held for the store (its own bound) or failed: done here
                    self._release(job)
                self.results.task_done()
        self.outbox.drain_acks()
        self._store_again()
        self._room_for_images()  # every 5 s between parts too: /health read ok on a full disk until a part came
        now = time.monotonic()
        if now >= self._next_resend and self.outbox.mqtt.connected:
            self._next_resend = now + 2.0
            self.outbox.resend()
        if now >= self._next_prune:
            self._next_prune = now + self.cfg.store.retention.every_s  # first: a chunk that fails is retried then, not at once
            if self.prune_chunk():  # one chunk per step, so results keep being stored and published through a long pass
                self._next_prune = now

    def _hold(self, job: Job, result: InspectionResult) -> None:
        self._unstored[job.inspection_id] = (job, result)
        self._next_store_retry = time.monotonic() + STORE_RETRY_S
        held = lambda: sum(j.rgb.nbytes + r.anomaly_map.nbytes for j, r in self._unstored.values())  # noqa: E731
        while len(self._unstored) > 1 and (len(self._unstored) > UNSTORED_KEPT or held() > UNSTORED_BYTES):
            del self._unstored[next(iter(self._unstored))]

    def _store_again(self) -> None:
        """Results the store refused are offered again every STORE_RETRY_S, oldest first: a disk with room again gives the
        line their verdicts now, not at the next start."""
        if not self._unstored or time.monotonic() < self._next_store_retry:
            return
        self._next_store_retry = time.monotonic() + STORE_RETRY_S
        while self._unstored:
            ident, (job, result) = next(iter(self._unstored.items()))
            try:
                self.handle(job, result)
            except STORE_ERRORS:
                return  # still refused: the next try in STORE_RETRY_S
            del self._unstored[ident]
            self.trouble.stored(ident)
            log.info("stored the result of %s, which the store had refused", ident)

    def _error(self, text: str, job: Job, ended: bool = False) -> None:
        """`text` on the error topic for `job`; `ended`: the job ends here without a result, so the repeats of its id
        that came meanwhile get the same answer."""
        log.warning("not inspected: %s (%s)", job.inspection_id, text)  # in the log too, as rejections at intake are
        payload = error_payload(text, job.source, job.inspection_id, job.serial)
        for reply in (job.reply, *(self.outbox.repeats.take(job.inspection_id) if ended else ())):
            self._publish(self.error_topic, payload, reply=reply)

    def _wanted(self, policy: str, verdict: str) -> bool:
        return policy == "all" or (policy == "fail" and verdict == "FAIL")

    def handle(self, job: Job, result: InspectionResult) -> dict[str, Any]:
        t0 = time.monotonic()
        record = result.to_record()
        if job.timestamp:  # the part's time (captured, arrived), not the inference's: a queue or a restart comes between
            record["timestamp"] = job.timestamp
        record["timings_ms"]["intake"] = round((job.accepted - job.received) * 1000, 3)
        record["timings_ms"]["queue"] = round((job.started - job.accepted) * 1000, 3)
        sc = self.cfg.store
        room, named = self._room_for_images(), dict(record["images"])
        try:
            with self.store.images_together():  # the image's fsync runs while the overlay is drawn, then all at once
                if room and self._wanted(sc.save_images, result.verdict):
                    room = self._save_image(record, "image", job.rgb)
                if room and self._wanted(sc.save_overlays, result.verdict):
                    room = self._save_image(record, "overlay", result.overlay(job.rgb))
        except OSError as exc:  # not known to be on the disk, and removed: the record names none of them
            record["images"], room = named, self._images_failed(exc)
        if room and record["images"] != named and self.images_failed is not None:  # all it tried saved
            log.info("store %s: images and overlays are saved again", self.store.root)
            self.images_failed = None
        if not room and (self._wanted(sc.save_images, result.verdict) or self._wanted(sc.save_overlays, result.verdict)):
            self.metrics.inc("inspector_images_skipped_total")
        record["timings_ms"]["total"] = round((time.monotonic() - job.received) * 1000, 3)
        if links := self.hooks.report_links(record):
            record["reports"] = links
        self.store.add(record, reply=job.reply)  # before publishing: the row is the truth, the outbox resends from it
        t1 = time.monotonic()
        self.metrics.observe("inspector_stage_seconds", t1 - t0, {"stage": "store"})
        # counted, logged and on the live view before the line hears of it (microseconds): a PLC that read /health, the
        # log or the page on a result saw the part missing there (the demo saved a live view one part short)
        self.metrics.inc("inspector_verdicts_total", {"verdict": result.verdict})
        margin = result.score - result.threshold
        if math.isfinite(margin):  # a NaN score FAILs with no margin to show
            self.metrics.observe("inspector_score_margin", margin, {"verdict": result.verdict})
        self.metrics.observe("inspector_stage_seconds", t1 - job.received, {"stage": "total"})
        # a line a part: at the terminal or in journalctl, a station that inspects said nothing until it stopped
        kind = f", {result.defect_type}" if result.verdict == "FAIL" and getattr(result, "defect_type", None) else ""
        log.info("%s %s (%s, %s): score %.4g, threshold %.4g, %d region(s)%s%s", result.verdict, job.serial or "-", job.inspection_id,
                 job.source, result.score, result.threshold, result.found, kind,
                 f", {len(result.warnings)} warning(s)" if result.warnings else "")
        for warning, kind in zip(result.warnings, record.get("warning_kinds", []), strict=True):
            self.metrics.inc("inspector_warnings_total", {"kind": kind})
            if warning not in self._last_warnings:  # in the log once per change, not once per part
                log.warning("%s (%s; further ones are counted in inspector_warnings_total)", warning, job.inspection_id)
        if result.warnings:
            self._last_warnings = tuple(result.warnings)
        if self.live is not None:
            self.live.add(job.rgb, result, record)
        self.outbox.publish(record, job.reply)
        if self.sparkplug is not None:
            self.sparkplug.publish_result(record)
        if result.verdict == "FAIL":
            self.hooks.fail(record)
        return record

    @property
    def images_off(self) -> str | None:
        """Why images and overlays are not saved now, if they are not."""
        if self.disk_low:
            return f"not saved (free space below store.min_free_mb, {self.cfg.store.min_free_mb} MB)"
        return f"not saved ({self.images_failed})" if self.images_failed else None

    def _save_image(self, record: dict[str, Any], kind: str, rgb: Any) -> bool:
        """Save one of a record's images; False if it could not be (a full image folder, which may be another disk than
        the store's: it failed the result, and the part's verdict waited for a restart), and none for 5 s then."""
        try:
            record["images"][kind] = self.store.save_image(record, kind, rgb)
        except (InspectorError, OSError) as exc:
            return self._images_failed(exc)
        return True

    def _images_failed(self, exc: Exception) -> bool:
        """Say why images cannot be written (once, not at every try); none are tried for 5 s then. False, as `room`."""
        if self.images_failed is None:
            log.error("store %s: %s; results are stored without images and overlays until they can be written", self.store.root, exc)
        self.images_failed, self._next_image_try = str(exc), time.monotonic() + 5.0
        return False

    def _room_for_images(self) -> bool:
        """False while the store's disk has less than store.min_free_mb free (checked every 5 s): a full disk
        would refuse the results themselves, so their images give way first."""
        now = time.monotonic()
        if now >= self._next_disk_check:
            self._next_disk_check = now + 5.0
            try:
                self.disk_free_mb = shutil.disk_usage(self.store.root).free // 2**20
            except OSError:
                self.disk_free_mb = None
            if self.disk_free_mb is not None and (low := self.disk_free_mb < self.cfg.store.min_free_mb) != self.disk_low:
                (log.error if low else log.info)("store %s: %d MB free, %s store.min_free_mb (%d MB); images and overlays are %s",
                                                 self.store.root, self.disk_free_mb, "below" if low else "back above",
                                                 self.cfg.store.min_free_mb, "not saved" if low else "saved again")
                self.disk_low = low
        return not self.disk_low and (self.images_failed is None or now >= self._next_image_try)

    def prune_chunk(self) -> int:
        """One chunk of the retention pass (Store.prune); when a pass ends, old reports go too and the total is logged."""
        r = self.cfg.store.retention
        if r.max_age_days is None and r.max_rows is None:
            return 0
        now = self.retention_clock.now()
        n = self.store.prune(r.max_age_days, r.max_rows, now=datetime.fromtimestamp(now, timezone.utc))
        self._pruned += n
        if not n:
            old = (prune_files(self.hooks.out_dir, r.max_age_days, now), prune_files(self.store.root / REFUSED_DIR, r.max_age_days, now)) \
                if r.max_age_days is not None else (0, 0)
            if self._pruned or any(old):
                log.info("retention: deleted %d published record(s) with their images, %d report file(s) and %d file(s) of refused inputs",
                         self._pruned, *old)
            self._pruned = 0
        return n

    def prune(self) -> int:
        """A whole retention pass at once (the daemon runs it a chunk per step instead)."""
        total = 0
        while n := self.prune_chunk():
            total += n
        return total


def prune_files(folder: Path, max_age_days: float, now: float | None = None) -> int:
    """Delete files under `folder` last written more than max_age_days before `now` (default: the wall clock), and the
    folders that leaves empty."""
    cutoff, n = (time.time() if now is None else now) - max_age_days * 86400.0, 0
    for here, _, files in os.walk(folder, topdown=False):
        for name in files:
            p = Path(here) / name
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except OSError:
                continue
        if Path(here) != folder:
            try:
                Path(here).rmdir()  # only when empty
            except OSError:
                pass
    return n
