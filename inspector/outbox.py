"""The outbox: publish stored results and mark them published only when the broker acknowledged them.

paho keeps every QoS 1 message it was handed until the broker acknowledges it, across reconnects, so
within one process a result is handed over once. Rows still unacknowledged from an earlier process
(a crash, a kill) are handed over again at start. Consumers drop duplicates by `inspection_id`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from inspector.health import Metrics
from inspector.mqtt import MqttClient
from inspector.store import Store

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, store: Store, mqtt: MqttClient, topic: str, metrics: Metrics) -> None:
        self.store, self.mqtt, self.topic, self.metrics = store, mqtt, topic, metrics
        self._lock = threading.Lock()
        self._by_mid: dict[int, tuple[str, float]] = {}  # mid -> (inspection_id, handed over at)
        self._handed: set[str] = set()  # ids paho holds in this process

    def publish(self, record: dict[str, Any], correlation: bytes | None = None) -> None:
        """Hand a stored record to paho (sent now, or after the next reconnect)."""
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:  # held across publish: an ack must not arrive before its mid is known
            mid = self.mqtt.publish(self.topic, payload, qos=1, correlation=correlation)
            self._by_mid[mid] = (record["inspection_id"], time.monotonic())
            self._handed.add(record["inspection_id"])

    def drain_acks(self) -> int:
        """Mark what the broker acknowledged as published (call from the store's writer thread)."""
        n = 0
        while True:
            try:
                mid = self.mqtt.acks.get_nowait()
            except queue.Empty:
                return n
            with self._lock:
                entry = self._by_mid.pop(mid, None)
                if entry is not None:
                    self._handed.discard(entry[0])
            if entry is not None:  # acks of status/error messages carry mids we did not track
                self.store.mark_published(entry[0])
                self.metrics.inc("inspector_published_total")
                self.metrics.observe("inspector_stage_seconds", time.monotonic() - entry[1], {"stage": "publish"})
                n += 1

    def resend(self, limit: int = 1000) -> int:
        """Hand over stored results that no publish in this process covers (left by an earlier run)."""
        n = 0
        for record in self.store.unpublished(limit):
            if record["inspection_id"] in self._handed:
                continue
            record.pop("published_at", None)
            self.publish(record)
            n += 1
        if n:
            log.info("outbox: re-sending %d stored result(s) the broker had not acknowledged", n)
        return n

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._by_mid)
