"""Optional Sparkplug B output, so SCADA hosts read verdicts without custom code.

The edge node (the station) has its own MQTT connection because its last will must be the NDEATH
certificate (the main connection's will is the `offline` status). Per connection: NBIRTH (seq 0, bdSeq of
this connection's will), DBIRTH for the inspector device, then DDATA per result; seq counts 0..255 and
wraps. The next connection's will carries bdSeq + 1. An NCMD `Node Control/Rebirth` re-sends the births.

The Sparkplug B payload is a small protobuf; it is encoded and decoded here by hand (no generated code).
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
from pathlib import Path
from typing import Any

from inspector.config import MqttSection, Sparkplug
from inspector.mqtt import MqttClient, Will

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
# Sparkplug B DataType codes (subset used here)
UINT32, INT64, UINT64, DOUBLE, BOOLEAN, STRING = 7, 4, 8, 10, 11, 12
REBIRTH = "Node Control/Rebirth"


# -- protobuf wire format ---------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, data: bytes) -> bytes:
    return _varint(number << 3 | wire) + data


def _metric(name: str, datatype: int, value: Any, ts: int) -> bytes:
    body = _field(1, 2, _varint(len(name.encode())) + name.encode()) + _field(3, 0, _varint(ts)) + _field(4, 0, _varint(datatype))
    if value is None:
        return body + _field(7, 0, _varint(1))  # is_null
    if datatype == UINT32:
        return body + _field(10, 0, _varint(int(value)))
    if datatype in (INT64, UINT64):
        return body + _field(11, 0, _varint(int(value)))
    if datatype == DOUBLE:
        return body + _field(13, 1, struct.pack("<d", float(value)))
    if datatype == BOOLEAN:
        return body + _field(14, 0, _varint(int(bool(value))))
    raw = str(value).encode()
    return body + _field(15, 2, _varint(len(raw)) + raw)


def encode_payload(metrics: list[tuple[str, int, Any]], seq: int | None, ts: int | None = None) -> bytes:
    """A Sparkplug B Payload: timestamp, metrics [(name, datatype, value)], seq (None for NDEATH)."""
    ts = int(time.time() * 1000) if ts is None else ts
    out = _field(1, 0, _varint(ts))
    for name, dt, value in metrics:
        m = _metric(name, dt, value, ts)
        out += _field(2, 2, _varint(len(m)) + m)
    if seq is not None:
        out += _field(3, 0, _varint(seq))
    return out


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) for each field of a protobuf message."""
    out, i = [], 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i:i + n], i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):  # a fixed or length-delimited field cut short: slicing gave fewer bytes without a word
            raise ValueError(f"truncated field {number}")
        out.append((number, wire, value))
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        result |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return result, i


def decode_payload(data: bytes) -> dict[str, Any]:
    """{'timestamp', 'seq', 'metrics': {name: value}} of a Sparkplug B payload (the subset encoded above); ValueError
    for anything else (a field of another wire type than the schema's raised TypeError or AttributeError, which
    ended the NCMD thread: no rebirth was answered after one malformed NCMD)."""
    try:
        return _decode(data)
    except (TypeError, AttributeError, struct.error) as exc:
        raise ValueError(f"not a Sparkplug B payload ({exc})") from None


def _decode(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": None, "seq": None, "metrics": {}}
    for number, _, value in _fields(data):
        if number == 1:
            out["timestamp"] = value
        elif number == 3:
            out["seq"] = value
        elif number == 2:
            name, val = None, None
            for n, _, v in _fields(value):
                if n == 1:
                    name = v.decode()
                elif n in (10, 11):
                    val = v
                elif n == 13:
                    val = struct.unpack("<d", v)[0]
                elif n == 14:
                    val = bool(v)
                elif n == 15:
                    val = v.decode()
            if name is not None:
                out["metrics"][name] = val
    return out


# -- the edge node ----------------------------------------------------------------------------------------
def defects_found(record: dict[str, Any]) -> int:
    """How many defect regions the part had: the record's `defects_found` (`defects` lists the 20 most severe of them, and
    the metric read 20 for a part with 35), or the list's length in a record without it."""
    listed = len(record.get("defects") or [])
    found = record.get("defects_found")
    return max(found, listed) if isinstance(found, int) and not isinstance(found, bool) else listed


def _read_bdseq(path: Path | None) -> int:
    """The bdSeq a station's last run left for its next connection (0 where none was kept)."""
    if path is None:
        return 0
    try:
        return int(path.read_text(encoding="ascii").strip()) % 256
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        log.warning("sparkplug: %s does not hold a bdSeq (%s); starting at 0", path, exc)
        return 0


class SparkplugNode:
    """Publishes the station's results as a Sparkplug B edge node with one device."""

    def __init__(self, mqtt: MqttSection, cfg: Sparkplug, station: str, client_id: str, bdseq_file: Path | None = None) -> None:
        """`bdseq_file` keeps the next connection's bdSeq over restarts: started again at 0, a new session shared its bdSeq
        with the last one's NDEATH, which a host receiving that will late took for the new session's death."""
        node = cfg.edge_node_id or station
        base = f"{NAMESPACE}/{cfg.group_id}"
        self.topics = {"NBIRTH": f"{base}/NBIRTH/{node}", "NDEATH": f"{base}/NDEATH/{node}", "NCMD": f"{base}/NCMD/{node}",
                       "DBIRTH": f"{base}/DBIRTH/{node}/{cfg.device_id}", "DDATA": f"{base}/DDATA/{node}/{cfg.device_id}"}
        self._bdseq_file = bdseq_file
        self.bdseq = _read_bdseq(bdseq_file)  # bdSeq of the will registered for the next connection
        self.session_bdseq: int | None = None  # bdSeq of the connection in use (its will's)
        self._seq = 0
        self._lock = threading.Lock()
        # this connection's NBIRTH and DBIRTH are queued: paho reads connected before it calls on_connect, so a result
        # in between went out as a DDATA ahead of the births, with the last connection's seq (a host marks such a node stale)
        self._born = False
        self._last: dict[str, Any] = {"inspection_id": None, "serial": None, "verdict": None, "score": None, "threshold": None, "defects": 0}
        self._counts = {"inspected": 0, "pass": 0, "fail": 0}
        self._stop = threading.Event()
        # Sparkplug requires a clean session, and NDEATH (not retained) as the will
        self.client = MqttClient(mqtt, client_id, will=self._death_will(), persistent=False,
                                 subscriptions=[self.topics["NCMD"]], on_connected=self._connected,
                                 on_disconnected=self._disconnected)
        self._thread = threading.Thread(target=self._commands, name="sparkplug-ncmd", daemon=True)

    def _death_will(self) -> Will:
        return Will(self.topics["NDEATH"], encode_payload([("bdSeq", UINT64, self.bdseq)], seq=None), qos=1, retain=False)

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _device_metrics(self) -> list[tuple[str, int, Any]]:
        last, c = self._last, self._counts
        return [("inspection_id", STRING, last["inspection_id"]), ("serial", STRING, last["serial"]), ("verdict", STRING, last["verdict"]),
                ("score", DOUBLE, last["score"]), ("threshold", DOUBLE, last["threshold"]), ("defects", UINT32, last["defects"]),
                ("counters/inspected", UINT64, c["inspected"]), ("counters/pass", UINT64, c["pass"]), ("counters/fail", UINT64, c["fail"])]

    def _connected(self) -> None:
        with self._lock:
            self.session_bdseq = self.bdseq
            self.bdseq = (self.bdseq + 1) % 256
            self.client.will_set(self._death_will())  # for the next connection
            self._keep_bdseq()
        self._birth()

    def _keep_bdseq(self) -> None:
        if self._bdseq_file is None:
            return
        tmp = self._bdseq_file.with_name(self._bdseq_file.name + ".tmp")
        try:
            tmp.write_text(f"{self.bdseq}\n", encoding="ascii")
            os.replace(tmp, self._bdseq_file)  # whole or not at all, even at a power cut
        except OSError as exc:
            log.warning("sparkplug: the next bdSeq could not be kept in %s (%s); after a restart a host may take the last "
                        "session's NDEATH for the new one's", self._bdseq_file, exc.strerror or exc)

    def _disconnected(self) -> None:
        with self._lock:
            self._born = False

    def _birth(self) -> None:
        """NBIRTH (seq 0, this connection's bdSeq) and DBIRTH with the current values; also on a rebirth request."""
        with self._lock:
            self._seq = 0
            self.client.publish(self.topics["NBIRTH"], encode_payload(
                [("bdSeq", UINT64, self.session_bdseq), (REBIRTH, BOOLEAN, False)], self._next_seq()), qos=0)
            self.client.publish(self.topics["DBIRTH"], encode_payload(self._device_metrics(), self._next_seq()), qos=0)
            self._born = self.client.connected  # a rebirth asked for just before a drop is no birth of the next connection

    def start(self) -> None:
        self.client.start()
        self._thread.start()

    def publish_result(self, record: dict[str, Any]) -> None:
        with self._lock:
            verdict = record.get("verdict")
            self._counts["inspected"] += 1
            self._counts["pass" if verdict == "PASS" else "fail"] += 1
            self._last = {"inspection_id": record.get("inspection_id"), "serial": record.get("serial"), "verdict": verdict,
                          "score": record.get("score"), "threshold": record.get("threshold"), "defects": defects_found(record)}
            if self._born and self.client.connected:  # while offline, or not yet born, the next birth carries the current values
                self.client.publish(self.topics["DDATA"], encode_payload(self._device_metrics(), self._next_seq()), qos=0)

    def _commands(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if decode_payload(msg.payload)["metrics"].get(REBIRTH) is True:
                    log.info("sparkplug: rebirth requested")
                    self._birth()
            except ValueError as exc:
                log.warning("sparkplug: ignoring an NCMD on %s that is not a Sparkplug B payload (%s)", msg.topic, exc)
            except Exception:  # noqa: BLE001 (this thread answers every later rebirth: it must outlive any one command)
                log.exception("sparkplug: an NCMD on %s could not be handled", msg.topic)

    def stop(self) -> None:
        """Graceful: publish NDEATH ourselves (a clean disconnect does not fire the will)."""
        self._stop.set()
        if self.client.connected and self.session_bdseq is not None:
            self.client.publish(self.topics["NDEATH"], encode_payload([("bdSeq", UINT64, self.session_bdseq)], seq=None), qos=1)
        self.client.stop()
