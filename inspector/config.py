"""The station config: one YAML file per station, validated strictly before anything starts.

A station file may name a defaults file (`extends: ../site.yaml`); the station's values are deep-merged
over it, then the result is validated. Secrets never live in the file: `mqtt.password_env` names an
environment variable. Errors are reported with the YAML file and line they came from.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from inspector.decision import MAX_MM_PER_PX
from inspector.engines.base import DEVICES, parse_device
from model.errors import InspectorError, user_name, what_is_wrong_with, write_fix

SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:-]{0,63}\Z")  # station/serial/id: never a path, never a wildcard
TOPIC_LEVEL = re.compile(r"^[^#+\x00]+$")


MQTT_STRING = 65535  # bytes of UTF-8 in an MQTT string (a topic, the client id, the user name, the password)
TOPIC_ROOM = 1000  # of a topic's bytes, left by a prefix or the Sparkplug ids for the levels the station puts with them
MAX_SECONDS = 30 * 86400  # beyond Python's waits (about 9.2e9 s overflows them) and beyond any sensible setting
Seconds = Annotated[float, Field(le=MAX_SECONDS)]
# the least a loop's period may be: 1e-300 passed, and its loop spun a core
MIN_PERIOD = 0.01
# the least time a connection or a download may take: below it every one timed out (1e-300 passed)
MIN_NETWORK_S = 0.1
# the least a trigger may wait for a fresh frame (a frame at 20 frames/s): 1e-300 passed, and every trigger timed out
MIN_CAPTURE_S = 0.05
# the least a worker may be silent before the watchdog replaces it (they beat every half second or so): 1e-300 passed,
# and the source was replaced at every check
MIN_STALL_S = 1.0
ReportFormat = Literal["html", "pdf"]  # as the reports package renders them (the config's and the shift_report command's)
ReportLang = Literal["en", "zh", "es"]


class Section(BaseModel):
    """Shared base: strict types, unknown keys are errors (a typo must not be silently ignored), no .inf or .nan."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        # a NUL ("\0" in double quotes) passed validation, then the station's start ended in a traceback (a path's
        # "embedded null byte", http.host's TypeError) or, in mqtt.client_id or username, the broker dropped every connect
        if isinstance(v, str) and "\0" in v or isinstance(v, list) and any(isinstance(x, str) and "\0" in x for x in v):
            raise ValueError("holds a NUL character (\\0); remove it")
        return v


# -- sources --------------------------------------------------------------------------------------------
class Reconnect(Section):
    initial_s: Seconds = Field(0.5, ge=MIN_PERIOD, title="First retry delay", description="Seconds before the first reconnect attempt.")
    max_s: Seconds = Field(30.0, ge=MIN_PERIOD, title="Longest retry delay", description="Delays double after each failure up to this.")

    @model_validator(mode="after")
    def _ordered(self) -> Reconnect:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s {self.initial_s} is above max_s {self.max_s}; the first delay cannot exceed the longest")
        return self


class _Capture(Section):
    mode: Literal["trigger", "continuous"] = Field(
        "trigger", title="When to inspect",
        description="trigger: inspect a fresh frame on each MQTT trigger; continuous: inspect frames as they come.")
    interval_s: Seconds | None = Field(
        None, gt=0, title="Continuous interval", description="In continuous mode, inspect at most one frame per this many seconds.")
    capture_timeout_s: Seconds = Field(2.0, ge=MIN_CAPTURE_S, title="Capture timeout", description="How long a trigger waits for a fresh frame.")
    reconnect: Reconnect = Field(default_factory=Reconnect, title="Reconnect", description="Backoff when the device drops.")


class CameraSource(_Capture):
    type: Literal["camera"] = Field(title="Source kind", description="A local camera through OpenCV.")
    device: int | str = Field(0, title="Camera", description="OpenCV camera index (0, 1, ...) or device path (/dev/video0).")
    width: int | None = Field(None, gt=0, title="Width", description="Requested frame width in px.")
    height: int | None = Field(None, gt=0, title="Height", description="Requested frame height in px.")
    fps: float | None = Field(None, gt=0, title="Frame rate", description="Requested camera frame rate.")

    @field_validator("device")
    @classmethod
    def _index(cls, v: int | str) -> int | str:
        # `device: "0"` (quoted) reached OpenCV as a file name: the station started and retried a camera that never opened
        if isinstance(v, str) and v.strip().isdigit():
            return int(v)
        return v


def _env_name(v: str) -> str:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
        raise ValueError("give the NAME of an environment variable (the password itself never goes in the file)")
    return v


EnvName = Annotated[str, AfterValidator(_env_name)]  # a password's variable: the password itself never goes in the file


def env_password(name: str, field: str) -> str:
    """A password from the environment variable `name` (read when used, never stored); `field` names the setting."""
    value = os.environ.get(name)
    if value is None:
        raise InspectorError(f"{field}: environment variable {name} is not set; export it or remove password_env")
    return value


def split_url(url: str) -> tuple[str, str, str, str]:
    """(scheme, user info, host[:port], the rest from its first / ? or #) of a URL; the user info runs to the
    authority's last `@` (a password may hold one, un-encoded)."""
    scheme, _, rest = url.partition("://")
    end = re.search(r"[/?#]", rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    userinfo, _, hostport = authority.rpartition("@")
    return scheme, userinfo, hostport, tail


# after an `@` in a query: its next parameter (`?user=me@x.com&pw=...`), not a host a password's `?` ran on to
_QUERY_ON = re.compile(r"[^/?#]*[&=]")


def safe_url(url: str, text: str | None = None, mark: bool = False) -> str:
    """`url` without what may be a secret, for errors, logs and records: all its user info (to the authority's last `@`:
    a password may hold one), its query (a token) and its fragment; `mark` shows where they were (`…@`, `?…`, `#…`),
    for a value echoed to whoever typed it. Given `text` (an error about `url`), `text` with each of them cut out.
    Path parameters from the first `;` or `=` on are cut too (a `;jsessionid=`, a camera's `/user=admin_password=...`, a
    GStreamer pipeline's `user-pw=`), and the property values before a pipeline's URL.
    The scheme is all before `://`, or `scheme:/` (a slash short). An `@` after the host (a password holding `/`, `?` or
    `#`, which FFmpeg needs %-encoded but people type as they are) leaves no telling a password from a host, unless it
    lies in a query and a parameter follows it: then only the scheme is shown, and every piece of what may be user info
    is cut from `text`."""
    scheme, sep, rest = url.partition("://")
    if sep:  # a pipeline's properties before it (`rtspsrc user-pw=... location=rtsp://`): their values cut
        scheme = re.sub(r"""=("[^"]*"|'[^']*'|\S*)(?=\s)""", "=…", scheme) + sep
    elif short := re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/", url):  # rtsp:/admin:pw@cam
        scheme, rest = short.group(), url[short.end() :]
    else:
        scheme, rest = "", url
    end, query = re.search(r"[/?#]", rest), re.search(r"[?#]", rest)
    host_end, query_at = end.start() if end else len(rest), query.start() if query else len(rest)
    # a malformed host after it (`@cam 4`, `@cam4:55a`, a typo the config's error echoes) hides nothing either
    if ats := [i for i in range(host_end, len(rest)) if rest[i] == "@" and (i < query_at or not _QUERY_ON.match(rest, i + 1))]:
        if text is None:
            return f"{scheme}…"
        secrets = re.split(r"[:/?#@]", rest[: ats[-1]])  # where urllib or FFmpeg ends the user info, and what they echo of it
    else:
        at = rest.rfind("@", 0, host_end)
        userinfo, rest = rest[: max(at, 0)], rest[at + 1 :]  # none: nothing of `text` is cut as user info
        cut = re.search(r"[?#]", rest)
        path, hidden = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
        query, _, fragment = hidden.partition("#")
        cut = re.search(r"[;=]", path)
        path, params = (path[: cut.start()], path[cut.start() :]) if cut else (path, "")
        path += params[:1] + "…" if params else ""
        if text is None:
            if mark:
                return f"{scheme}{'…@' if at >= 0 else ''}{path}{'?…' if query else ''}{'#…' if '#' in hidden else ''}"
            return f"{scheme}{path}" + ("?…" if "?" in hidden else "")
        secrets = [userinfo, params[1:], query[1:], fragment]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):  # a longer one first: a shorter may lie within it
        text = text.replace(secret, "…")
    return text


class StreamSource(_Capture):
    type: Literal["stream"] = Field(title="Source kind", description="A network stream through OpenCV/FFmpeg.")
    url: str = Field(title="Stream URL", description="rtsp://, rtsps://, http:// or https:// (e.g. an MJPEG stream).")
    password_env: EnvName | None = Field(None, title="Password variable",
                                         description="Name of the environment variable holding the camera's password, for a "
                                                     "url naming its user without one (rtsp://admin@cam/...).")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(rtsps?|https?)://[^\s]+$", v):
            raise ValueError("give an rtsp://, rtsps://, http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _user_without_password(self) -> StreamSource:
        if self.password_env is not None:
            userinfo = split_url(self.url)[1]
            if not userinfo:
                raise ValueError("source.password_env: give the user name in source.url (rtsp://USER@host/...), the password "
                                 "is added from the variable")
            if ":" in userinfo:
                raise ValueError("source.password_env: source.url holds a password too; give it in one place (the variable)")
        return self

    def open_url(self) -> str:
        """The URL to open: with password_env, its password added, %-encoded (a / ? # @ in it broke the URL)."""
        if self.password_env is None:
            return self.url
        from urllib.parse import quote

        scheme, user, hostport, tail = split_url(self.url)
        return f"{scheme}://{user}:{quote(env_password(self.password_env, 'source.password_env'), safe='')}@{hostport}{tail}"


class VideoSource(_Capture):
    type: Literal["video"] = Field(title="Source kind", description="A video file replayed as if it were a camera.")
    path: str = Field(title="Video file", description="Path of the video file.")
    fps: float | Literal["native", "max"] = Field(
        "native", title="Replay rate", description="native: the file's own frame rate; max: as fast as the inspector takes frames; or a number.")
    loop: bool = Field(True, title="Loop", description="Start again at the end of the file.")

    @field_validator("fps")
    @classmethod
    def _rate(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not 0 < v <= 1000:
            raise ValueError("give a replay rate above 0 and at most 1000 frames/s, or native or max")
        return v

    @model_validator(mode="after")
    def _paced(self) -> VideoSource:
        # at max, the frames between two inspected ones were decoded only to be thrown away (a full core for one frame a
        # second), and which frame was inspected depended on the decoding speed
        if self.fps == "max" and self.interval_s is not None:
            raise ValueError("interval_s with fps: max decodes every frame to inspect a few; give fps: native or a rate, or leave "
                             "interval_s out to inspect every frame")
        return self


class FolderSource(Section):
    type: Literal["folder"] = Field(title="Source kind", description="A watched folder: every new image file is inspected.")
    path: str = Field(title="Folder", description="Folder to watch (not recursive).")
    poll_s: Seconds = Field(0.2, ge=MIN_PERIOD, title="Poll interval", description="Seconds between scans of the folder.")
    settle_s: Seconds = Field(0.2, ge=0, title="Settle time", description="A file is read once its size and time are unchanged this long. Hidden files (.name) are partial writes and are never read.")
    after: Literal["move", "delete", "keep"] = Field(
        "move", title="After inspection", description="move: into <folder>/done (files not inspected: <folder>/rejected; a name already there gets -2, -3, ...; never pruned: it grows until cleaned); delete; keep (ids from path, size, time and bytes prevent repeats).")
    max_file_bytes: int = Field(50_000_000, ge=1, title="Largest file", description="Files over this size are set aside as rejected, unread.")


class MqttSource(Section):
    type: Literal["mqtt"] = Field(title="Source kind", description="Images arrive over MQTT only (<prefix>/image or a trigger with an image).")


Source = Annotated[CameraSource | StreamSource | VideoSource | FolderSource | MqttSource, Field(discriminator="type")]


# -- the rest ---------------------------------------------------------------------------------------------
class StationInfo(Section):
    name: str = Field(title="Station id", description="Written into every record; ASCII letters, digits and . _ - : only.")
    line: str | None = Field(None, title="Line", description="Production line name, for reports.")

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        if not SAFE_ID.match(v):
            raise ValueError("use 1-64 ASCII letters (A-Z, a-z), digits and . _ - : (no slashes or spaces)")
        return v


class ModelSection(Section):
    path: str = Field(title="Model", description="Checkpoint directory from `inspector fit`, or an exported model file.")
    device: str = Field("cpu", title="Device", description="Where the model runs: cpu or cuda[:N]; for ONNX models also tensorrt[:N]. TensorRT engines run on cuda.")
    image_threshold: float | None = Field(None, title="Image threshold", description="Overrides the calibrated image threshold.")
    pixel_threshold: float | None = Field(None, title="Pixel threshold", description="Overrides the calibrated pixel threshold.")
    mm_per_px: float | None = Field(None, gt=0, le=MAX_MM_PER_PX, title="Scale", description="Millimetres per pixel, to report defect areas in mm2.")
    batch_size: int = Field(8, ge=1, le=256, title="Largest batch", description="Frames that queue up are inspected together, up to this many.")
    max_image_pixels: int = Field(50_000_000, ge=1, le=400_000_000, title="Largest image",
                                  description="Images over this many pixels (width x height) are refused from their header, "
                                              "before decoding: a 0.4 MB PNG can decode to 1.2 GB. 50 million covers an 8K sensor.")
    queue_size: int = Field(32, ge=1, le=100_000, title="Queue size",
                            description="Frames waiting for inference; a trigger beyond this is rejected on the error topic.")
    # 1 GiB: 7 frames at max_image_pixels' 50 million (a line-scan camera's 16k x 3k), 70 of a 5 MP camera's (more than
    # queue_size and the batch and results in flight hold at the defaults); small beside an edge box's 4-16 GB with its model
    max_queue_bytes: int = Field(1 << 30, ge=1_000_000, title="Largest queue in bytes",
                                 description="Bytes of decoded images accepted and not yet through inference and the store; "
                                             "past them the queue counts as full, as at queue_size (a watched file waits, an "
                                             "image sent over MQTT waits queue_wait_s, a capture trigger is refused, a live "
                                             "frame is dropped). Default 1 GiB.")
    queue_wait_s: Seconds = Field(10.0, ge=0, title="Queue wait",
                                  description="How long an image sent over MQTT (the image topic, a trigger's path, url or "
                                              "base64) waits from its arrival (or the end of the start) for room in a full queue before it is rejected: the "
                                              "parts the broker held while the station was down come at once when it starts. A "
                                              "capture trigger never waits (the part moves on). 0: rejected at once.")
    verify_good: list[str] = Field([], title="Good verification images",
                                   description="Images of good parts the model must PASS when the station starts and before a "
                                               "reloaded model replaces the one in use; a failure stops the start or the reload.")
    verify_defect: list[str] = Field([], title="Defect verification images",
                                     description="Images of defective parts the model must FAIL, checked with verify_good.")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        try:
            parse_device(v)
        except InspectorError:
            raise ValueError(f"{v!r}: use {', '.join(DEVICES)}, or cuda:N / tensorrt:N for GPU N") from None
        return v


class Tls(Section):
    ca_file: str | None = Field(None, title="CA certificates", description="PEM file of CAs to trust (default: the system's).")
    cert_file: str | None = Field(None, title="Client certificate", description="PEM client certificate, for mutual TLS.")
    key_file: str | None = Field(None, title="Client key", description="PEM key of the client certificate.")
    insecure: bool = Field(False, title="Skip host name check", description="Do not check the broker's host name (never in production).")

    @model_validator(mode="after")
    def _paired(self) -> Tls:
        if self.key_file is not None and self.cert_file is None:  # the client ignored a key alone: no mutual TLS, and no word of it
            raise ValueError("key_file without cert_file: give the client certificate as cert_file (or leave key_file out)")
        return self

    def check_files(self) -> None:
        """InspectorError naming the key of a file that is missing or that this user cannot read: ssl's own error named
        no file ("No such file or directory"). `serve` checks this before it creates its store, `config validate --here` too."""
        for key in ("ca_file", "cert_file", "key_file"):
            if (path := getattr(self, key)) is None:
                continue
            try:
                if what := what_is_wrong_with(path, "PEM file"):  # a FIFO held open() and the station's start for good
                    fix = "give a PEM file" if what.startswith(("a folder", "not a regular")) else "fix the path"
                    raise InspectorError(f"mqtt.tls.{key} {path}: {what}; {fix}")
                with open(path, "rb"):
                    pass
            except OSError as exc:  # a name too long is no permission to give
                fix = f"let this user ({user_name()}) read it" if isinstance(exc, PermissionError) else "fix the path"
                raise InspectorError(f"mqtt.tls.{key} {path}: cannot be read ({exc.strerror or exc}); {fix}") from None


def host_alone(v: str, section: str, what: str) -> str:
    """A host name or address as `<section>.host` takes it: refused, with the fix, if empty, with spaces around it, or
    given as a URL or host:port (as other tools take it), naming `<section>.port` for the port."""
    if not v.strip():  # mqtt: paho's "Invalid host." traceback at start; http: every interface, unasked
        raise ValueError(f"is empty; give {what}, e.g. 127.0.0.1")
    if v != v.strip():  # ' broker' passed, then the name looked up was not the broker's
        raise ValueError(f"has spaces around it; give {v.strip()!r} without them")
    # a URL or host:port: mqtt's station said only "unreachable" ever after, http's start named the wrong thing
    if m := re.fullmatch(r"(?:([A-Za-z][A-Za-z0-9+.-]*)://)?\[?([^\[\]/]+?)\]?(?::(\d+))?(?:/\S*)?", v):
        scheme, host, port = m.groups()
        bracketed = "[" in v  # an IPv6 address is given bare: ::1
        if scheme or bracketed or (port and ":" not in host):
            what_it_is = "a URL" if scheme else "a host and a port" if port else "an address in brackets"
            fix = f"give the host alone ({host})" + (f" and the port as {section}.port: {port}" if port else "")
            tls = "; TLS goes in mqtt.tls" if section == "mqtt" and scheme in ("mqtts", "ssl") else ""
            raise ValueError(f"is {what_it_is}; {fix}{tls}")
    return v


class MqttSection(Section):
    host: str = Field("127.0.0.1", title="Broker host", description="MQTT broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, title="Broker port", description="1883 plain, 8883 TLS by convention.")
    protocol: Literal["5", "3.1.1"] = Field("5", title="Protocol", description="MQTT protocol version.")
    prefix: str = Field(title="Topic prefix", description="All topics live under it, e.g. factory/line1/station3.")
    client_id: str | None = Field(None, title="Client id", description="Default: inspector-<station name>. Must be unique on the broker.")
    username: str | None = Field(None, title="User name", description="Broker user name.")
    password_env: EnvName | None = Field(None, title="Password variable", description="Name of the environment variable holding the password.")
    tls: Tls | None = Field(None, title="TLS", description="Connect with TLS (omit for a plain connection).")
    keepalive_s: int = Field(30, ge=5, le=3600, title="Keepalive", description="Seconds between pings; the last will fires after 1.5x this.")
    session_expiry_s: int = Field(86400, ge=0, le=2**32 - 1, title="Session expiry",
                                  description="How long the broker keeps triggers for this station while it is down (MQTT 5).")
    connect_timeout_s: Seconds = Field(10.0, ge=MIN_NETWORK_S, title="Connect timeout", description="How long the first connection may take at start.")
    max_payload_bytes: int = Field(20_000_000, ge=1024, title="Largest payload", description="Bigger trigger/image payloads are rejected.")
    # 1 GiB: some 50 images of max_payload_bytes' 20 MB, hundreds of a camera's usual 1-5 MB, more than a line's legitimate
    # burst (and a reconnect's QoS 1 backlog, 100 at most) brings unless its images average over 10 MB; small beside the
    # memory of the edge boxes the station runs on (4 GB and up) with its model. Count alone let 10,000 x 20 MB queue.
    max_waiting_bytes: int = Field(1 << 30, ge=1_000_000, title="Largest backlog",
                                   description="Bytes of received trigger/image payloads that may wait to be read; a bigger input "
                                               "beyond them is answered overloaded on the error topic (triggers and commands of up "
                                               "to 4 KB are not). Default 1 GiB.")
    allowed_dirs: list[str] = Field([], title="Readable folders",
                                    description="Triggers may name image files under these folders only.")
    allow_urls: bool = Field(False, title="Fetch URLs", description="Let triggers name an http(s) URL to fetch the image from.")
    url_timeout_s: Seconds = Field(5.0, ge=MIN_NETWORK_S, title="URL timeout", description="Seconds to fetch an image by URL; a download still running then is given up.")
    url_hosts: list[str] = Field([], title="URL hosts",
                                 description="With allow_urls: the hosts (name, or name:port) URL triggers and their redirects may "
                                             "fetch from, e.g. images.line1.local; empty: any host the station reaches.")
    response_topics: list[str] = Field([], title="Response topics",
                                       description="MQTT 5: filters (e.g. hmi/#) of the Response Topics an input may name to get a copy "
                                                   "of its answer there; others are ignored (grant the station's broker user these).")

    @field_validator("client_id", "username")
    @classmethod
    def _mqtt_string(cls, v: str | None) -> str | None:
        # over MQTT's 65535 bytes, paho's struct.error was serve's traceback
        if v is not None and (n := len(v.encode("utf-8", "surrogatepass"))) > MQTT_STRING:
            raise ValueError(f"is {n:,} bytes long; MQTT takes at most {MQTT_STRING:,}: shorten it")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return host_alone(v, "mqtt", "the broker's host name or address")

    @field_validator("url_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for h in v:
            name, _, port = h.rpartition(":") if h.count(":") == 1 else (h, "", "")
            if not name or any(c in name for c in "/@?#[] ") or (port and not port.isdigit()):
                raise ValueError(f"{h!r} is not a host; give a name or address, optionally with :port, e.g. images.line1.local:8080")
        return [h.lower() for h in v]

    @field_validator("response_topics")
    @classmethod
    def _filters(cls, v: list[str]) -> list[str]:
        for f in v:
            levels = f.split("/")
            if not f or "\0" in f or any(("+" in lv or "#" in lv) and lv not in ("+", "#") for lv in levels) or "#" in levels[:-1]:
                raise ValueError(f"{f!r} is not a topic filter; give levels like hmi/+/replies or hmi/#")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or v.startswith("/") or v.endswith("/") or not TOPIC_LEVEL.match(v):
            raise ValueError("give topic levels like factory/line1/station3 (no leading/trailing /, no + or #)")
        if (n := len(v.encode("utf-8", "surrogatepass"))) > MQTT_STRING - TOPIC_ROOM:  # paho's struct.error, serve's traceback
            raise ValueError(f"is {n:,} bytes long; an MQTT topic holds at most {MQTT_STRING:,}, the station's own levels "
                             f"included: keep it under {MQTT_STRING - TOPIC_ROOM:,} (a few levels, like factory/line1/station3)")
        if v.startswith("$"):  # the broker's own ($SYS/...): clients cannot publish there, so the station hears nothing
            raise ValueError("topics beginning with $ are the broker's own (MQTT 4.7.2); give levels like factory/line1/station3")
        return v

    def password(self) -> str | None:
        """The password from its environment variable (read at connect time, never stored)."""
        if self.password_env is None:
            return None
        value = env_password(self.password_env, "mqtt.password_env")
        if (n := len(value.encode("utf-8", "surrogateescape"))) > MQTT_STRING:  # paho's struct.error at connect: a traceback
            raise InspectorError(f"mqtt.password_env: the password in {self.password_env} is {n:,} bytes long; MQTT takes at most "
                                 f"{MQTT_STRING:,}: check what the variable holds")
        return value


class Sparkplug(Section):
    enabled: bool = Field(False, title="Sparkplug B", description="Also publish NBIRTH/DBIRTH/DDATA/NDEATH for SCADA hosts.")
    group_id: str = Field("inspection", title="Group id", description="Sparkplug group id.")
    edge_node_id: str | None = Field(None, title="Edge node id", description="Default: the station name.")
    device_id: str = Field("inspector", title="Device id", description="Sparkplug device id of the inspector.")

    @field_validator("group_id", "edge_node_id", "device_id")
    @classmethod
    def _level(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or not TOPIC_LEVEL.match(v)):
            raise ValueError("one topic level: no /, + or #")
        if v is not None and (n := len(v.encode("utf-8", "surrogatepass"))) > MQTT_STRING - TOPIC_ROOM:  # its topics: a traceback
            raise ValueError(f"is {n:,} bytes long; a Sparkplug topic holds all three ids in at most {MQTT_STRING:,}: shorten it")
        return v

    @model_validator(mode="after")
    def _topic_fits(self) -> Sparkplug:
        ids = (self.group_id, self.edge_node_id or "", self.device_id)  # a station name, the node id's default, is 64 at most
        if (n := sum(len(i.encode("utf-8", "surrogatepass")) for i in ids)) > MQTT_STRING - TOPIC_ROOM:
            raise ValueError(f"group_id, edge_node_id and device_id are {n:,} bytes together; a Sparkplug topic holds them all in "
                             f"at most {MQTT_STRING:,}: shorten them")
        return self


class Retention(Section):
    max_age_days: float | None = Field(90.0, gt=0, le=100 * 365, title="Keep days", description="Published records older than this are deleted.")
    max_rows: int | None = Field(None, gt=0, title="Keep rows", description="Keep at most this many published records.")
    every_s: Seconds = Field(3600.0, ge=MIN_PERIOD, title="Prune interval", description="Seconds between retention passes.")


class StoreSection(Section):
    data_dir: str = Field(title="Data directory", description="SQLite store, images, overlays and reports; the daemon writes nowhere else.")
    save_images: Literal["all", "fail", "none"] = Field("all", title="Save images", description="Which inspected images to keep.")
    save_overlays: Literal["all", "fail", "none"] = Field("fail", title="Save overlays", description="Which overlays to render and keep.")
    retention: Retention = Field(default_factory=Retention, title="Retention", description="When stored results are deleted.")
    min_free_mb: int = Field(1024, ge=0, title="Keep free (MB)",
                             description="Below this much free disk, images and overlays are not saved (results still are); 0: off.")


class HttpSection(Section):
    enabled: bool = Field(True, title="HTTP", description="Serve /health and /metrics (Prometheus).")
    host: str = Field("127.0.0.1", title="Bind address", description="Address to listen on.")
    port: int = Field(9108, ge=0, le=65535, title="Port", description="Port to listen on (0: any free port).")
    live: bool = Field(True, title="Live view", description="Serve a page at / with the latest part, its overlay and the counts "
                                                            "since start (whoever reaches http.host sees the parts).")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return host_alone(v, "http", "the address to listen on (0.0.0.0: every interface)")


class ReportsSection(Section):
    on_fail: bool = Field(False, title="Report each FAIL", description="Render an inspection report for every FAIL.")
    formats: list[ReportFormat] = Field(["html"], title="Formats", description="Report formats.")  # a default the schema shows
    lang: ReportLang = Field("en", title="Language", description="Report language: en, zh or es.")
    # validated when left out too: local reads $TZ, which may name no zone (a traceback at the first report, or later)
    timezone: str = Field("local", validate_default=True, title="Time zone", description="Zone the reports show times in, and of shift_report command "
                          "times without an offset: an IANA name (Europe/Berlin), UTC, or local (this machine's zone). Records keep UTC.")

    organisation: str | None = Field(None, title="Organisation", description="Company and site, printed at the head of every "
                                     "report (and of each later PDF page).")
    document: str | None = Field(None, title="Document number", description="The controlled form's number and revision "
                                 "(e.g. QF-7.5-03 rev. B), printed at the head of every report and of each later PDF page.")
    logo: str | None = Field(None, title="Logo", description="A PNG, JPEG or SVG file (under 2 MB) shown at the head of every report.")
    _letterhead: Any = PrivateAttr(None)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        zone_of(v)
        return v

    @model_validator(mode="after")
    def _read_letterhead(self) -> ReportsSection:
        """The logo is read (and checked) once, here: a missing file is a config mistake, found before the station starts."""
        from reports.errors import ReportError
        from reports.letterhead import letterhead

        try:
            self._letterhead = letterhead(self.organisation, self.document, self.logo)
        except ReportError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def letterhead(self) -> Any:
        """The reports' `reports.letterhead.Letterhead`."""
        return self._letterhead


def zone_of(name: str) -> tzinfo | None:
    """A config's time zone resolved (None: this machine's, by the C library's rules); ValueError naming it if unknown."""
    from reports.errors import ReportError
    from reports.zones import zone

    try:
        return zone(name)
    except ReportError as exc:
        raise ValueError(str(exc)) from None


class WatchdogSection(Section):
    interval_s: Seconds = Field(2.0, ge=MIN_PERIOD, title="Check interval", description="Seconds between watchdog checks.")
    stall_s: Seconds = Field(30.0, ge=MIN_STALL_S, title="Stall limit", description="A worker silent this long is restarted (or the daemon marked failing); above interval_s.")

    @model_validator(mode="after")
    def _stall_above_interval(self) -> WatchdogSection:
        if self.stall_s <= self.interval_s:  # a stall seen only at a check: one at or under its interval is no limit
            raise ValueError(f"stall_s {self.stall_s:g} is not above interval_s {self.interval_s:g}; give stall_s several times "
                             f"interval_s (e.g. {max(MIN_STALL_S, 10 * self.interval_s):g}), or a shorter interval_s")
        return self


class DaemonSection(Section):
    drain_timeout_s: Seconds = Field(30.0, ge=0, title="Drain timeout", description="On SIGTERM, how long to finish accepted work.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", title="Log level", description="Logging verbosity.")


class StationConfig(Section):
    station: StationInfo = Field(title="Station", description="Who this inspector is.")
    model: ModelSection = Field(title="Model", description="What it runs.")
    source: Source = Field(title="Source", description="Where frames come from.")
    mqtt: MqttSection = Field(title="MQTT", description="The broker and topics.")
    sparkplug: Sparkplug = Field(default_factory=Sparkplug, title="Sparkplug B", description="Optional SCADA output.")
    store: StoreSection = Field(title="Store", description="Where results are kept.")
    http: HttpSection = Field(default_factory=HttpSection, title="HTTP", description="Health and metrics endpoint.")
    reports: ReportsSection = Field(default_factory=ReportsSection, title="Reports", description="Automatic reports.")
    watchdog: WatchdogSection = Field(default_factory=WatchdogSection, title="Watchdog", description="Stuck-worker detection.")
    daemon: DaemonSection = Field(default_factory=DaemonSection, title="Daemon", description="Process behaviour.")

    @model_validator(mode="after")
    def _folder_readable(self) -> StationConfig:
        if isinstance(self.source, FolderSource) and Path(self.source.path).resolve() == Path(self.store.data_dir).resolve():
            raise ValueError("source.path and store.data_dir must differ: the daemon would inspect its own images")
        return self


# -- loading ------------------------------------------------------------------------------------------------
Lines = dict[tuple, tuple[str, int]]


def _line_map(node: yaml.Node, file: str, path: tuple = (), out: Lines | None = None, seen: set | None = None) -> Lines:
    """(key path) -> (file, line) for every key and item in a composed YAML document. An aliased node is walked once
    (a few lines of aliases of aliases expand to millions of paths: that hung validate and serve)."""
    out, seen = {} if out is None else out, set() if seen is None else seen
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, k.value)
            if key in out and k.value != "<<":  # PyYAML lets the last one win, silently
                raise InspectorError(f"config {file}:{k.start_mark.line + 1}: {'.'.join(map(str, key))} is given twice "
                                     f"(also on line {out[key][1]}); keep one")
            out[key] = (file, k.start_mark.line + 1)
            _line_map(v, file, key, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*path, i)] = (file, v.start_mark.line + 1)
            _line_map(v, file, (*path, i), out, seen)
    return out


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, but 1e-3 and 2E5 are numbers (1.1 wants 1.0e-3), as a user expects."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


MAX_CONFIG_BYTES = 2**20


class Unreadable(InspectorError):
    """A config file that cannot be read at all (missing, a folder, no access): bad input, not a config with problems."""


def _read_yaml(path: Path) -> tuple[dict, Lines]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # not all of a video or /dev/zero given by mistake
        if len(raw) > MAX_CONFIG_BYTES:
            raise Unreadable(f"config {path}: over {MAX_CONFIG_BYTES // 2**20} MB, not a station config (they are a few kB); "
                                 "check the path")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise Unreadable(f"config {path}: no such file; check the path (`inspector config example` lists example configs)") from None
    except OSError as exc:  # its strerror, not str(exc), which named the file a second time
        # a name too long was sent to its permissions: "give a shorter path", as wherever a path is too long
        fix = write_fix(exc) if exc.errno == errno.ENAMETOOLONG else \
            f"give the path of a station config this user ({user_name()}) may read"
        raise Unreadable(f"config {path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    except UnicodeDecodeError as exc:
        raise InspectorError(f"config {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        fix = "replace the tab with spaces (YAML takes no tabs)" if "'\\t'" in str(exc.problem) else "fix the syntax there"
        raise InspectorError(f"config {path}{line}: not valid YAML ({exc.problem}); {fix}") from None
    except yaml.YAMLError as exc:
        raise InspectorError(f"config {path}: not valid YAML ({exc})") from None
    except RecursionError:  # PyYAML composes recursively: a few hundred [ or { deep was a traceback (validate and serve)
        raise InspectorError(f"config {path}: nested too deeply to be a station config (its sections are a few levels deep); "
                             "check the file's brackets and indentation") from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise InspectorError(f"config {path}: the top level must be a mapping of sections (station:, model:, ...)")
    return data, (_line_map(node, str(path)) if node is not None else {})


def deep_merge(base: dict, override: dict, _path: tuple = (), _replaced: list | None = None) -> dict:
    """`override` over `base`: mappings merge key by key, anything else is replaced; so is a mapping of another `type` (a
    station's folder source over the defaults' camera: its `device` was merged in and refused as an unknown key)."""
    out = dict(base)
    for k, v in override.items():
        old = out.get(k)
        if isinstance(v, dict) and isinstance(old, dict) and ("type" not in v or v.get("type") == old.get("type")):
            out[k] = deep_merge(old, v, (*_path, k), _replaced)
        else:
            out[k] = v
            if _replaced is not None and k in base:
                _replaced.append((*_path, k))
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[dict, Lines]:
    """The merged mapping of a station file and the defaults it `extends`, with the line of every key."""
    path = Path(path)
    if path.resolve() in _seen:
        raise InspectorError(f"config {path}: `extends` loops back to itself; remove the cycle")
    data, lines = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data, lines
    if not isinstance(parent, str) or not parent.endswith((".yaml", ".yml")):
        # any file was read and its lines printed back as unknown keys (`extends: /etc/shadow`)
        raise InspectorError(f"config {path}: `extends` must name a .yaml or .yml file")
    try:
        base, base_lines = load_raw(path.parent / parent, (*_seen, path.resolve()))
    except Unreadable as exc:  # the file given was read: what it extends is one of its problems
        raise InspectorError(f"{exc} (extended by {path})") from None
    replaced: list[tuple] = []
    merged = deep_merge(base, data, _replaced=replaced)
    # the defaults' lines under a value the station replaced are not where its errors are
    kept = {k: v for k, v in base_lines.items() if not any(k[:len(r)] == r and len(k) > len(r) for r in replaced)}
    return merged, {**kept, **lines}


def _locate(loc: tuple, lines: Lines, fallback: str) -> str:
    """file:line of the deepest part of a pydantic error location found in the YAML (union tags are skipped)."""
    found, path = None, ()
    for part in loc:
        if (*path, part) in lines:
            path = (*path, part)
            found = lines[path]
    return f"{found[0]}:{found[1]}" if found else fallback


def config_errors(path: str | Path, unreadable: bool = False) -> tuple[StationConfig | None, list[str]]:
    """Validate a config file: (config, []) or (None, ["file:line: where: what", ...]). A file that cannot be read at
    all is one of them too, unless `unreadable`: then it raises `Unreadable` (bad input, not an invalid config)."""
    try:
        data, lines = load_raw(path)
    except InspectorError as exc:
        if unreadable and isinstance(exc, Unreadable):
            raise
        return None, [str(exc)]
    try:
        return StationConfig.model_validate(data), []
    except ValidationError as exc:
        errors = []
        kinds = {"camera", "stream", "video", "folder", "mqtt"}
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if len(loc) > 1 and loc[0] == "source" and loc[1] in kinds:
                loc = (loc[0], *loc[2:])  # the union tag is not a YAML key
            if err["type"].startswith("union_tag"):
                loc = (*loc, "type")
            where = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = unknown_key(tuple(err["loc"]))
            elif err["type"] == "union_tag_not_found":  # "Unable to extract tag using discriminator 'type'"
                msg = f"missing; give the kind of source: {', '.join(sorted(kinds))}"
            elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict) and "password" not in where:
                # (a password pasted where its variable's name goes is not printed back)
                got = err["input"]
                if isinstance(got, str) and (where.endswith("url") or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", got) or "://" in got):
                    got = safe_url(got, mark=True)  # a secret in it would reach the terminal and, from serve, the journal
                msg += f" (got {_shown(got)})"
                read_as = "true/false" if isinstance(err["input"], bool) else "a number"  # `name: no`, `name: 1e5`, or 0123
                if err["type"] == "literal_error" and not isinstance(err["input"], str) and repr(str(err["input"])) in msg:
                    msg += f"; YAML read it as {read_as}: quote it, '{err['input']}'"
                elif err["type"] == "string_type" and isinstance(err["input"], (int, float)):
                    msg += f"; YAML read it as {read_as}: put it in quotes"
                elif err["type"] in ("int_type", "float_type", "bool_type") and isinstance(err["input"], str) and _unquoted(err["input"]):
                    msg += "; remove the quotes"  # port: '1883', enabled: "false"
                elif where == "mqtt.tls" and err["input"] is True:
                    msg += "; give tls: {} for TLS with the system's CAs, or its keys (ca_file, cert_file, key_file)"
                elif err["input"] is None:  # `port:` with nothing after it
                    optional = any(not m.model_fields[loc[-1]].is_required() for m in _models_at(tuple(err["loc"])[:-1])
                                   if isinstance(loc[-1], str) and loc[-1] in m.model_fields)
                    msg += f"; the value is empty: give one{' or leave the key out' if optional else ''}"
            errors.append(f"{_locate(loc, lines, str(path))}: {where}: {msg}")
        return None, errors


def _shown(value: Any, most: int = 120) -> str:
    """A value echoed in an error, cut short: a 70,000 character prefix (or a file pasted in) filled the terminal."""
    text = repr(value)
    if len(text) <= most:
        return text
    return f"{text[:most]}…" + (f" ({len(value):,} characters)" if isinstance(value, str) else "")


def _unquoted(text: str) -> bool:
    """Whether YAML reads `text`, without its quotes, as a number or true/false."""
    try:
        return isinstance(yaml.load(text, Loader=_Loader), (bool, int, float))
    except yaml.YAMLError:
        return False


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config sections a field's type holds (through Optional, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _models_at(loc: tuple) -> list[type[BaseModel]]:
    """The sections a pydantic location (its union tags included: source.camera) points into."""
    models: list[type[BaseModel]] = [StationConfig]
    for part in loc:
        tagged = [m for m in models if "type" in m.model_fields and get_args(m.model_fields["type"].annotation) == (part,)]
        if len(models) > 1 and tagged:
            models = tagged
        elif isinstance(part, str):
            models = [m2 for m in models if part in m.model_fields for m2 in _models_in(m.model_fields[part].annotation)]
    return models


def unknown_key(loc: tuple) -> str:
    """What to say of a key the schema has not there: the key meant (a typo: `thresold`), or where the key belongs."""
    key, fallback = loc[-1], "unknown key (check the spelling; `inspector config schema` lists every key)"
    if not isinstance(key, str):
        return fallback
    here = {name for m in _models_at(loc[:-1]) for name in m.model_fields}
    if key == "password" and "password_env" in here:
        return ("unknown key: the password never goes in the file; export it in an environment variable and give that "
                "variable's name as password_env")
    # a typo (thresold, widht), or the start of a key (tls: {ca: ...})
    ratios = sorted((-(1.0 if n.startswith(f"{key.lower()}_") else difflib.SequenceMatcher(None, key.lower(), n).ratio()), n)
                    for n in here)
    close = [n for r, n in ratios if -r >= 0.6 and r == ratios[0][0]] if ratios else []
    if close:
        return f"unknown key; did you mean {' or '.join(close)}? (`inspector config schema` lists every key)"
    if len(loc) == 3 and loc[0] == "source":  # a key of another kind of source (a folder's `device`)
        kinds = [get_args(m.model_fields["type"].annotation)[0] for m in _models_in(StationConfig.model_fields["source"].annotation) if key in m.model_fields]
        if kinds:
            return f"unknown key for a {loc[1]} source (a key of {' and '.join(kinds)} sources)"
    sections = [name if name == key else f"{name}.{key}" for name, f in StationConfig.model_fields.items()
                if (name != loc[0] or len(loc) > 2) and (name == key or any(key in m.model_fields for m in _models_in(f.annotation)))]
    if sections:
        return f"unknown key here; {key} belongs in {' or '.join(sections)} (`inspector config schema` lists every key)"
    return fallback


def named(path: str | Path, error: str) -> str:
    """One of `config_errors`'s errors, naming the file once (it was said twice: "config X: config X: no such file"):
    an error reading a file names that file already ("config X: ...", X the file given or one it extends); a key's
    starts with its file and line ("X:5: model.path: ...")."""
    if error.startswith("config "):
        return error
    return f"config {error}" if error.startswith(f"{path}:") else f"config {path}: {error}"


def load_config(path: str | Path) -> StationConfig:
    """The validated station config, or an InspectorError listing every problem with its line."""
    config, errors = config_errors(path)
    if config is None:
        if len(errors) == 1:
            raise InspectorError(named(path, errors[0]))
        raise InspectorError(f"config {path}: {len(errors)} problem(s): " + "; ".join(errors))
    return config
