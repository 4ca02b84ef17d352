"""`inspector inspect MODEL IMAGE_OR_DIR`: verdict, score and defect regions for each image."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from inspector.commands.common import DEVICE_HELP, print_json
from model.errors import InspectorError
from model.folders import writable_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="inspect an image or a folder of images", description=__doc__)
    p.add_argument("model", help="checkpoint directory or exported model")
    p.add_argument("images", help="an image file or a folder (searched recursively)")
    p.add_argument("--json", action="store_true", help="print result records as JSON")
    p.add_argument("--overlays", metavar="OUTDIR", help="write an overlay PNG per image here")
    p.add_argument("--threshold", type=float, help="image threshold to use instead of the calibrated one")
    p.add_argument("--lang", default=None, help="also print a plain-language summary: en, zh or es")
    p.add_argument("--serial", help="part serial number to record (single image)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.api import Inspector
    from inspector.describe import LANGUAGES
    from inspector.overlay import save_png
    from model.images import list_images, read_image

    target = Path(args.images)
    if not target.exists():
        raise InspectorError(f"image {target}: no such file or folder")
    paths = list_images(target, recursive=True) if target.is_dir() else [target]
    if not paths:
        raise InspectorError(f"folder {target}: no images (PNG/JPEG/BMP/TIFF) found")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise InspectorError(f"--threshold {args.threshold}: give a finite score")
    if args.lang is not None and args.lang not in LANGUAGES:
        raise InspectorError(f"--lang {args.lang}: choose one of {', '.join(LANGUAGES)}")
    if args.overlays:
        # fail once, before the model loads, rather than once per image
        writable_folder(args.overlays, "--overlays")
    insp = Inspector.load(args.model, device=args.device)
    if args.threshold is not None:
        insp = insp.with_thresholds(image=args.threshold)
    results, errors = [], []
    for path in paths:
        try:
            r = insp.inspect(path, serial=args.serial if len(paths) == 1 else None)
            if args.overlays:
                rel = path.relative_to(target) if target.is_dir() else Path(path.name)
                out = Path(args.overlays) / rel.with_name(rel.stem + "_overlay.png")
                r.images["overlay"] = str(save_png(r.overlay(read_image(path)), out))
        except InspectorError as exc:
            errors.append({"path": str(path), "error": str(exc)})
            print(f"error: {exc}", file=sys.stderr)
            continue
        results.append(r)
        if not args.json:
            print(f"{r.verdict:4}  score {r.score:8.4f}  threshold {r.threshold:.4f}  regions {len(r.regions):2}  {path}")
            for reg in r.regions:
                x, y, w, h = reg.box
                print(f"        {reg.type} {reg.severity:6} box x={x} y={y} w={w} h={h}  area {reg.area_px} px")
            if args.lang:
                print("      " + r.describe(args.lang))
    if args.json:
        records = [r.to_record() | ({"description": r.describe(args.lang)} if args.lang else {}) for r in results]
        if target.is_file():
            if records:
                print_json(records[0])
        else:
            n_fail = sum(r.verdict == "FAIL" for r in results)
            print_json({"results": records, "errors": errors,
                        "summary": {"images": len(paths), "inspected": len(results), "fail": n_fail, "pass": len(results) - n_fail}})
    elif len(paths) > 1:
        n_fail = sum(r.verdict == "FAIL" for r in results)
        print(f"{len(results)} inspected: {len(results) - n_fail} PASS, {n_fail} FAIL" + (f", {len(errors)} unreadable" if errors else ""))
    return 2 if errors else 0
