"""The demo from end to end: product -> fit -> export -> station (daemon, MQTT) -> store -> reports -> table.

Fitting and export run the very commands a user types (`inspector fit`, `inspector export`), and each is
echoed; the station is the real daemon. Everything is written under one output folder.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.demo import product
from inspector.demo.product import LinePart, Sizes
from inspector.demo.summary import DemoSummary, latency, score_line, table
from model.errors import InspectorError

MARKER = ".inspector-demo"  # only a folder holding this is ever emptied by the demo


@dataclass(frozen=True)
class Scale:
    sizes: Sizes
    model_px: int


FULL = Scale(Sizes(part_px=256, train=80, calib_good=16, calib_per_type=6, line_good=96, line_per_type=8), model_px=256)
QUICK = Scale(Sizes(part_px=96, train=12, calib_good=4, calib_per_type=1, line_good=6, line_per_type=1), model_px=64)


@dataclass
class DemoOptions:
    out: Path
    quick: bool = False
    mqtt: bool = True
    seed: int = 0


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds an flock on `path` (a file or folder); False where flock is missing."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system
        return False
    finally:
        os.close(fd)
    return False


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InspectorError(f"--out {out}: is a file; give a folder for the demo's output")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InspectorError(f"--out {out}: holds files the demo did not write; give a new or empty folder")
    from inspector.store import LOCK_FILE

    if _held_elsewhere(out / "station" / LOCK_FILE):  # `inspector serve --config <out>/station.yaml`, as docs/demo.md says
        raise InspectorError(f"--out {out}: a station is serving from {out / 'station'} (inspector serve --config"
                             f" {out / 'station.yaml'}); stop it first, or give another --out")


def prepare_out(out: Path) -> Path:
    """An empty output folder: new, empty, or one an earlier demo wrote (emptied); anything else is refused."""
    _check_out(out)
    if out.is_dir():
        for child in out.iterdir():  # the marker stays to the end: an emptying cut short is still the demo's to empty
            if child.name != MARKER:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by `inspector demo`; the next demo run empties this folder\n", encoding="utf-8")
    except OSError as exc:
        raise InspectorError(f"--out {out}: cannot be written ({exc.strerror}); choose a writable folder") from None
    return out


@contextmanager
def holding_out(out: Path) -> Iterator[Path]:
    """prepare_out, with the folder held until the run ends: a second demo into it, started meanwhile, emptied the first
    one's folder under it; now it is refused at once. The lock is an flock on the folder itself (no lock file left)."""
    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"--out {out}: cannot be written ({exc.strerror}); choose a writable folder") from None
    try:
        import fcntl
    except ImportError:  # Windows
        yield prepare_out(out)
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InspectorError(f"--out {out}: another `inspector demo` is writing there; wait for it to finish, or give"
                                 " another --out") from None
        except OSError:  # a file system without flock (some network shares): the demo runs there as it did, unguarded
            pass
        yield prepare_out(out)
    finally:
        os.close(fd)


def cli(argv: list[str], say: Callable[[str], None]) -> None:
    """Run an `inspector` subcommand in this process, echoing it as the user would type it."""
    from inspector.cli import build_parser

    say("$ " + shlex.join(["inspector", *argv]))  # quoted: an --out with a space is pasted back as one argument
    args = build_parser().parse_args(argv)
    if int(args.func(args) or 0) != 0:
        raise InspectorError(f"`inspector {argv[0]}` failed (see above)")


def _pick_fail(records: list[dict[str, Any]], frame_of: dict[str, int], parts: list[LinePart]) -> tuple[dict[str, Any], str]:
    """The record for the inspection report: a typical (median-score) FAIL of a truly defective part, else any FAIL,
    else the highest score."""
    def truth(r: dict[str, Any]) -> str:
        i = frame_of.get(r["inspection_id"])
        return parts[i].truth if i is not None else "unknown"

    ranked = sorted(records, key=lambda r: -float(r["score"]))
    caught = [r for r in ranked if r["verdict"] == "FAIL" and truth(r) not in ("good", "unknown")]
    if caught:
        r = caught[len(caught) // 2]
        return r, f"a typical FAIL ({truth(r)} on part {r.get('serial') or 'frame ' + str(frame_of[r['inspection_id']])})"
    fails = [r for r in ranked if r["verdict"] == "FAIL"]
    if fails:
        return fails[0], "a FAIL (a false alarm on a good part)"
    return ranked[0], "the highest-scoring part (no part FAILed in this run)"


def _pdf_page_png(pdf: Path, png_stem: Path) -> Path | None:
    """Page 1 of a PDF as a PNG (for the README), when poppler's pdftoppm is installed."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        return None
    subprocess.run([exe, "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(png_stem)], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    png = png_stem.with_suffix(".png")
    return png if png.is_file() else None


def _reports(out: Path, station_dir: Path, records: list[dict[str, Any]], chosen: dict[str, Any], config: dict[str, Any],
             summary: DemoSummary, say: Callable[[str], None]) -> None:
    import reports

    folder = out / "reports"
    meta = {"station": config["station"]["name"], "title": "Demo shift", "lot": "DEMO-" + datetime.now(timezone.utc).strftime("%Y%m%d"),
            "config": config, "name": "shift-demo"}
    times, paths = {}, {}
    try:
        for fmt in ("html", "pdf"):
            t = time.perf_counter()
            paths[f"shift_{fmt}"] = reports.render_shift(records, meta, folder, (fmt,), "en", station_dir)[fmt]
            times[f"shift report {fmt.upper()} ({len(records)} parts)"] = time.perf_counter() - t
        for fmt in ("html", "pdf"):
            t = time.perf_counter()
            paths[f"inspection_{fmt}"] = reports.render_inspection(chosen, folder, (fmt,), "en", station_dir)[fmt]
            times[f"inspection report {fmt.upper()}"] = time.perf_counter() - t
    except reports.ReportError as exc:
        raise InspectorError(str(exc)) from None
    summary.report_seconds = {k: round(v, 3) for k, v in times.items()}
    summary.artefacts.update({k: str(v) for k, v in paths.items()})
    say(f"  shift report:      {paths['shift_html']}\n                     {paths['shift_pdf']}")
    say(f"  inspection report: {paths['inspection_html']}\n                     {paths['inspection_pdf']}")
    same = shlex.join(["inspector", "report", "--db", str(station_dir), "--inspection", chosen["inspection_id"], "--out", str(folder)])
    say(f"  (the same as: {same})")


@dataclass
class _Line:
    """What step 1 made."""

    data: Path
    parts: list[LinePart]
    video: Path
    sheet: Path


def _product(out: Path, sizes: Sizes, seed: int, say: Callable[[str], None]) -> _Line:
    say(f"[1/5] Demo product: ceramic tiles cut from {product.TEXTURE}, defects from model/synth")
    maker = product.PartMaker(product.load_texture(), sizes.part_px, seed)
    data = product.write_training_set(maker, out / "data" / "tiles", sizes)
    parts = product.write_line_parts(maker, out / "data" / "line", sizes, seed)
    video, codec = product.write_video(parts, out / "line.avi")
    (out / "pictures").mkdir()
    sheet = product.contact_sheet(parts, out / "pictures" / "parts.png")
    n_def = sum(p.is_defect for p in parts)
    say(f"  {sizes.train} good parts to fit on, {sizes.calib_good} good + {sizes.calib_per_type * len(product.DEMO_DEFECTS)} defective"
        f" ({', '.join(product.DEMO_DEFECTS)}) to calibrate: {data}")
    say(f"  {len(parts)} held-out parts for the line ({len(parts) - n_def} good, {n_def} defective), as a video ({codec}): {video}")
    return _Line(data, parts, video, sheet)


def _start_broker(out: Path, want: bool, say: Callable[[str], None]):
    """A private mosquitto when asked for and installed, else None (and the demo says why)."""
    from inspector.demo.broker import find_mosquitto, start_broker
    from inspector.demo.station import PREFIX

    alone = "running WITHOUT MQTT; the daemon's video source inspects every frame by itself"
    if not want:
        say(f"  --no-mqtt: {alone}")
        return None
    binary = find_mosquitto()
    if binary is None:
        say(f"  mosquitto is not installed (apt-get install mosquitto): {alone}")
        return None
    broker = start_broker(binary, out / "broker")
    say(f"  started mosquitto (pid {broker.proc.pid}) on 127.0.0.1:{broker.port}: {broker.command}")
    say(f"  a stand-in PLC waits for the station's retained `online` on {PREFIX}/status, then publishes one trigger per part"
        f" on {PREFIX}/trigger; results come back on {PREFIX}/result")
    return broker


def _pictures(out: Path, chosen: dict[str, Any], line: _Line, summary: DemoSummary) -> None:
    """PNGs for the README: the parts, the reported part's overlay, page 1 of each PDF report."""
    pictures, a = out / "pictures", summary.artefacts
    a["picture_parts"] = str(line.sheet)
    overlay = (chosen.get("images") or {}).get("overlay")
    if overlay:
        a["picture_overlay"] = str(shutil.copyfile(out / "station" / overlay, pictures / "overlay.png"))
    for kind in ("shift", "inspection"):
        png = _pdf_page_png(Path(a[f"{kind}_pdf"]), pictures / f"{kind}-report")
        if png:
            a[f"picture_{kind}_report"] = str(png)


def _calibration(ckpt: Path, summary: DemoSummary) -> None:
    from model.checkpoint import read_manifest

    manifest = read_manifest(ckpt)
    summary.threshold = manifest.get("thresholds", {}).get("image")
    pol = (manifest.get("calibration") or {}).get("policy") or {}
    summary.policy = f"{pol.get('kind', '?')} target {pol.get('target', 0):.0%}" if pol else ""


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo as Ctrl-C does, through its `finally`s: by default they ended Python at once and
    left its mosquitto running with its port bound. A second such signal acts as it would have without the demo."""
    sigs = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():  # signal handlers can only be set there
        yield
        return
    before: dict[int, Any] = {}

    def interrupt(signum: int, frame: Any) -> None:
        for sig, old in before.items():
            signal.signal(sig, old)
        raise KeyboardInterrupt

    for sig in sigs:
        old = signal.signal(sig, interrupt)
        before[sig] = signal.SIG_DFL if old is None else old
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def run_demo(opts: DemoOptions, say: Callable[[str], None] = print) -> DemoSummary:
    """The five steps; returns the summary (also written to <out>/summary.json)."""
    from model.errors import need_onnx
    from reports import ReportError
    from reports.render import pdf_renderer

    need_onnx("the demo")  # before minutes of work: it exports its station to ONNX and renders PDF reports
    try:
        pdf_renderer()
    except ReportError as exc:
        raise InspectorError(f"the demo: {exc}") from None
    with signals_interrupt(), holding_out(Path(opts.out)) as out:
        return _run(out, opts, say)


def _run(out: Path, opts: DemoOptions, say: Callable[[str], None]) -> DemoSummary:
    from inspector.demo.station import serve

    t_all = time.monotonic()
    scale = QUICK if opts.quick else FULL
    steps: dict[str, float] = {}

    t = time.monotonic()
    line = _product(out, scale.sizes, opts.seed, say)
    steps["product"] = time.monotonic() - t

    say("\n[2/5] Fit (good parts only), calibrate (held-out good + defective), learn defect types, export to ONNX")
    ckpt, onnx_path = out / "model" / "tiles.ckpt", out / "model" / "onnx" / "model.onnx"
    t = time.monotonic()
    # --labels: the calibration defects' type folders also teach the model to name each defect.
    # --escape 0.05: the threshold may let 5% of the calibration defects pass, so that one faint draw does not
    # pull it below many good parts (with the default 1%, the faintest calibration defect sets it).
    # --synth 0: the demo's defects come from the very generator the learnt branch would train on, which would
    # flatter it, and it would take minutes of a demo that otherwise takes one
    cli(["fit", str(line.data), "--out", str(ckpt), "--size", str(scale.model_px), "--seed", str(opts.seed), "--labels", str(line.data),
         "--escape", "0.05", "--synth", "0"], say)
    steps["fit"] = time.monotonic() - t
    t = time.monotonic()
    cli(["export", str(ckpt), "--format", "onnx", "--out", str(onnx_path.parent)], say)
    steps["export"] = time.monotonic() - t

    say("\n[3/5] The station: the daemon replays the video as its camera")
    t = time.monotonic()
    broker = _start_broker(out, opts.mqtt, say)
    try:
        summary = DemoSummary(mode="MQTT triggers through mosquitto" if broker else "video source, continuous, no MQTT")
        run = serve(out, onnx_path, line.video, [p.serial for p in line.parts], broker.port if broker else None, out / "daemon.log",
                    broker_alive=(lambda: broker.proc.poll() is None) if broker else None)
    finally:
        if broker is not None:
            broker.stop()
    steps["serve"] = time.monotonic() - t
    for e in run.errors[:3]:
        say(f"  rejected by the station: {e}")
    if not run.records:
        raise InspectorError(f"the station stored no results; see {out / 'daemon.log'}")
    say(f"  daemon log: {out / 'daemon.log'}; station config: {out / 'station.yaml'}")

    say("\n[4/5] Results in the store, reports")
    station_dir = out / "station"
    say(f"  {len(run.records)} results in {station_dir / 'inspections.sqlite'}" + (f" ({run.published} also published on MQTT)" if broker else ""))
    chosen, why = _pick_fail(run.records, run.frame_of, line.parts)
    say(f"  inspection report for {why}: {chosen['inspection_id']}")
    t = time.monotonic()
    _reports(out, station_dir, run.records, chosen, run.config, summary, say)  # the config in station.yaml, that the station ran
    steps["reports"] = time.monotonic() - t
    _pictures(out, chosen, line, summary)
    summary.artefacts.update(checkpoint=str(ckpt), onnx=str(onnx_path), video=str(line.video), store=str(station_dir / "inspections.sqlite"),
                             daemon_log=str(out / "daemon.log"), station_config=str(out / "station.yaml"), live_view=str(out / "live.html"),
                             labels=str(out / "data" / "line" / "labels.json"))
    _calibration(ckpt, summary)
    score_line(summary, run.records, run.frame_of, line.parts)
    summary.latency_ms = latency(run.records)
    steps["total"] = time.monotonic() - t_all
    summary.step_seconds = {k: round(v, 1) for k, v in steps.items()}
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")

    say(f"\n[5/5] Summary (also in {out / 'summary.json'})")
    say(table(summary))
    say("pictures: " + ", ".join(v for k, v in sorted(summary.artefacts.items()) if k.startswith("picture_")))
    return summary
