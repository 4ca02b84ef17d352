"""`inspector threshold CKPT`: show or change a checkpoint's thresholds without refitting."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from inspector.commands.common import add_policy_args, policy_from, print_json
from model.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("threshold", help="show or change a checkpoint's thresholds", description=__doc__)
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--set", type=float, dest="value", help="set the image threshold to this score")
    p.add_argument("--pixel", type=float, help="set the pixel (region) threshold")
    p.add_argument("--json", action="store_true", help="print the thresholds as JSON")
    add_policy_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.calibration import Policy, threshold_for, unresolved_note
    from model.checkpoint import read_manifest, write_manifest

    ckpt = Path(args.checkpoint)
    manifest = read_manifest(ckpt)
    ckpt = ckpt if ckpt.is_dir() else ckpt.parent  # also given as .../manifest.json
    for flag, value in (("--set", args.value), ("--pixel", args.pixel)):
        if value is not None and not np.isfinite(value):
            raise InspectorError(f"{flag} {value}: give a finite score, e.g. the one `inspector threshold {ckpt}` shows")
    scores = manifest.get("calibration_scores") or {}
    good, defect = np.asarray(scores.get("good", [])), np.asarray(scores.get("defect", []))
    policy = policy_from(args)
    if policy is not None and args.value is not None:
        raise InspectorError("give either --set or --escape/--far, not both")
    old = dict(manifest["thresholds"])
    new = dict(old)
    if args.value is not None:
        new["image"] = args.value
    elif policy is not None:
        new["image"] = threshold_for(policy, good, defect)
        manifest["calibration"] = {**manifest.get("calibration", {}), "policy": {"kind": policy.kind, "target": policy.target}}
    if args.pixel is not None:
        new["pixel"] = args.pixel
    policy_now = manifest.get("calibration", {}).get("policy")
    # a threshold --set by hand answers to no policy
    note = unresolved_note(Policy(**policy_now), good.size, defect.size) if policy_now and args.value is None else None
    far = float((good >= new["image"]).mean()) if good.size else None
    escape = float((defect < new["image"]).mean()) if defect.size else None
    changed = new != old
    if changed:
        manifest["thresholds"] = new
        manifest["calibration"] = {**manifest.get("calibration", {}), "threshold": new["image"], "far": far, "escape": escape, "note": note}
        manifest["files"] = list(manifest["files"])
        write_manifest(ckpt, manifest)
    info = {"checkpoint": str(ckpt), "thresholds": new, "previous": old if changed else None,
            "far_on_calibration": far, "escape_on_calibration": escape, "policy": policy_now, "note": note}
    if args.json:
        print_json(info)
    else:
        verb = "changed" if changed else "unchanged"
        print(f"image threshold {new['image']:.6f}, pixel threshold {new['pixel']:.6f} ({verb})")
        if info["far_on_calibration"] is not None:
            print(f"  on {good.size} good calibration images: false alarms {info['far_on_calibration']:.1%}")
        if info["escape_on_calibration"] is not None:
            print(f"  on {defect.size} defect calibration images: escapes {info['escape_on_calibration']:.1%}")
        if info["note"]:
            print(f"  note: {info['note']}")
    return 0
