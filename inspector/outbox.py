"""The outbox: publish stored results and mark them published only when the broker acknowledged them.

paho keeps every QoS 1 message it was handed until the broker acknowledges it, across reconnects, so
within one process a result is handed over once. Rows still unacknowledged from an earlier process
(a crash, a kill) are handed over again at start. Consumers drop duplicates by `inspection_id`. A result goes out
with the MQTT 5 correlation data of the input it answers, and a copy to that input's Response Topic, both kept in the
store beside it, re-sent or not; repeats of its `inspection_id` that came while it was inspected (`Repeats`) get a copy
each, with their own.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from typing import Any

from inspector.health import Metrics
from inspector.mqtt import MqttClient, Reply
from inspector.store import Store

log = logging.getLogger(__name__)
REFUSED_RETRY_S = 60.0  # a result the broker refused (e.g. by its ACL) is offered again after this long
# results handed to paho and not yet acknowledged: beyond this, through a long outage, they wait in the store (paho's
# own limit, mqtt.MAX_QUEUED, is higher, so that `online` and error replies still go out after the outage)
MAX_HANDED = 10_000
# refusals remembered before those older than REFUSED_RETRY_S (offered again anyway) are forgotten: resend re-offers the
# oldest results only, so through a broker refusing every result each later one stayed remembered (54 MB a day at 5 parts/s)
REFUSED_KEPT = 10_000
REPEATS_KEPT = 4  # repeats of one inspection_id remembered while it is inspected (each gets its answer); more are refused
REPEAT_IDS_KEPT = 1000  # inspection_ids with repeats remembered at once: a job that never ends in this run must not hold them for good


class Repeats:
    """Where repeats of an inspection_id that came while its job was under way want their answer (intake's thread),
    taken when that job ends (the sink's): acknowledged and dropped before, such a repeat was never answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[Reply | None]] = {}

    def add(self, inspection_id: str, reply: Reply | None) -> bool:
        """Remember a repeat; False (not remembered) beyond REPEATS_KEPT for the id or REPEAT_IDS_KEPT ids."""
        with self._lock:
            waiting = self._by_id.get(inspection_id)
            if len(waiting) >= REPEATS_KEPT if waiting is not None else len(self._by_id) >= REPEAT_IDS_KEPT:
                return False
            self._by_id.setdefault(inspection_id, []).append(reply)
            return True

    def drop(self, inspection_id: str, reply: Reply | None) -> bool:
        """Forget one remembered repeat; False if it was taken already (and so answered)."""
        with self._lock:
            waiting = self._by_id.get(inspection_id, [])
            if reply not in waiting:
                return False
            waiting.remove(reply)
            if not waiting:
                del self._by_id[inspection_id]
            return True

    def take(self, inspection_id: str) -> list[Reply | None]:
        """The remembered repeats of an id, forgotten here: each is answered once, by whoever takes it."""
        with self._lock:
            return self._by_id.pop(inspection_id, [])


class Outbox:
    def __init__(self, store: Store, mqtt: MqttClient, topic: str, metrics: Metrics, repeats: Repeats | None = None) -> None:
        self.store, self.mqtt, self.topic, self.metrics = store, mqtt, topic, metrics
        self.repeats = repeats if repeats is not None else Repeats()
        self._lock = threading.Lock()
        self._by_mid: dict[int, tuple[str, float]] = {}  # mid -> (inspection_id, handed over at)
        self._handed: set[str] = set()  # ids paho holds in this process
        self._refused: dict[str, float] = {}  # id -> when the broker last refused it (retried after REFUSED_RETRY_S)
        self.refusal: tuple[str, float] | None = None  # the broker's last reason for refusing a result, and when
        # acknowledged by the broker, not yet marked so in the store (a full disk): not re-sent every 2 s meanwhile
        self._unmarked: set[str] = set()

    def publish(self, record: dict[str, Any], reply: Reply | None = None) -> bool:
        """Hand a stored record to paho (sent now, or after the next reconnect), and a copy for each repeat of its id
        waiting in `repeats`. While MAX_HANDED wait for the broker (or paho takes no more) it stays in the store only
        (the repeats wait with it), and `resend` hands it over later. Returns whether it was handed over."""
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        ident = record["inspection_id"]
        with self._lock:  # held across publish: an ack must not arrive before its mid is known
            if len(self._by_mid) >= MAX_HANDED or not self._hand(ident, payload, reply):
                return False
            for again in self.repeats.take(ident):  # tracked as the first is: a stop waits for their acks too
                self._hand(ident, payload, again)
        return True

    def _hand(self, ident: str, payload: str, reply: Reply | None) -> bool:
        mid = self.mqtt.publish(self.topic, payload, qos=1, reply=reply)
        if mid is None:
            return False
        self._by_mid[mid] = (ident, time.monotonic())
        self._handed.add(ident)
        return True

    def drain_acks(self) -> int:
        """Mark what the broker acknowledged as published, and let go of what it refused, to be retried (call
        from the store's writer thread)."""
        self._drain_refusals()
        for ident in list(self._unmarked):
            if not self._mark(ident):
                break
        n = 0
        while True:
            try:
                mid = self.mqtt.acks.get_nowait()
            except queue.Empty:
                return n
            entry = self._release(mid)
            if entry is not None:  # acks of status/error messages carry mids we did not track
                self._refused.pop(entry[0], None)
                self._mark(entry[0])
                self.metrics.inc("inspector_published_total")
                self.metrics.observe("inspector_stage_seconds", time.monotonic() - entry[1], {"stage": "publish"})
                n += 1

    def _mark(self, ident: str) -> bool:
        try:
            self.store.mark_published(ident)
        except (OSError, sqlite3.Error) as exc:
            if not self._unmarked:
                log.error("outbox: cannot mark results as published (%s); they are not sent again meanwhile", exc)
            self._unmarked.add(ident)
            return False
        self._unmarked.discard(ident)
        return True

    def _release(self, mid: int) -> tuple[str, float] | None:
        with self._lock:
            entry = self._by_mid.pop(mid, None)
            if entry is not None:
                self._handed.discard(entry[0])
        return entry

    def _drain_refusals(self) -> None:
        # a refused result was held as handed over for good: never re-sent, never let go, and /health said ok
        while True:
            try:
                mid, reason = self.mqtt.refused.get_nowait()
            except queue.Empty:
                return
            entry = self._release(mid)
            if entry is not None:
                now = time.monotonic()
                self._refused[entry[0]] = now
                self.refusal = (reason, now)
                self.metrics.inc("inspector_publish_refused_total")

    def resend(self, limit: int = 1000) -> int:
        """Hand over stored results that no publish in this process covers (left by an earlier run, refused by the
        broker more than REFUSED_RETRY_S ago, or kept back while MAX_HANDED waited)."""
        n, now = 0, time.monotonic()
        for record, reply in self.store.unpublished(limit):
            refused = self._refused.get(record["inspection_id"])
            if record["inspection_id"] in self._handed or record["inspection_id"] in self._unmarked \
                    or (refused is not None and now - refused < REFUSED_RETRY_S):
                continue
            self._refused.pop(record["inspection_id"], None)
            record.pop("published_at", None)
            # counted only if handed over: kept back (MAX_HANDED waiting), it was logged as re-sent every 2 s
            n += self.publish(record, reply)
        if len(self._refused) > REFUSED_KEPT:
            self._refused = {i: t for i, t in self._refused.items() if now - t < REFUSED_RETRY_S}
        if n:
            log.info("outbox: re-sending %d stored result(s) the broker had not acknowledged", n)
        return n

    def refusing(self) -> str | None:
        """The broker's reason, while it refused a result within the last REFUSED_RETRY_S (for /health)."""
        if self.refusal is not None and time.monotonic() - self.refusal[1] < REFUSED_RETRY_S:
            return self.refusal[0]
        return None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._by_mid)
