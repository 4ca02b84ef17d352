"""The outbox: publish stored results and mark them published only when the broker acknowledged them.

paho keeps every QoS 1 message it was handed until the broker acknowledges it, across reconnects, so
within one process a result is handed over once. Rows still unacknowledged from an earlier process
(a crash, a kill) are handed over again at start. Consumers drop duplicates by `inspection_id`.
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
from inspector.mqtt import MqttClient
from inspector.store import Store

log = logging.getLogger(__name__)
REFUSED_RETRY_S = 60.0  # a result the broker refused (e.g. by its ACL) is offered again after this long
# results handed to paho and not yet acknowledged: beyond this, through a long outage, they wait in the store (paho's
# own limit, mqtt.MAX_QUEUED, is higher, so that `online` and error replies still go out after the outage)
MAX_HANDED = 10_000


class Outbox:
    def __init__(self, store: Store, mqtt: MqttClient, topic: str, metrics: Metrics) -> None:
        self.store, self.mqtt, self.topic, self.metrics = store, mqtt, topic, metrics
        self._lock = threading.Lock()
        self._by_mid: dict[int, tuple[str, float]] = {}  # mid -> (inspection_id, handed over at)
        self._handed: set[str] = set()  # ids paho holds in this process
        self._refused: dict[str, float] = {}  # id -> when the broker last refused it (retried after REFUSED_RETRY_S)
        self.refusal: tuple[str, float] | None = None  # the broker's last reason for refusing a result, and when
        # acknowledged by the broker, not yet marked so in the store (a full disk): not re-sent every 2 s meanwhile
        self._unmarked: set[str] = set()

    def publish(self, record: dict[str, Any], correlation: bytes | None = None) -> None:
        """Hand a stored record to paho (sent now, or after the next reconnect). While MAX_HANDED wait for the
        broker it stays in the store only, and `resend` hands it over later."""
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:  # held across publish: an ack must not arrive before its mid is known
            if len(self._by_mid) >= MAX_HANDED:
                return
            mid = self.mqtt.publish(self.topic, payload, qos=1, correlation=correlation)
            if mid is not None:
                self._by_mid[mid] = (record["inspection_id"], time.monotonic())
                self._handed.add(record["inspection_id"])

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
        for record in self.store.unpublished(limit):
            refused = self._refused.get(record["inspection_id"])
            if record["inspection_id"] in self._handed or record["inspection_id"] in self._unmarked \
                    or (refused is not None and now - refused < REFUSED_RETRY_S):
                continue
            self._refused.pop(record["inspection_id"], None)
            record.pop("published_at", None)
            self.publish(record)
            n += 1
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
