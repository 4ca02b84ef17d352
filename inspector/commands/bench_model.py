"""`inspector bench model CKPT DATA` (or `inspector bench CKPT DATA`): inference speed of every engine this
machine can run, side by side with torch eager in the same run.

For each engine and batch size: median and p99 latency per batch, images/s and the speed-up over torch
eager (its median / this median); per engine: model file size and peak RSS of a fresh process that loads
the engine and runs it. Engines are timed round-robin (one call each in turn), so load from other
processes on a shared machine hits all of them alike; still, run it twice and compare.

Exports compared: --exports FILES/DIRS, or (default) onnx, onnx-fp16 and onnx-int8 (and tensorrt-fp16/-int8
where tensorrt and a GPU are present) written to a temporary folder first. Engines this machine lacks
(CUDA or TensorRT execution providers, tensorrt, a GPU) are listed as skipped, with the reason. Given an export
alone (CKPT an exported model or folder), its checkpoint is the baseline where it is on this machine; elsewhere
(an edge box) the exports are timed without it, and a note says why there is no x torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.commands.common import at_least, int_list, load_average, model_first, path_of, print_json
from model.errors import InspectorError, need_onnx

EXPORT_SUFFIXES = (".onnx", ".engine", ".plan")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="latency, images/s, RSS and size of every engine vs torch eager", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=path_of("model"), help="checkpoint directory (torch eager baseline), or an exported model or folder of them "
                   "(torch eager too where the checkpoint its manifest names is on this machine)")
    p.add_argument("data", type=path_of("data folder"), help="images to run (a folder, or MVTec layout)")
    p.add_argument("--exports", nargs="+", action="extend", metavar="PATH", type=path_of("exported model"), help="exported models or folders of them (default: export to a temp folder)")
    p.add_argument("--calib", metavar="DIR", type=path_of("folder of good images"), help="good images for INT8 calibration when exporting (default: the checkpoint's data)")
    p.add_argument("--batches", type=int_list, default=(1, 8), help="batch sizes (default 1,8)")
    p.add_argument("--runs", type=at_least(1), default=40, help="timed calls per engine and batch size (default 40)")
    p.add_argument("--warmup", type=at_least(0), default=5, help="untimed calls first (default 5)")
    p.add_argument("--threads", type=at_least(1), default=None, help="intra-op threads of torch and onnxruntime (default: each one's choice); on a loaded machine "
                   "--threads 1 keeps torch's threads from waiting on each other")
    p.add_argument("--no-rss", action="store_true", help="skip the per-engine peak-RSS processes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


TORCH_REST_S = 0.05  # untimed, after each torch eager call on the CPU (measure)


@dataclass
class Candidate:
    name: str
    path: Path
    device: str
    kind: str
    skipped: str | None = None
    engine: Any = None
    times: dict[int, list[float]] = field(default_factory=dict)


def _exports_from(paths: list[str]) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            # not hidden files: macOS's `._model.onnx` beside a copied model is no export (its "manifest" was not JSON)
            found += sorted(q for q in p.iterdir() if q.suffix in EXPORT_SUFFIXES and not q.name.startswith("."))
        elif p.is_file() and p.suffix in EXPORT_SUFFIXES:
            found.append(p)
        else:
            raise InspectorError(f"--exports {p}: not an exported model (.onnx/.engine) or a folder of them")
    if not found:
        raise InspectorError(f"--exports {' '.join(paths)}: no .onnx/.engine files found")
    once: dict[Path, Path] = {}  # each file once, where first given (a folder and a file in it were timed twice)
    for p in found:
        once.setdefault(p.resolve(), p)
    return list(once.values())


def _source_checkpoint(export: Path) -> tuple[Path | None, str | None]:
    """(the checkpoint `export` was made from, for the torch baseline; None and the note saying why where it is not on
    this machine as it was exported): on an edge box with only the export, bench refused to time it at all."""
    from exporters.manifest import export_source
    from model.checkpoint import read_manifest

    source = export_source(export)
    named = source.get("checkpoint")
    why = f"{export}'s manifest names no checkpoint"
    if named and (Path(named) / "manifest.json").is_file():
        try:
            if read_manifest(Path(named))["files"]["model.safetensors"] == source.get("weights_sha256"):
                return Path(named), None
            why = f"{named}, which {export} was exported from, was fitted again since"
        except InspectorError as exc:
            why = str(exc)
    elif named:
        why = f"it needs {named}, which {export} was exported from, and that is not on this machine"
    return None, (f"no torch eager baseline (x torch): {why}; give the checkpoint first and the exports with --exports "
                  "to compare with torch")


def _check_exported_from(ckpt: Path | None, exports: list[Path]) -> None:
    """Each export must be of this checkpoint's weights (without one, of the first export's): else its ratio compares
    two models, not two runtimes."""
    from exporters.manifest import export_source
    from model.checkpoint import read_manifest

    if not exports:
        return
    if ckpt is None:
        first = export_source(exports[0])
        for e in exports[1:]:
            try:
                source = export_source(e)
            except InspectorError:
                continue  # listed as skipped, with why
            if source.get("weights_sha256") != first.get("weights_sha256"):
                raise InspectorError(f"--exports {e}: exported from another model ({source.get('checkpoint', 'unknown')}) than "
                                     f"{exports[0]} ({first.get('checkpoint', 'unknown')}); bench one model's exports at a time")
        return
    weights = read_manifest(ckpt)["files"]["model.safetensors"]
    for e in exports:
        try:
            source = export_source(e)
        except InspectorError:
            continue  # opening it fails the same way: listed as skipped, with why
        if source.get("weights_sha256") != weights:
            if source.get("checkpoint") and Path(source["checkpoint"]).resolve() == ckpt.resolve():  # "from X, not X" said nothing
                raise InspectorError(f"--exports {e}: exported from {ckpt} before it was fitted again (weights "
                                     f"{str(source.get('weights_sha256'))[:12]} then, {weights[:12]} now); export it again")
            raise InspectorError(f"--exports {e}: exported from another model ({source.get('checkpoint', 'unknown')}), not {ckpt}; "
                                 "give that model's checkpoint, or export this one")


def _export_all(ckpt: Path, folder: Path, calib: str | None, log) -> tuple[list[Path], list[Candidate]]:
    """(the exports written, a skipped candidate for each format that could not be): an INT8 search that gave up
    stopped the whole benchmark, float32 and FP16 (timed already) and the TensorRT formats after it included."""
    from exporters.export import FILES, export
    from exporters.manifest import tensorrt_target
    from exporters.quantize import check_quantiser

    formats = ["onnx", "onnx-fp16", "onnx-int8"]
    try:
        tensorrt_target()
        formats += ["tensorrt-fp16", "tensorrt-int8"]
    except InspectorError:
        pass
    written: list[Path] = []
    skipped: list[Candidate] = []

    def skip(fmt: str, reason: str) -> None:
        log(f"  {fmt} not exported, skipped: {reason}")
        gpu = fmt.startswith("tensorrt")
        skipped.append(Candidate("tensorrt" if gpu else "onnxruntime", folder / FILES[fmt], "cuda" if gpu else "cpu", fmt,
                                 skipped=f"not exported: {reason}"))

    try:
        check_quantiser()
    except InspectorError as exc:  # an onnxruntime before 1.28: float32, FP16 and TensorRT are timed all the same
        formats.remove("onnx-int8")
        skip("onnx-int8", str(exc).removeprefix("--format onnx-int8: "))
    log(f"exporting {', '.join(formats)} to a temporary folder ...")
    while formats:
        try:
            written += [r.path for r in export(ckpt, formats, folder, calib=calib, log=log)]
            break
        except InspectorError as exc:  # ExportStopped names what it wrote before the format that failed
            done = getattr(exc, "written", [])
            written += [r.path for r in done]
            # export reads the INT8 calibration images before anything else: where they were missing, that stopped the
            # whole benchmark, float32 and FP16 (which need none) included
            if not done and (no_calib := _no_calibration(ckpt, calib, formats)):
                for fmt in [f for f in formats if f.endswith("int8")]:
                    skip(fmt, no_calib)
                formats = [f for f in formats if not f.endswith("int8")]
                continue
            failed = formats[len(done)]
            if failed == "onnx":
                raise  # every other format is derived from the float32 graph
            skip(failed, getattr(exc, "reason", str(exc)))
            formats = formats[len(done) + 1 :]
    return written, skipped


def _no_calibration(ckpt: Path, calib: str | None, formats: list[str]) -> str | None:
    """Why INT8 cannot be calibrated from the checkpoint's own training data (on an edge box it is often not there),
    or None. Asked only once an export has failed: asked first as well, the training data was listed twice."""
    from exporters.calibration import image_sets
    from exporters.export import N_CALIB, N_HOLDOUT
    from model.checkpoint import read_manifest

    if calib is not None or not any(f.endswith("int8") for f in formats):
        return None  # a --calib that fails is the user's to fix: said, not skipped
    try:
        image_sets(ckpt, read_manifest(ckpt), None, N_CALIB, N_HOLDOUT)
    except InspectorError as exc:
        return str(exc)
    return None


def _candidates(ckpt: Path | None, exports: list[Path]) -> list[Candidate]:
    import onnxruntime as ort

    from exporters.manifest import read_sidecar, tensorrt_target

    available = ort.get_available_providers()
    out = [Candidate("torch eager", ckpt, "cpu", "checkpoint")] if ckpt is not None else []
    try:
        import torch

        if ckpt is not None and torch.cuda.is_available():
            out.append(Candidate("torch eager", ckpt, "cuda", "checkpoint"))
    except ImportError:
        pass
    for path in exports:
        try:
            kind = (read_sidecar(path, required=False) or {}).get("kind", path.suffix.lstrip("."))
        except InspectorError as exc:  # one damaged file in a folder of exports: listed as skipped, with why
            out.append(Candidate("onnxruntime" if path.suffix == ".onnx" else "tensorrt", path, "cpu" if path.suffix == ".onnx" else "cuda",
                                 path.suffix.lstrip("."), skipped=str(exc)))
            continue
        if path.suffix == ".onnx":
            out.append(Candidate("onnxruntime", path, "cpu", kind))
            for device, provider in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
                why = None if provider in available else f"{provider} not in this onnxruntime"
                if device == "tensorrt" and kind == "onnx-int8":
                    why = "CPU INT8 graph (uint8 activations); use the tensorrt-int8 engine"
                out.append(Candidate("onnxruntime", path, device, kind, skipped=why))
        else:
            try:
                tensorrt_target()
                why = None
            except InspectorError as exc:
                why = str(exc)
            out.append(Candidate("tensorrt", path, "cuda", kind, skipped=why))
    return out


def _file_bytes(path: Path) -> int:
    return (path / "model.safetensors").stat().st_size if path.is_dir() else path.stat().st_size


def _peak_rss(c: Candidate, images: list[str], batches: tuple[int, ...], threads: int | None) -> float | None:
    """Peak RSS (MB) of a fresh process that opens this engine and runs each batch size twice."""
    job = json.dumps({"path": str(c.path), "device": c.device, "images": images, "batches": list(batches), "threads": threads})
    code = "from inspector.commands.bench_model import rss_probe; rss_probe()"
    done = subprocess.run([sys.executable, "-c", code], input=job, capture_output=True, text=True, timeout=600)
    try:
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])
    except (ValueError, KeyError, IndexError):
        return None


def rss_probe() -> None:
    """Child side of _peak_rss: reads the job on stdin, prints {"peak_rss_mb": ...}.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec."""
    from model.extract import load_batches

    job = json.loads(sys.stdin.read())
    engine = _open(Path(job["path"]), job["device"], job["threads"])
    x = next(load_batches([Path(p) for p in job["images"]], engine.meta.input_size, batch_size=len(job["images"]), framing=engine.meta.framing))[1]
    for b in job["batches"]:
        for _ in range(2):
            engine.infer(_batch(x, b))
    status = Path("/proc/self/status").read_text(encoding="utf-8", errors="replace").splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mb": hwm / 1024}))


def _open(path: Path, device: str, threads: int | None):
    if path.suffix == ".onnx":
        from inspector.engines.onnx_engine import OnnxEngine

        return OnnxEngine(path, device, threads=threads)
    from inspector.engines import open_engine

    if threads is not None:  # torch too: under load its 2 threads waited on each other, and its speed-ups read 12-76x
        import torch

        torch.set_num_threads(threads)
    return open_engine(path, device)


def _batch(images: np.ndarray, b: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(images, (b, *images.shape[1:])))  # repeats images when b > len(images)


def measure(cands: list[Candidate], images: np.ndarray, batches: tuple[int, ...], runs: int, warmup: int) -> None:
    live = [c for c in cands if c.engine is not None]
    for b in batches:
        x = _batch(images, b)
        for c in live:
            for _ in range(warmup):
                c.engine.infer(x)
            c.times[b] = []
        for _ in range(runs):  # round-robin: each engine in turn, so background load is shared fairly
            for c in live:
                t = time.perf_counter()
                c.engine.infer(x)
                c.times[b].append((time.perf_counter() - t) * 1000.0)
                if c.name == "torch eager" and c.device == "cpu":
                    # its OpenMP threads spin on after a call and took the CPUs from the next engine: the same ONNX file
                    # timed 17.4 ms right after torch and 13.7 ms after another export, in one run
                    time.sleep(TORCH_REST_S)


def run(args: argparse.Namespace) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(args)
    finally:  # --threads sets torch's for the process, and the CLI also runs in-process (the tests, the API)
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from inspector.commands.common import tqdm_bars
    from model.data import load_dataset
    from model.extract import load_batches

    if any(b < 1 for b in args.batches):
        raise InspectorError(f"--batches {','.join(map(str, args.batches))}: batch sizes must be at least 1")
    model_first("bench model", args.checkpoint, args.data)
    need_onnx("bench model")  # it exports and runs ONNX Runtime beside torch
    log = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr))
    machine = machine_info()  # before any work of its own: the load is other processes'
    ckpt: Path | None = Path(args.checkpoint)
    exports, no_baseline = [Path(p) for p in (args.exports or [])], None
    if ckpt.is_file() or (ckpt.is_dir() and not (ckpt / "manifest.json").exists()):
        exports = _exports_from([str(ckpt), *map(str, exports)])
        ckpt, no_baseline = _source_checkpoint(exports[0])
    elif exports:
        exports = _exports_from([str(p) for p in exports])
    if exports and args.calib is not None:  # taken without a word: the INT8 timed was the one given, calibrated as it was exported
        raise InspectorError(f"--calib {args.calib}: calibrates the INT8 export bench model makes itself, and with exports given it makes none; "
                             "drop --calib, or drop the exports to have them made (calibrated on --calib)")
    from exporters.calibration import check_calib
    from model.checkpoint import read_manifest

    if ckpt is not None:
        read_manifest(ckpt)  # a missing or damaged checkpoint is said at once, not after the data is read and the export begun
    if not exports:
        check_calib(args.calib)
    _check_exported_from(ckpt, exports)
    dataset = load_dataset(args.data, require_train=False)
    samples = dataset.test or dataset.train
    if not samples:
        raise InspectorError(f"data {args.data}: no images found")
    picked = [str(s.path) for s in samples[:: max(1, len(samples) // 8)][:8]]
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        unexported: list[Candidate] = []
        if not exports:
            exports, unexported = _export_all(ckpt, Path(tmp), args.calib, log)
        cands = _candidates(ckpt, exports) + unexported
        for c in cands:
            if c.skipped:
                continue
            try:
                c.engine = _open(c.path, c.device, args.threads)
            except InspectorError as exc:
                if c.kind == "checkpoint":
                    raise  # no baseline, no ratios
                c.skipped = str(exc)
        base = next((c.engine for c in cands if c.engine is not None), None)
        if base is None:  # exports alone (no torch), none of which runs here
            raise InspectorError(f"bench model {args.checkpoint}: no engine here can run it ({cands[0].path}: {cands[0].skipped})")
        images = next(load_batches([Path(p) for p in picked], base.meta.input_size, batch_size=len(picked), framing=base.meta.framing))[1]
        log(f"timing {sum(c.engine is not None for c in cands)} engines round-robin: batches {list(args.batches)}, {args.runs} runs each")
        measure(cands, images, tuple(args.batches), args.runs, args.warmup)
        rss = {}
        if not args.no_rss:
            bar = tqdm_bars(not args.json)("peak RSS", sum(c.engine is not None for c in cands))
            for c in cands:
                if c.engine is not None:
                    rss[id(c)] = _peak_rss(c, picked, tuple(args.batches), args.threads)
                    bar.update(1)
            bar.close()
        report = _report(cands, rss, tuple(args.batches), args, machine, no_baseline)
    if args.json:
        print_json(report)
    else:
        print_table(report)
    return 0


def machine_info() -> dict[str, Any]:
    """The machine and its 1-minute load average, read as the benchmark starts (other processes' load)."""
    import onnxruntime as ort

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "onnxruntime": ort.__version__,
            "python": platform.python_version(), "load_average_1m": load_average()}


def load_note(machine: dict[str, Any], threads: int | None) -> str | None:
    """Why the speed-ups may read high: on 2 cores with a load of 2.7 from other processes, torch eager's threads
    waited on each other at every layer (batch 1 took 441 ms, as long as batch 8) while onnxruntime slowed less, and
    the table read 10.4x for what was 1.7x with --threads 1 in the next minute; nothing in the output said so."""
    load, cpus = machine.get("load_average_1m"), machine.get("cpus") or 1
    if threads is not None or load is None or load < 0.5 * cpus:
        return None
    return (f"load average {load:g} on {cpus} CPUs before the run: under other processes' load torch eager's threads wait on "
            "each other, so the speed-ups over it read too high; compare them with --threads 1, or on a quiet machine")


def _report(cands: list[Candidate], rss: dict, batches: tuple[int, ...], args, machine: dict[str, Any] | None = None,
            no_baseline: str | None = None) -> dict[str, Any]:
    """`no_baseline`: why torch eager was not timed (exports alone); the speed-ups over it are then null."""
    base = cands[0] if cands[0].kind == "checkpoint" else None
    rows = []
    for c in cands:
        row: dict[str, Any] = {"engine": c.name, "kind": c.kind, "device": c.device, "path": str(c.path)}
        if c.engine is None:
            rows.append({**row, "skipped": c.skipped})
            continue
        row |= {"runtime": c.engine.meta.runtime, "file_mb": round(_file_bytes(c.path) / 1e6, 3),
                "peak_rss_mb": round(rss[id(c)], 1) if rss.get(id(c)) else None, "batches": {}}
        for b in batches:
            t = np.asarray(c.times[b])
            med = float(np.median(t))
            row["batches"][str(b)] = {"median_ms": round(med, 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
                                      "images_per_s": round(b * 1000.0 / med, 2),
                                      "speedup_vs_torch": round(float(np.median(base.times[b])) / med, 3) if base else None}
        rows.append(row)
    machine = machine or machine_info()
    return {"machine": machine, "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
            # what speedup_vs_torch divides by: on a GPU machine torch eager runs on CUDA too, and "x torch" did not say which
            "baseline": f"{base.name} {base.device}" if base else None, "engines": rows,
            "note": load_note(machine, args.threads) if base else no_baseline}  # the load note is of torch's ratios


def print_table(report: dict[str, Any]) -> None:
    rows = report["engines"]
    batches = next((list(r["batches"]) for r in rows if "batches" in r), [])
    head = f"{'engine':34} {'file MB':>8} {'RSS MB':>7}"
    for b in batches:
        head += f" | b{b}: {'median':>8} {'p99':>8} {'img/s':>7} {'x torch':>7}"
    print(head)
    names = [f"{r['engine']} {r['device']} {r['kind']}" for r in rows]
    for r, name in zip(rows, names):
        if names.count(name) > 1:  # two exports of one kind (e.g. two checkpoints' onnx): tell them apart
            name += f" {r['path']}"
        if "skipped" in r:
            print(f"{name:34} skipped: {r['skipped']}")
            continue
        rss = f"{r['peak_rss_mb']:7.0f}" if r["peak_rss_mb"] else f"{'-':>7}"
        line = f"{name:34} {r['file_mb']:8.2f} {rss}"
        for b in batches:
            s = r["batches"][b]
            ratio = f"{s['speedup_vs_torch']:6.2f}x" if s["speedup_vs_torch"] is not None else f"{'-':>7}"
            line += f" | {'':>4}{s['median_ms']:8.2f} {s['p99_ms']:8.2f} {s['images_per_s']:7.1f} {ratio}"
        print(line)
    base = f"{report['baseline']}'s median over each one's" if report["baseline"] else "none timed (see the note)"
    print(f"latency in ms per batch: median and p99 of {report['runs']} round-robin runs after {report['warmup']} untimed warm-up calls; "
          f"x torch: {base}; {report['machine']['cpus']} CPUs, onnxruntime {report['machine']['onnxruntime']}")
    if report.get("note"):
        print(f"note: {report['note']}")
