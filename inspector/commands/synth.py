"""`inspector synth GOOD_DIR --out DATA --n N`: make defect images with exact masks from good images."""

from __future__ import annotations

import argparse
import time
from collections import Counter

from inspector.commands.common import names_given, path_of, print_json, seed, tqdm_bars
from model.errors import InspectorError
from model.folders import writable_folder


def register(sub: argparse._SubParsersAction) -> None:
    from model.synth import DEFECT_TYPES

    p = sub.add_parser("synth", help="generate defect images with pixel masks (MVTec AD layout)", description=__doc__)
    p.add_argument("good_dir", type=path_of("folder of good images"), help="folder of good images (not its subfolders)")
    p.add_argument("--out", required=True, type=path_of("folder"), help="folder to write test/<type>, ground_truth/<type>, labels.json, contact_sheet.png")
    p.add_argument("--n", type=int, default=100, help="number of defect images, the types taking turns (default 100); refused where --out's disk cannot hold them")
    p.add_argument("--types", default="", help=f"comma-separated defect types (default all: {','.join(DEFECT_TYPES)})")
    p.add_argument("--seed", type=seed, default=0, help="random seed: the same seed and good images give the same defects (default 0)")
    p.add_argument("--severity", default="0.3,0.9", help="severity range lo,hi in (0, 1] (default 0.3,0.9; transplant ignores it: its size and mismatch span their full range)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder (an earlier synth output there is replaced; any other file it would overwrite is refused)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _severity(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InspectorError(f"--severity {text!r}: give a range lo,hi such as 0.3,0.9") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise InspectorError(f"--severity {text!r}: need 0 < lo <= hi <= 1")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model.synth import check_types
    from model.synth.writer import CONTACT_SHEET, check_count, check_out, readable_goods, write_synthetic

    out = Path(args.out)
    # what is wrong with the request first: "not empty; pass --force" before a misspelt type (or --n 0) cost a second try
    check_count(args.n)
    types = names_given(args.types, "--types")
    check_types(types)
    severity = _severity(args.severity)
    readable_goods(args.good_dir)
    check_out(args.good_dir, out)  # before "not empty; pass --force", which would then write there
    writable_folder(out, keep=False)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InspectorError(f"--out {out}: the folder is not empty; pass --force or choose another folder")
    t0 = time.perf_counter()
    records = write_synthetic(args.good_dir, out, args.n, types, args.seed, severity, progress=tqdm_bars(), replace=args.force)
    seconds = time.perf_counter() - t0
    summary = {"out": str(out), "n": len(records), "seconds": round(seconds, 2), "by_type": dict(Counter(r.type for r in records)),
               "labels": str(out / "labels.json"), "contact_sheet": str(out / CONTACT_SHEET)}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {len(records)} defect images in {seconds:.1f} s -> {out}")
        print("  " + ", ".join(f"{k} {v}" for k, v in summary["by_type"].items()))
        print(f"  labels {summary['labels']}; contact sheet {summary['contact_sheet']}")
    return 0
