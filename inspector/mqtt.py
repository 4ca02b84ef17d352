"""A thin MQTT client over paho-mqtt 2.x: connect (TLS, user/password, MQTT 5 or 3.1.1), publish, ack.

paho runs its network loop on its own thread and reconnects with backoff. Nothing here runs work on
that thread: incoming messages go onto `inbox`, broker acknowledgements of our publishes onto `acks`.
The first connection is checked synchronously, so a wrong password or a TLS problem is one clear error
at start instead of a restart loop.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import socket
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from inspector.cli import one_line
from inspector.config import MqttSection
from inspector.result import Reply
from model.errors import InspectorError

log = logging.getLogger(__name__)
# mosquitto answers a publish over its message_size_limit with PUBACK 0x95 (Packet too large), a code MQTT 5 lists for
# CONNACK and DISCONNECT only: paho took the PUBACK for a malformed packet and dropped the connection ("Protocol error"),
# and re-sent the result at each reconnect, for ever; read as the refusal it is, the result waits in the store, said once
try:
    if PacketTypes.PUBACK not in (_too_large := ReasonCode.names[0x95]["Packet too large"]):
        _too_large.append(PacketTypes.PUBACK)
except (AttributeError, KeyError, TypeError):  # a paho whose table is laid out otherwise: its own reading stands
    pass
TOO_LARGE = 0x95
SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason
QUICK_DROP_S = 2.0
MAX_QUEUED = 11_000  # messages paho holds for the broker; results stop at outbox.MAX_HANDED, leaving room for status and replies
ACKED_KEPT = 1000  # inputs acknowledged lately, remembered to know a copy the broker sends again after a reconnect
INBOX_SIZE = 10_000  # inputs waiting for the intake
SMALL_INPUT = 4096  # bytes: an input no bigger (a trigger, a command) is never refused for the bytes waiting: refusing it frees
# next to nothing, and the count bounds them (10,000 of them are 40 MB)
BAD_TOPICS_SAID = 100  # refused Response Topics logged as warnings, each once; later ones at debug level (a client may name endless ones)

ONLINE, OFFLINE = b"online", b"offline"
DEGRADED = b"degraded"  # retained while the store refuses writes: inputs are answered on the error topic, results wait


@dataclass(frozen=True)
class Topics:
    """Every topic the station uses, built in one place from its prefix."""

    prefix: str

    @property
    def trigger(self) -> str:
        return f"{self.prefix}/trigger"

    @property
    def image(self) -> str:
        return f"{self.prefix}/image"

    def is_image(self, topic: str) -> bool:
        """The image topic, or one of its serial subtopics (<prefix>/image/<serial>)."""
        return topic == self.image or topic.startswith(self.image + "/")

    def is_part(self, topic: str) -> bool:
        """A topic whose every message is a part to inspect: the image topics and the trigger."""
        return topic == self.trigger or self.is_image(topic)

    @property
    def command(self) -> str:
        return f"{self.prefix}/command"

    @property
    def result(self) -> str:
        return f"{self.prefix}/result"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def error(self) -> str:
        return f"{self.prefix}/error"

    @property
    def report(self) -> str:
        return f"{self.prefix}/report"

    def subscriptions(self) -> list[str]:
        """What the station listens to; `<prefix>/image/<serial>` carries the serial in the topic. `image/+/+/#`: a serial
        with a slash (image/LOT7/SN9) matched no subscription and was lost unanswered; now refused. Three filters no topic
        matches twice, the first two those of every version: a station rolled back to one before 2026-12-05 (`image`,
        `image/+`) on this session got each image twice from `image/#` (a part inspected twice, two results)."""
        return [self.trigger, self.image, f"{self.image}/+", f"{self.image}/+/+/#", self.command]

    def retired(self) -> list[str]:
        """Filters an earlier version subscribed to, which its persistent session keeps: `image/#` (2026-12-05 on)."""
        return [f"{self.image}/#"]

    def publications(self) -> list[str]:
        return [self.result, self.status, self.error, self.report]


@dataclass
class Message:
    """An incoming message, detached from paho."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    user: dict[str, str] = field(default_factory=dict)
    correlation: bytes | None = None
    received: float = field(default_factory=time.monotonic)
    retain: bool = False  # published retained (on MQTT 3.1.1 only a copy the broker delivers on subscribing shows it)
    response_topic: str | None = None  # MQTT 5, where the sender also wants its answer (checked by MqttClient)
    session: int | None = None  # the broker session it came in (MqttClient's count); None: acknowledged whenever asked
    tracked: bool = False  # its copies are known (MqttClient with manual_ack, QoS 1)
    repeated: frozenset[str] = frozenset()  # MQTT 5 user property names it gives more than once (`user` holds the last)

    @cached_property
    def digest(self) -> bytes:
        """Of its topic and payload (`delivery_digest`), by which a copy the broker sends again is known; worked out when
        first asked for, on the intake's thread: a 50 MB image held paho's network thread up for its sha256."""
        return delivery_digest(self.topic, self.payload)

    @property
    def delivery(self) -> tuple[int, str, bytes] | None:
        """(packet id, topic, digest) by which a copy of this input is known, for the journal to keep beside its job
        (see MqttClient.recall); None where it cannot come again (QoS 0) or is not tracked."""
        return (self.mid, self.topic, self.digest) if self.qos > 0 and self.tracked else None

    @property
    def reply(self) -> Reply | None:
        """Where the answer to this message goes besides its contract topic, if the sender said (MQTT 5)."""
        return Reply.of(self.correlation, self.response_topic)


def _user_pairs(msg: paho.MQTTMessage) -> list[tuple[str, str]]:
    """A message's MQTT 5 user properties, in order, repeats kept; none on 3.1.1."""
    return [(str(k), str(v)) for k, v in getattr(getattr(msg, "properties", None), "UserProperty", None) or []]


def _payload_bytes(item: object) -> int:
    return len(item.payload) if isinstance(item, Message) else 0


class Inbox(queue.Queue):
    """Inputs waiting for whoever reads them, bounded in count (`maxsize`) and in the bytes of their payloads (`max_bytes`),
    counted from the put until the reader takes the input. Bounded in count only, a burst of QoS 0 images (which the broker's
    ReceiveMaximum does not hold back) queued up to 10,000 x mqtt.max_payload_bytes and the station was killed for memory,
    with everything queued lost. Beyond either bound a put raises queue.Full, whose text says which and what to do (the end
    of the overload's answer).
    An input of up to SMALL_INPUT bytes is bounded by the count alone, and one is let in whatever its size where no other
    input waits (mqtt.max_payload_bytes answers a bigger one). Items other than Messages (a source's frames, which have
    their own slots) cost no bytes."""

    def __init__(self, maxsize: int = INBOX_SIZE, max_bytes: int = 1 << 30) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.waiting_bytes = 0  # of the Messages in the queue, under `mutex`

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        size = _payload_bytes(item)
        with self.mutex:  # reserved before the put, so a get of this item never finds it uncounted
            if size > SMALL_INPUT and self.waiting_bytes and self.waiting_bytes + size > self.max_bytes:
                raise queue.Full(f"({self.waiting_bytes:,} bytes of inputs waiting, and this one's {size:,} would pass "
                                 f"mqtt.max_waiting_bytes, {self.max_bytes:,}); slow down, or raise mqtt.max_waiting_bytes where "
                                 "the station has the memory")
            self.waiting_bytes += size
        try:
            super().put(item, block, timeout)
        except queue.Full:
            with self.mutex:
                self.waiting_bytes -= size
            raise queue.Full(f"({self.maxsize} inputs waiting); slow down") from None

    def _get(self) -> object:  # under `mutex`
        item = super()._get()
        self.waiting_bytes -= _payload_bytes(item)
        return item


def ack_lost_s(cfg: MqttSection) -> float:
    """How long before a connection is found lost an acknowledgement sent on it may not have reached the broker: a dead
    connection is found after up to 1.5 keepalives without an answer, and a few seconds of writes may sit in buffers."""
    return 1.5 * cfg.keepalive_s + 10.0


def delivery_digest(topic: str, payload: bytes) -> bytes:
    """A digest of an input that stays the same across runs (Python's hash() does not), so that a journaled input's
    copy is known after a restart."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).digest()[:16]


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True
    user: dict[str, str] | None = None  # MQTT 5 user properties (ignored on 3.1.1): who the will speaks for

    def properties(self, v5: bool) -> Properties | None:
        if not (v5 and self.user):
            return None
        props = Properties(PacketTypes.WILLMESSAGE)
        props.UserProperty = list(self.user.items())
        return props


def _publish_properties(reply: Reply | None, user: dict[str, str] | None) -> Properties | None:
    correlation = reply.correlation if reply is not None else None
    if correlation is None and not user:
        return None
    props = Properties(PacketTypes.PUBLISH)
    if correlation is not None:
        props.CorrelationData = correlation
    if user:
        props.UserProperty = list(user.items())
    return props


class MqttClient:
    """One broker connection. `inbox` gets Messages, `acks` gets the mids the broker acknowledged, `refused` the
    (mid, reason) of publishes it refused (e.g. an ACL that forbids the topic)."""

    def __init__(self, cfg: MqttSection, client_id: str, *, will: Will | None = None, persistent: bool = True,
                 subscriptions: list[str] | None = None, retired: list[str] | None = None, manual_ack: bool = False,
                 inbox: queue.Queue | None = None, on_connected: Callable[[], None] | None = None,
                 on_overflow: Callable[[Message, str], None] | None = None, on_disconnected: Callable[[], None] | None = None,
                 on_new_session: Callable[[], None] | None = None, watch: str | None = None,
                 on_watched: Callable[[Message], None] | None = None) -> None:
        """`retired`: filters an earlier version subscribed to, dropped at each connect: a persistent session keeps
        them, and the broker sends a message once for each filter it matches. `on_connected` runs on paho's thread once
        the connection is made (after `connected` already reads True), `on_disconnected` once it is lost or ended;
        `on_new_session` (manual_ack) when the broker kept no session of this client, so that what `recall` gave is void;
        `on_overflow(message, why)` (paho's thread) when `inbox` has no room for an input (Inbox: its count or its bytes), `why`
        the end of the answer: "(10000 inputs waiting); slow down". `watch` (MQTT 5 only): a topic whose messages go to
        `on_watched` (paho's thread), never to `inbox`: QoS 0, its retained one at every connect, and its own publishes too (they
        show that the broker lets it read the topic)."""
        self.cfg = cfg
        self.where = f"mqtt {cfg.host}:{cfg.port}"
        self.v5 = cfg.protocol == "5"
        self.persistent = persistent
        self.subscriptions = list(subscriptions or [])
        self.retired = list(retired or [])
        self.inbox: queue.Queue = inbox if inbox is not None else Inbox(INBOX_SIZE, cfg.max_waiting_bytes)
        self.acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.refused: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self.state = "not started"
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_new_session = on_new_session
        self._on_overflow = on_overflow
        self.watch = watch if self.v5 and on_watched is not None else None  # 3.1.1 has no user properties
        self._on_watched = on_watched
        self._watch_mid: int | None = None  # the SUBSCRIBE of `watch`, to name its refusal
        self._watch_refused_said = False
        self._first = threading.Event()
        # the SUBSCRIBEs of this connection not yet acknowledged; set when none is: an input published before then is lost
        self._unacked: set[int] = set()
        self._subscribed_all = threading.Event()
        self._refusal: str | None = None
        self._connected_at = 0.0
        self._quick_drops: list[float] = []  # connections lost within QUICK_DROP_S of being made
        self._clash_said = False  # the client id's clash logged, until a connection holds again
        self._queue_full = False
        self._bad_response_topics: set[str] = set()
        self._topic_of: dict[int, str] = {}  # packet id -> topic of a publish the broker has not answered (ids wrap at 65535)
        # packet ids paho answered before publish() had them to note: a QoS 0 publish is answered as paho's thread writes it,
        # which may come first, and its topic, noted after, stayed for good (Sparkplug's DDATA: 4 in 10 parts)
        self._answered_early: set[int] = set()
        self._topic_lock = threading.Lock()
        self._refusals_said: set[tuple[str, str]] = set()  # (topic, reason) logged, until a publish on the topic goes through
        # MQTT 5: the largest packet the broker takes (its CONNACK's Maximum Packet Size; mosquitto's max_packet_size), None
        # where it set none. paho sends a bigger one anyway, and the broker drops the connection: the station reconnected
        # each second for ever, re-sending it, its status flapping online/offline and /health blaming a client id clash
        self.max_packet: int | None = None
        self._unsent_mids = itertools.count(-1, -1)  # stand-in packet ids of publishes too big to send (never paho's, 1-65535)
        # manual_ack: inputs received and not yet acknowledged, and those acknowledged lately (packet id -> what it
        # carried), in broker session `_session`: a reconnect brings each unacknowledged input again, as a copy
        self._manual = manual_ack
        self._in_lock = threading.Lock()
        self._session = 0
        self._held: dict[int, tuple[str, bytes]] = {}  # packet id -> (topic, payload)
        self._acked: OrderedDict[int, tuple[str, bytes, float]] = OrderedDict()  # packet id -> (topic, digest, when acknowledged)
        self._lost_at: float | None = None  # when the last connection was found lost
        self._ack_lost_s = ack_lost_s(cfg)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
                        clean_session=None if self.v5 else not persistent, manual_ack=manual_ack)
        if cfg.username is not None:
            c.username_pw_set(cfg.username, cfg.password())
        if cfg.tls is not None:
            try:
                c.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.cert_file, keyfile=cfg.tls.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise InspectorError(f"{self.where}: cannot load the TLS files in mqtt.tls ({exc}); check the paths and PEM format") from None
            c.tls_insecure_set(cfg.tls.insecure)
            if cfg.tls.insecure:
                log.warning("%s: mqtt.tls.insecure: the broker's host name is not checked; anyone in the path can pose as it", self.where)
        elif cfg.username is not None and cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("%s: the password goes over the network unencrypted; set mqtt.tls", self.where)
        if will is not None:
            c.will_set(will.topic, will.payload, will.qos, will.retain, will.properties(self.v5))
        c.reconnect_delay_set(1, 10)  # at most 10 s: a 15 s outage cost 31 s offline at 30
        c.max_inflight_messages_set(100)
        # paho's queue of unsent messages grows through an outage; beyond this a result waits in the store instead
        # (the outbox hands it over again once connected) and other messages are dropped, said in the log
        c.max_queued_messages_set(MAX_QUEUED)
        c.on_connect, c.on_disconnect, c.on_connect_fail = self._connected, self._disconnected, self._connect_failed
        c.on_subscribe = self._subscribed
        c.on_message, c.on_publish = self._message, self._published
        c.on_socket_open = _no_delay
        self._client = c

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _connect_args(self) -> dict:
        if not self.v5:
            return {}
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s if self.persistent else 0
        props.ReceiveMaximum = 100
        return {"clean_start": not self.persistent, "properties": props}

    def start(self) -> None:
        """Connect, or raise InspectorError for errors that retrying cannot fix (TLS, credentials).

        An unreachable broker is not fatal: paho keeps retrying in the background, and results wait in the store.
        """
        self.state = "connecting"
        try:
            self._client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, **self._connect_args())
        except ssl.SSLCertVerificationError as exc:
            raise InspectorError(f"{self.where}: TLS certificate rejected ({exc.verify_message}); check mqtt.tls.ca_file"
                                 " and that the broker certificate names this host") from None
        except ssl.SSLError as exc:
            raise InspectorError(f"{self.where}: TLS handshake failed ({exc.reason or exc}); is this a TLS port, and are the"
                                 " mqtt.tls files right?") from None
        except ConnectionResetError:
            if self.cfg.tls is None:
                raise InspectorError(f"{self.where}: the broker reset the connection; is this a TLS port? then set mqtt.tls") from None
            raise InspectorError(f"{self.where}: TLS handshake failed (the broker reset the connection); is this port a TLS"
                                 " listener (8883 by convention)?") from None
        except OSError as exc:
            self.state = f"unreachable ({exc.strerror or exc})"
            log.warning("%s: broker unreachable (%s); retrying in the background, results are kept until it is back",
                        self.where, exc.strerror or exc)
            self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, **self._connect_args())
            self._client.loop_start()
            return
        self._client.loop_start()
        if not self._first.wait(self.cfg.connect_timeout_s):
            log.warning("%s: no answer to CONNECT within %.0f s; still trying", self.where, self.cfg.connect_timeout_s)
        elif self._refusal is not None:
            self.stop(timeout=0)
            raise InspectorError(f"{self.where}: the broker refused the connection ({self._refusal}); check mqtt.username,"
                                 " the password variable named by mqtt.password_env, and the broker's ACL")

    def stop(self, timeout: float = 2.0) -> None:
        """Wait up to `timeout` for queued publishes, then disconnect cleanly (no last will)."""
        deadline = time.monotonic() + timeout
        while self.connected and self._client._out_messages and time.monotonic() < deadline:  # paho has no public "queue empty"
            time.sleep(0.02)
        self.state = "stopping"
        if self.watch is not None and self.connected:
            # the persistent session kept it: a station rolled back to a version before 2026-12-06 took its own status for
            # an input ('not a topic this station handles', answered on <prefix>/error) at each start
            self._client.unsubscribe(self.watch)
        self._client.disconnect()
        self._client.loop_stop()
        # paho keeps its wake-up socket pair until the client is collected, and a daemon's objects refer to each other:
        # a program that starts and stops stations held two descriptors a client until the cyclic collector ran
        self._client._reset_sockets()
        self.state = "stopped"

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    # -- paho callbacks (paho's thread: record and hand over, nothing more) ----------------------------
    def _connected(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            text = str(reason)
            if self._refusal != text:
                log.error("%s: connection refused: %s", self.where, text)
            self._refusal, self.state = text, f"refused: {text}"
        else:
            self._refusal, self.state, self._connected_at = None, "connected", time.monotonic()
            self.max_packet = getattr(properties, "MaximumPacketSize", None) if self.v5 else None
            # at debug while a client id clash is named: each drop's reconnect logged it, a line a second for as long as it lasted
            log.log(logging.DEBUG if self._clash_said else logging.INFO, "%s: connected as %s", self.where, self._client._client_id.decode())
            if self._manual and not getattr(flags, "session_present", False):  # a new session (a broker restarted without
                # persistence, or the first connection): packet ids start over
                with self._in_lock:
                    self._session += 1
                    self._held.clear()
                    self._acked.clear()
                if self._on_new_session is not None:
                    self._on_new_session()
            if self.retired:
                client.unsubscribe(self.retired)
            self._subscribed_all.clear()
            self._unacked = set()
            for topic in self.subscriptions:
                # MQTT 5: Retain As Published, since the broker otherwise clears the retain flag of a message it hands
                # to a live subscriber, and a retained trigger sent while the station ran was inspected as a part
                # (refused only at the next start); one left at the broker is sent when the subscription is new only
                # (Retain Handling 1): it was refused, and counted as a refused part, at every reconnect. 3.1.1 has neither.
                if self.v5:
                    mid = client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True, retainHandling=1))[1]
                else:
                    mid = client.subscribe(topic, qos=1)[1]
                self._unacked.add(mid)
            if self.watch is not None:
                # QoS 0: nothing to acknowledge (manual_ack) or journal; what passed while disconnected is made up by the
                # retained message, sent at every subscribe (Retain Handling 0)
                self._watch_mid = client.subscribe(self.watch, options=SubscribeOptions(qos=0, retainHandling=0))[1]
            if not self._unacked:
                self._subscribed_all.set()
            if self._on_connected is not None:
                self._on_connected()
        self._first.set()

    def wait_subscribed(self, timeout: float) -> bool:
        """Whether the broker acknowledged every subscription of the connection within `timeout` s (paho's callbacks run
        in order, so a SUBACK is never seen before its SUBSCRIBE's packet id is noted)."""
        return self._subscribed_all.wait(timeout)

    def _subscribed(self, client, userdata, mid, reasons, properties) -> None:
        self._unacked.discard(mid)
        if not self._unacked:
            self._subscribed_all.set()
        # a subscription the broker refused (its ACL) was silent: the station sat online and received nothing
        if refused := [str(r) for r in reasons if r.is_failure]:
            if mid == self._watch_mid and self.watch is not None:  # not an input: said once, as a warning
                if not self._watch_refused_said:
                    self._watch_refused_said = True
                    log.warning("%s: the broker refused this station reading %s (%s): another station started on the same mqtt.prefix "
                                "cannot be noticed; let its ACL grant the station read on its own status", self.where, self.watch,
                                ", ".join(refused))
                return
            log.error("%s: the broker refused a subscription (%s); check its ACL for this client's topics", self.where, ", ".join(refused))

    def _disconnected(self, client, userdata, flags, reason, properties) -> None:
        self._lost_at = time.monotonic()
        if self._on_disconnected is not None:
            self._on_disconnected()
        if self.state == "stopping":
            return
        if self._taken_over(reason):
            return
        if self.state == "connected":
            log.warning("%s: disconnected (%s); reconnecting", self.where, reason)
        if not self.state.startswith("refused"):
            self.state = f"disconnected ({reason})"

    def _taken_over(self, reason) -> bool:
        """Another client with this client id: the broker drops one of the two each time the other connects, and
        both go on reconnecting for ever. Said once, by name, and the state /health shows from each drop to the next
        reconnect. MQTT 5 says so (reason 0x8E); on 3.1.1 three drops within QUICK_DROP_S of connecting in a minute make
        it likely."""
        now = time.monotonic()
        lasted = now - self._connected_at if self.state == "connected" else None
        if lasted is not None and lasted > 60.0:
            self._quick_drops, self._clash_said = [], False  # a connection that held: whatever dropped it before is over
        certain = getattr(reason, "value", None) == SESSION_TAKEN_OVER
        if certain or (lasted is not None and lasted < QUICK_DROP_S):
            self._quick_drops.append(now)
        self._quick_drops = [t for t in self._quick_drops if now - t < 60.0]
        if not certain and len(self._quick_drops) < 3:
            return False
        client_id = self._client._client_id.decode()
        text = (f"client id {client_id} is in use by another client (the broker said so)" if certain else
                f"client id {client_id} is probably in use by another client (the broker dropped this one "
                f"{len(self._quick_drops)} times in a minute, each within {QUICK_DROP_S:g} s of connecting)")
        text += "; give each station its own station.name or mqtt.client_id"
        if not self._clash_said:  # not the state: each reconnect sets that to "connected", and it was said once a second
            self._clash_said = True
            log.error("%s: %s", self.where, text)
        self.state = text
        return True

    def _connect_failed(self, client, userdata) -> None:
        if self.state.startswith(("unreachable", "connect failed")):
            return  # still down: keep the reason start() found and logged
        log.warning("%s: cannot connect; retrying with backoff", self.where)
        self.state = "connect failed"

    def _message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        if self.watch is not None and msg.topic == self.watch:  # not an input: never on the inbox, nothing to acknowledge
            self._on_watched(Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, dict(_user_pairs(msg)), retain=bool(msg.retain)))
            return
        user, corr, response, repeated = {}, None, None, frozenset()
        props = getattr(msg, "properties", None)
        if props is not None:
            pairs = _user_pairs(msg)
            user = dict(pairs)
            if len(user) < len(pairs):  # MQTT 5 lets a name come twice: serial=A7, serial=B2 was filed as B2 with no word
                repeated = frozenset(k for k, n in Counter(n for n, _ in pairs).items() if n > 1)
            corr = getattr(props, "CorrelationData", None)
            response = self._response_topic(getattr(props, "ResponseTopic", None), msg.topic)
        payload = bytes(msg.payload)
        tracked = self._manual and msg.qos > 0
        if tracked and self._copy(msg, payload):
            return
        m = Message(msg.topic, payload, msg.qos, msg.mid, user, corr, retain=bool(msg.retain), response_topic=response,
                    session=self._session, tracked=tracked, repeated=repeated)
        try:
            self.inbox.put_nowait(m)
        except queue.Full as exc:
            if self._on_overflow is not None:
                self._on_overflow(m, str(exc) or f"({self.inbox.maxsize} inputs waiting); slow down")

    def _copy(self, msg: paho.MQTTMessage, payload: bytes) -> bool:
        """Whether `msg` is a copy of an input already here, which the broker sends again (DUP, the same packet id)
        when a connection ends before the input was acknowledged, or before the acknowledgement reached it (a broker
        restart, a network drop): each copy was a part inspected again, under a new generated inspection_id where the
        input gave none. A copy of one still being handled is dropped (acknowledging the first, with the same packet
        id, acknowledges it); a copy of one acknowledged (or journaled by an earlier run: `recall`) is acknowledged again
        and dropped, but only where that acknowledgement may have been lost: sent within `ack_lost_s` of the connection's
        end. A broker may give a packet id to a new input once the old one's acknowledgement reached it, and a capture
        trigger `{}` is the same bytes every time: a new part taken for a copy is lost, a copy taken for a part only
        inspected twice."""
        with self._in_lock:
            held, acked = self._held.get(msg.mid), self._acked.get(msg.mid)
            if msg.dup and held is not None and held == (msg.topic, payload):
                again = False
            elif msg.dup and acked is not None and acked[2] >= (self._lost_at or time.monotonic()) - self._ack_lost_s \
                    and acked[:2] == (msg.topic, delivery_digest(msg.topic, payload)):  # a sha256 for copies only
                again = True
            else:
                self._held[msg.mid] = (msg.topic, payload)  # the Message holds the payload until acknowledged anyway
                self._acked.pop(msg.mid, None)  # a new input on that id: the acknowledgement of the last one arrived
                return False
        log.info("%s: the broker sent an input on %s again (packet %d, after a reconnect); the first %s", self.where, one_line(msg.topic),
                 msg.mid, "was answered: acknowledged again" if again else "is being handled: this copy is dropped")
        if again:
            self._client.ack(msg.mid, msg.qos)
        return True

    def _response_topic(self, topic: str | None, came_on: str) -> str | None:
        """A message's Response Topic, or None (said in the log, once per topic) where its answer may not go there: only
        topics under `mqtt.response_topics` get a copy (any sender could name any topic, and a broker whose ACL refuses it
        may drop the station's connection), never a filter (publishing to it raised), a system topic or one under the
        station's prefix (its input topics would take the answer as an input, its output topics carry a contract)."""
        if not topic:
            return None
        prefix = self.cfg.prefix
        why = ("is a filter (it has + or #)" if "+" in topic or "#" in topic or "\0" in topic else
               "is a system topic" if topic.startswith("$") else
               "is under the station's prefix, where its own topics are" if topic == prefix or topic.startswith(prefix + "/") else
               "matches no filter in mqtt.response_topics" if not any(paho.topic_matches_sub(f, topic) for f in self.cfg.response_topics)
               else None)
        if why is None:
            return topic
        if topic not in self._bad_response_topics:
            said = len(self._bad_response_topics)
            if said < BAD_TOPICS_SAID:
                self._bad_response_topics.add(topic)
            # each distinct topic was a warning of its own: a client naming new ones without end filled the log
            last = "; further refused Response Topics are logged at debug level only" if said == BAD_TOPICS_SAID - 1 else ""
            log.log(logging.WARNING if said < BAD_TOPICS_SAID else logging.DEBUG,
                    "%s: a message on %s asks for its answer on %r, which %s; it is answered on the station's topics only%s",
                    self.where, one_line(came_on), topic, why, last)  # escaped as the intake's: a sender names it
        return None

    def _published(self, client, userdata, mid, reason, properties) -> None:
        with self._topic_lock:
            topic = self._topic_of.pop(mid, None)
            if topic is None:
                self._answered_early.add(mid)
        if reason.is_failure:
            # named by topic, once: "rejected publish 532" named no topic to grant in the ACL, and came again for every
            # result (and every re-offer of one) while the broker refused them
            said = (topic or "", str(reason))
            if said not in self._refusals_said:
                if len(self._refusals_said) < 100:
                    self._refusals_said.add(said)
                fix = ("it takes no message this big: raise its message_size_limit" if getattr(reason, "value", None) == TOO_LARGE
                       else "check its ACL for this client's topics")
                log.error("%s: the broker refused a publish on %s (%s); %s (said once per topic until one goes through)", self.where,
                          topic or f"an unknown topic (packet {mid})", reason, fix)
            self.refused.put((mid, str(reason)))
        else:
            if self._refusals_said and topic is not None:
                self._refusals_said = {k for k in self._refusals_said if k[0] != topic}
            self.acks.put(mid)

    # -- operations (any thread) -------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, reply: Reply | None = None,
                user: dict[str, str] | None = None) -> int | None:
        """Queue a publish (sent now or after a reconnect); returns its mid, acknowledged later on `acks`, or None
        when MAX_QUEUED messages already wait for the broker (nothing is queued then).

        MQTT 5 only (ignored on 3.1.1): `reply`, the correlation data echoed from the input this answers, and a copy to
        its Response Topic (not tracked: the answer on `topic` is the one the station re-sends); `user` properties.
        """
        props = _publish_properties(reply, user) if self.v5 else None
        if (size := self._too_big(topic, payload, qos, props)) is not None:
            return self._unsendable(topic, size)
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            if not self._queue_full:
                log.warning("%s: %d messages wait for the broker; results wait in the store, others are dropped", self.where, MAX_QUEUED)
            self._queue_full = True
            return None
        self._queue_full = False
        self._note_topic(info.mid, topic)
        if self.v5 and reply is not None and reply.topic and reply.topic != topic:
            props = _publish_properties(reply, None)
            if self._too_big(reply.topic, payload, qos, props) is None:
                copy = self._client.publish(reply.topic, payload, qos=qos, properties=props)
                if copy.rc != paho.MQTT_ERR_QUEUE_SIZE:
                    self._note_topic(copy.mid, reply.topic)
        return info.mid

    def _too_big(self, topic: str, payload: bytes | str, qos: int, props: Properties | None) -> int | None:
        """The PUBLISH packet's size in bytes where it passes the broker's `max_packet`, else None."""
        if self.max_packet is None:
            return None
        data = payload.encode() if isinstance(payload, str) else payload
        rest = 2 + len(topic.encode()) + (2 if qos else 0) + len(data) + (len(props.pack()) if props is not None else 1)
        size = 2 + (rest >= 128) + (rest >= 16_384) + (rest >= 2_097_152) + rest  # type byte, remaining length (1-4 bytes)
        return size if size > self.max_packet else None

    def _unsendable(self, topic: str, size: int) -> int:
        """A publish too big for the broker, not sent: refused as the broker refuses one (the outbox keeps a result and offers
        it again later; said once per topic), under a stand-in packet id."""
        reason = f"{size:,} bytes, over the {self.max_packet:,} the broker takes: raise its max_packet_size"
        said = (topic, "too big")
        if said not in self._refusals_said:
            if len(self._refusals_said) < 100:
                self._refusals_said.add(said)
            log.error("%s: a message on %s is %s (said once per topic until one goes through)", self.where, topic, reason)
        mid = next(self._unsent_mids)
        self.refused.put((mid, reason))
        return mid

    def _note_topic(self, mid: int, topic: str) -> None:
        """The topic of a publish, until the broker answers it; not noted where paho answered it already."""
        with self._topic_lock:
            if mid in self._answered_early:
                self._answered_early.discard(mid)
            else:
                self._topic_of[mid] = topic

    def ack(self, message: Message) -> None:
        """Acknowledge an incoming QoS 1 message (manual_ack): the sender's broker may now forget it."""
        if message.qos == 0:
            return
        digest = message.digest if message.tracked else b""  # before the lock, which paho's thread waits on for each input
        with self._in_lock:
            if message.session is not None and message.session != self._session:
                # it came in a session the broker has since forgotten: its packet id may now name another input, which
                # this acknowledgement would take from the broker before that one is journaled
                return
            if self._held.pop(message.mid, None) is not None:
                self._remember_acked(message.mid, message.topic, digest, time.monotonic())
        self._client.ack(message.mid, message.qos)

    def _remember_acked(self, mid: int, topic: str, digest: bytes, at: float) -> None:
        """An input acknowledged (under `_in_lock`), kept among the newest ACKED_KEPT to know its copies by."""
        self._acked[mid] = (topic, digest, at)
        self._acked.move_to_end(mid)
        while len(self._acked) > ACKED_KEPT:
            self._acked.popitem(last=False)

    def recall(self, deliveries: Iterable[tuple[int, str, bytes]]) -> None:
        """Inputs an earlier run journaled in this client's broker session, oldest first: (packet id, topic, digest).
        A crash between the journal and the acknowledgement reaching the broker (or before it was sent) left them
        unacknowledged there, and the broker sends each again (DUP, the same packet id) at the next start: a part without
        an inspection_id was then inspected twice, under two generated ids. Known here, such a copy is acknowledged and
        dropped; its journaled job is recovered, or its stored result re-sent. Void if the broker kept no session."""
        now = time.monotonic()  # the journal keeps only those that may still wait at the broker (Store.deliveries)
        with self._in_lock:
            for mid, topic, digest in deliveries:
                self._remember_acked(mid, topic, bytes(digest), now)

    def will_set(self, will: Will) -> None:
        """Change the last will used from the next connection on."""
        self._client.will_set(will.topic, will.payload, will.qos, will.retain, will.properties(self.v5))


def _no_delay(client: paho.Client, userdata: object, sock: object) -> None:
    """Each packet sent as it is written (TCP_NODELAY): under Nagle's algorithm a result waited for the broker to
    acknowledge the input's PUBACK, which its delayed ACK holds up to 40 ms."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError):  # no TCP socket (a websocket's wrapper): as it is
        pass
