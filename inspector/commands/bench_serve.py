"""`inspector bench serve --config STATION.yaml`: drive a running daemon through its broker at a trigger rate.

Publishes --count inputs at --rate per second (after --warmup ones that are not counted), each with its
own inspection_id, and times trigger -> result at this client. Prints results per second over the run
and p50/p90/p99 latency, and p50 as a ratio of the baseline: the station's model alone in this process,
timed first on the same image. Modes: `image` (raw bytes on <prefix>/image, the id in an MQTT 5 user
property), `base64` (JSON trigger carrying the image), `capture` (JSON trigger: the station's camera).
The station inspects and stores them as parts (inspection ids bench-<run>-N): they count in its shift reports,
so bench a test station, or a line's before production starts.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import queue
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from inspector.commands.common import at_least, load_average, median_seconds, path_of, positive_number, print_json
from model.errors import InspectorError, file_problem


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="trigger->result latency and frames/s of a running daemon", description=__doc__)
    p.add_argument("--config", required=True, type=path_of("station config"), help="the daemon's station config (broker, credentials, topic prefix)")
    p.add_argument("--rate", type=positive_number, default=10.0, help="inputs per second (default 10)")
    p.add_argument("--count", type=at_least(1), default=200, help="timed inputs (default 200)")
    p.add_argument("--warmup", type=at_least(0), default=5, help="untimed inputs first, one at a time (default 5)")
    p.add_argument("--mode", choices=("image", "base64", "capture"), default="image", help="how inputs are sent (default image)")
    p.add_argument("--image", type=path_of("image file"), help="image file to send (default: a synthetic 256x256 PNG)")
    p.add_argument("--timeout", type=positive_number, default=60.0, help="seconds to wait for the last results (default 60)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip timing the station's model alone in this process first (the baseline the latency is compared with)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _synthetic_png(size: int = 256) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.arange(size)
    img = np.tile(0.5 + 0.08 * np.sin(2 * np.pi * x / 6.0), (size, 1)) + rng.normal(0, 0.02, (size, size))
    ok, buf = cv2.imencode(".png", (np.clip(img, 0, 1) * 255).astype(np.uint8))
    return buf.tobytes()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class _Held(logging.Filter):
    """Keeps back the MQTT client's log lines while bench serve connects: "broker unreachable; retrying in the
    background, results are kept until it is back" is how the station rides out an outage, and was printed just
    before bench serve gave up (two lines saying opposite things); why it could not connect is in its one error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def connect(cfg: Any, wait_s: float = 5.0) -> Any:
    """A client connected to the station's broker and subscribed to its results and errors, or an InspectorError at
    once: a benchmark without its broker measures nothing, so it does not retry in the background as the station does."""
    from inspector.commands.config import broker_hint
    from inspector.mqtt import MqttClient, Topics

    topics = Topics(cfg.mqtt.prefix)
    client = MqttClient(cfg.mqtt, f"inspector-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}", persistent=False,
                        subscriptions=[topics.result, topics.error])
    log, held = logging.getLogger("inspector.mqtt"), _Held()
    log.addFilter(held)
    try:
        client.start()  # raises for what retrying cannot mend (TLS, credentials)
        # refused at once (nothing listens there): no wait; else the broker may still be answering
        if not client.state.startswith("unreachable") and not client.connected:
            _wait(lambda: client.connected or not client.state.startswith("connecting"), wait_s)
        if not client.connected:
            why = client.state.removeprefix("unreachable ").strip("()") if client.state.startswith("unreachable") else \
                f"no answer within {cfg.mqtt.connect_timeout_s + wait_s:g} s" if client.state == "connecting" else client.state
            client.stop(0)
            raise InspectorError(f"bench serve: broker {cfg.mqtt.host}:{cfg.mqtt.port}: cannot connect ({why}); {broker_hint(cfg)} "
                                 "or fix mqtt.host and mqtt.port in the station config; nothing was sent")
    finally:
        log.removeFilter(held)
    return client


def bench_serve(cfg: Any, *, rate: float, count: int, warmup: int = 5, mode: str = "image", image: bytes | None = None,
                timeout: float = 60.0, client: Any = None) -> dict[str, Any]:
    """Run the benchmark against the daemon configured by `cfg` (a StationConfig); returns the measurements.
    `client`: one from `connect` (stopped here when done); by default it connects first."""
    from inspector.mqtt import Topics

    if rate <= 0 or count < 1:
        raise InspectorError("bench serve: --rate must be > 0 and --count at least 1")
    if mode == "image" and cfg.mqtt.protocol != "5":
        mode = "base64"  # ids travel in user properties, which MQTT 3.1.1 lacks
    topics = Topics(cfg.mqtt.prefix)
    image = image if image is not None else _synthetic_png()
    b64 = base64.b64encode(image).decode() if mode == "base64" else None
    client = client if client is not None else connect(cfg)
    run = uuid.uuid4().hex[:8]
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    errors: dict[str, str] = {}  # id -> error message (rejected inputs: queue full, ...)

    def send(ident: str) -> None:
        if mode == "image":
            client.publish(topics.image, image, qos=1, user={"inspection_id": ident})
        else:
            body: dict[str, Any] = {"inspection_id": ident, "serial": ident.replace("bench-", "B")}
            if b64 is not None:
                body["base64"] = b64
            client.publish(topics.trigger, json.dumps(body), qos=1)
        sent[ident] = time.monotonic()

    def collect(until: float, want: set[str]) -> None:
        while not want <= got.keys() and time.monotonic() < until:
            try:
                # never past `until`: a fixed 0.1 s made each send up to 0.1 s late while no result came in (a slow
                # station), so the inputs went out slower than --rate, and the station was measured at a lighter load
                msg = client.inbox.get(timeout=max(0.0, min(0.1, until - time.monotonic())))
            except queue.Empty:
                continue
            try:
                body = json.loads(msg.payload)
            except ValueError:
                continue
            ident = body.get("inspection_id")
            if ident in sent and ident not in got:
                got[ident] = msg.received
                if msg.topic == topics.error:
                    errors[ident] = body.get("error", "?")

    try:
        for i in range(warmup):
            ident = f"bench-{run}-w{i}"
            send(ident)
            collect(time.monotonic() + timeout, {ident})
        timed = [f"bench-{run}-{i}" for i in range(count)]
        t0 = time.monotonic()
        for i, ident in enumerate(timed):
            due = t0 + i / rate
            collect(due, set(timed))  # read results while waiting for the next send time
            send(ident)
        collect(time.monotonic() + timeout, set(timed))
    finally:
        client.stop(1)
    done = [i for i in timed if i in got and i not in errors]
    rejected = [errors[i] for i in timed if i in errors]
    lat = [(got[i] - sent[i]) * 1000 for i in done]
    if not lat:
        if rejected:  # answered at once: "no results within 60 s" read as a station that did not answer
            lost = count - len(rejected)
            raise InspectorError(f"bench serve: the station refused {'all ' if not lost else ''}{len(rejected)} of the {count} inputs, e.g. "
                                 f"{rejected[0]}" + (f"; {lost} got no answer within {timeout:g} s" if lost else ""))
        raise InspectorError(f"bench serve: no results within {timeout:g} s; is `inspector serve` running for prefix {cfg.mqtt.prefix}?")
    first, last = min(sent[i] for i in timed), max(got[i] for i in done)
    span = max(sent[i] for i in timed) - first  # count sends are count - 1 intervals: count / span read 20/s for 2 sent at 10/s
    return {"mode": mode, "rate_target": rate, "sent": count, "results": len(done), "errors": len(rejected),
            "lost": count - len(done) - len(rejected), "send_rate": round((count - 1) / span, 2) if count > 1 and span > 0 else None,
            "frames_per_s": round(len(done) / max(last - first, 1e-9), 2),
            "latency_ms": {"p50": round(percentile(lat, 50), 1), "p90": round(percentile(lat, 90), 1), "p99": round(percentile(lat, 99), 1),
                           "mean": round(statistics.fmean(lat), 1), "max": round(max(lat), 1)},
            "error_samples": sorted(set(rejected))[:3], "stored_as": f"bench-{run}-*"}


BASELINE_RUNS = 15


def engine_alone(cfg: Any, image: bytes, runs: int = BASELINE_RUNS) -> float:
    """Median ms of the station's own model inspecting `image` in this process, before the run: the baseline the
    daemon's trigger-to-result latency is compared with (its ratio is what MQTT, queueing and storing add)."""
    from inspector.api import Inspector

    insp = Inspector.load(cfg.model.path, cfg.model.device)
    insp.inspect(image)  # warm-up
    return 1000.0 * median_seconds(lambda: insp.inspect(image), runs)


def _check_image(image: bytes, path: Path, cfg: Any, mode: str) -> None:
    """--image as the station will take it, before anything is sent: a file that is no image was sent --count times, each
    refused by the station (and kept in its refused-on-arrival log, counted in its shift report), then said as 'no results
    within 60 s'."""
    from model.images import decode_image

    if mode == "capture":  # the station's camera takes the picture: the file is only the baseline's
        decode_image(image, str(path), hint="give --image a PNG or JPEG file (nothing was sent)")
        return
    # as the station's intake decodes it, its pixel limit too
    decode_image(image, str(path), hint="give --image a PNG or JPEG file (the station would refuse every input; nothing was sent)",
                 max_pixels=cfg.model.max_image_pixels)
    size = len(image) if mode == "image" and cfg.mqtt.protocol == "5" else 4 * ((len(image) + 2) // 3) + 200  # base64 in a JSON trigger
    if size > cfg.mqtt.max_payload_bytes:
        raise InspectorError(f"--image {path}: {size} bytes to send exceed the station's mqtt.max_payload_bytes ({cfg.mqtt.max_payload_bytes}), "
                             "so it would refuse every input; give a smaller image (nothing was sent)")


def baseline_note(ratio: float, load: float | None) -> str | None:
    """Why p50 read below the model alone: a result cannot come back sooner than its part is inspected, yet on 2 CPUs
    loaded by other processes the baseline took 92-524 ms against a p50 of 47 ms, and 'p50 is 0.10x that' was printed
    as if it meant something."""
    if ratio >= 1:
        return None
    loaded = f": load average {load:g} on {os.cpu_count()} CPUs as it started" if load is not None else ""
    return (f"p50 is below the station's model alone ({ratio:.2f}x), which no station can be: the baseline ran slower in this process than "
            f"the model runs in the station's (other processes' load{loaded}; or a station on other hardware), so the ratio means nothing; "
            "run bench serve on a quiet machine, on the station's own hardware")


def _wait(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def run(args: argparse.Namespace) -> int:
    from inspector.config import load_config

    cfg = load_config(args.config)
    image = None
    if args.image:
        path = Path(args.image)
        if what := file_problem(path, "image file"):  # a folder, a FIFO or /dev/null was told 'no such file'
            raise InspectorError(f"--image {path}: {what}; give an image file (PNG, JPEG, ...)")
        image = path.read_bytes()
        _check_image(image, path, cfg, args.mode)
    load = load_average()  # before any work of its own: the load is other processes'
    client = connect(cfg)  # first: without its broker there is nothing to measure, and the baseline took seconds before saying so
    engine = None
    if not args.no_baseline:
        try:
            engine = engine_alone(cfg, image or _synthetic_png())
        except InspectorError as exc:  # the daemon's model may live on another machine: the run goes on without the ratio
            print(f"note: no baseline ({exc}); the latency is reported alone", file=sys.stderr)
        except BaseException:
            client.stop(0)
            raise
    out = bench_serve(cfg, rate=args.rate, count=args.count, warmup=args.warmup, mode=args.mode, image=image, timeout=args.timeout,
                      client=client)
    out["load_average_1m"] = load
    if engine is not None:
        out["engine_alone_ms"] = round(engine, 1)
        out["engine_alone_runs"] = BASELINE_RUNS  # its median's sample count, after one untimed call
        out["p50_vs_engine_alone"] = round(out["latency_ms"]["p50"] / max(engine, 1e-9), 2)
        out["note"] = baseline_note(out["latency_ms"]["p50"] / max(engine, 1e-9), load)
    if args.json:
        print_json(out)
    else:
        lat = out["latency_ms"]
        sent = f" ({out['send_rate']:g}/s sent)" if out["send_rate"] is not None else ""
        print(f"{out['sent']} inputs ({out['mode']}) at {out['rate_target']:g}/s target{sent}, after {args.warmup} untimed: "
              f"{out['results']} results, {out['errors']} errors, {out['lost']} lost")
        print(f"throughput {out['frames_per_s']:.2f} frames/s; trigger->result latency of the {out['results']} results: p50 {lat['p50']:.1f} ms, "
              f"p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms")
        if engine is not None:
            print(f"baseline: the station's model alone in this process (decode, infer, decide) {engine:.1f} ms, median of "
                  f"{BASELINE_RUNS} runs; p50 is {out['p50_vs_engine_alone']:.2f}x that")
            if out["note"]:
                print(f"note: {out['note']}")
        for e in out["error_samples"]:
            print(f"  error: {e}")
        print(f"note: the station stored these parts as {out['stored_as']}; they count in its shift reports")
    return 0 if out["lost"] == 0 and out["errors"] == 0 else 1
