"""`inspector export CKPT --format FORMAT[,FORMAT...] --out DIR [--verify DATA]`: self-describing model files.

Formats: onnx (float32), onnx-fp16, onnx-int8 (CPU: static QDQ, calibrated on the checkpoint's good
images or --calib DIR), tensorrt-fp16, tensorrt-int8 (NVIDIA GPU + tensorrt; an engine is tied to the GPU
and TensorRT version it was built with). Each file gets a `<file>.json` manifest; thresholds live there,
outside the graph. --verify DATA compares each export with torch on DATA (MVTec layout: its test set)
and exits 1 past the tolerance it prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.commands.common import name_list, path_of, print_json, tqdm_bars
from model.errors import InspectorError, need_onnx

FORMATS = ("onnx", "onnx-fp16", "onnx-int8", "tensorrt-fp16", "tensorrt-int8")


def formats(text: str) -> list[str]:
    names = name_list(text)
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r}: choose from {', '.join(FORMATS)} (comma-separated for several)")
    return names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (FP32/FP16/INT8) or TensorRT", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=path_of("checkpoint folder"), help="checkpoint directory from `inspector fit`")
    p.add_argument("--format", required=True, type=formats, metavar="|".join(FORMATS), help="what to write (comma-separated for several)")
    p.add_argument("--out", required=True, type=path_of("folder"), help="directory for the model files and their .json manifests")
    p.add_argument("--calib", metavar="DIR", type=path_of("folder of good images"), help="good images for INT8 calibration (default: the checkpoint's training data)")
    p.add_argument("--int8-tolerance", type=float, default=None, metavar="UNITS",
                   help="INT8: accepted mean score change on held-out good images, in score units (default 0.25)")
    p.add_argument("--verify", metavar="DATA", type=path_of("data folder"), help="compare with torch on these images (MVTec layout: its test set)")
    p.add_argument("--device", default=None, help="device for --verify: cpu, cuda, tensorrt (default: cpu for ONNX, cuda for engines)")
    p.add_argument("--force", action="store_true", help="overwrite existing exports in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.folders import output_lock

    with output_lock(Path(args.out), "export"):  # two exports to one --out each said done, its files the later one's
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    need_onnx("ONNX export")  # before exporters, which import onnx
    from exporters.calibration import check_calib
    from exporters.export import FILES, ExportStopped, export
    from exporters.manifest import read_sidecar, write_sidecar
    from exporters.quantize import DRIFT_TOLERANCE
    from exporters.verify import format_report, verify_export, verify_samples
    from inspector.engines.base import parse_device
    from inspector.engines.onnx_engine import providers_for

    if args.device and not args.verify:
        raise InspectorError("--device only applies with --verify")
    if args.device:
        parse_device(args.device)  # like the checks below: fail now, not after the exports
        for fmt in (f for f in args.format if f.startswith("onnx")):  # the provider, and INT8 ONNX on TensorRT
            providers_for(args.device, Path(args.out) / FILES[fmt], fmt)
    if args.int8_tolerance is not None and not 0 < args.int8_tolerance < float("inf"):  # inf skipped the check
        raise InspectorError(f"--int8-tolerance {args.int8_tolerance}: give the accepted mean score change, a positive number (default {DRIFT_TOLERANCE})")
    int8 = [f for f in args.format if f.endswith("int8")]
    for flag, value, used, which in (("--calib", args.calib, bool(int8), "onnx-int8 or tensorrt-int8"),
                                     ("--int8-tolerance", args.int8_tolerance, "onnx-int8" in int8, "onnx-int8")):
        if value is not None and not used:
            raise InspectorError(f"{flag} {value}: applies only to --format {which}; drop it")
    check_calib(args.calib)
    if args.verify:
        check_verify_images(args.checkpoint, args.verify, verify_samples(args.verify))

    def log(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr)

    tolerance = DRIFT_TOLERANCE if args.int8_tolerance is None else args.int8_tolerance
    stopped = None
    try:
        results = export(args.checkpoint, args.format, args.out, calib=args.calib, force=args.force, int8_tolerance=tolerance, log=log,
                         verifying=bool(args.verify))
    except ExportStopped as exc:
        # what was written is verified still: marked as waiting for a verification that never came, it was refused
        # by every engine ("wait for it, or export again") though named as written
        results, stopped = exc.written, exc
    summary, failed = [], False
    for r in results:
        m, item = r.manifest, _item(r)
        if not args.json:
            print(f"{r.path} ({m['file_bytes'] / 1e6:.2f} MB): {m['precision'].get('compute', '')}")
        if args.verify:
            device = args.device or ("cuda" if m["kind"].startswith("tensorrt") else "cpu")
            item["verify"] = verify_export(args.checkpoint, r.path, args.verify, device=device, progress=tqdm_bars(not args.json))
            # the sidecar as it is now, checked against the file still: a threshold set on it meanwhile (`inspector threshold
            # MODEL --set`) was written over with the one of its export
            write_sidecar(r.path, {**read_sidecar(r.path, required=True), "verify": item["verify"]})
            failed |= not item["verify"]["passed"]
            if not args.json:
                print("\n".join(format_report(item["verify"])))
        summary.append(item)
    if stopped is not None:
        if args.json:  # a machine reading stdout learns what was written, not only an empty output
            print_json({"exports": summary, "error": str(stopped)})
        raise stopped
    if args.json:
        print_json({"exports": summary})
    return 1 if failed else 0


def _item(r) -> dict:
    m = r.manifest
    return {"model": str(r.path), "manifest": f"{r.path}.json", "kind": m["kind"], "bytes": m["file_bytes"],
            "sha256": m["file_sha256"], "precision": m["precision"],
            # of the float32 graph each format is made from (an FP16 item read as its own); a format's own drift is `verify`'s
            "float32_graph_parity": r.parity}


def check_verify_images(checkpoint: str, data: str, samples: list) -> None:
    """--verify's images must each decode and hold the checkpoint's region (`Framing.check_size`): checked before
    anything is written, where a bad one found by the comparison left an export that only --force replaced."""
    from model.checkpoint import read_manifest
    from model.framing import Framing
    from model.images import read_image, upright_size

    for s in samples:  # a second or two for a test set of hundreds, against an export's minute
        try:
            read_image(s.path)
        except InspectorError as exc:
            raise InspectorError(f"--verify {data}: {exc}; remove or replace that image") from None
    try:
        framing = Framing.of(read_manifest(checkpoint)["net"])
    except (InspectorError, KeyError, TypeError, ValueError):
        return  # the export names what is wrong with the checkpoint
    if framing.roi is None and framing.frame is None:
        return
    for size, path in {upright_size(s.path): s.path for s in reversed(samples)}.items():  # the first image of each size
        if size is not None:
            try:
                framing.check_size(size, str(path))
            except InspectorError as exc:
                raise InspectorError(f"--verify {data}: {exc}") from None
