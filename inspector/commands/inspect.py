"""`inspector inspect MODEL IMAGE_OR_DIR...`: verdict, score and defect regions for each image."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

from inspector.commands.common import DEVICE_HELP, model_first, path_of, print_json
from model.errors import InspectorError, file_problem
from model.folders import shortened, writable_folder

# bytes of an overlay's name before `_overlay.png`: an image's name of 240 bytes (of 255) left no room for that, nor
# for the temporary file it is written through, and no overlay after it was written
STEM_MAX = 200


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="inspect an image or a folder of images", description=__doc__)
    p.add_argument("model", type=path_of("model"), help="checkpoint directory or exported model")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", type=path_of("image or folder"),
                   help="image files and/or folders (searched recursively), e.g. parts/*.png")
    p.add_argument("--json", action="store_true", help="print result records as JSON")
    p.add_argument("--overlays", metavar="OUTDIR", type=path_of("folder"), help="write an overlay PNG per image here (images under it are not inspected, so it may sit in an inspected folder)")
    p.add_argument("--threshold", type=float, help="image threshold to use instead of the calibrated one")
    p.add_argument("--lang", default=None, help="also print a plain-language summary: en, zh or es")
    p.add_argument("--serial", help="part serial number to record (single image)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when a part FAILs, 0 when all PASS, as `git diff --exit-code` does (2 stays an error)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.api import Inspector, load_image
    from inspector.cli import one_line
    from inspector.describe import LANGUAGES
    from inspector.overlay import save_png

    model_first("inspect", args.model, *args.images)
    paths, base, notes, unlisted = _images(args.images, skip=args.overlays)
    single = len(args.images) == 1 and not Path(args.images[0]).is_dir()
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise InspectorError(f"--threshold {args.threshold}: give a finite score")
    if args.lang is not None and args.lang not in LANGUAGES:
        raise InspectorError(f"--lang {args.lang}: choose one of {', '.join(LANGUAGES)}")
    if args.serial is not None and len(paths) > 1:
        raise InspectorError(f"--serial {args.serial}: names one part, and {len(paths)} images were given; inspect them one at a time, "
                             "or record serials through the daemon")
    if args.overlays:
        # fail once, before the model loads, rather than once per image
        writable_folder(args.overlays, "--overlays")
    insp = Inspector.load(args.model, device=args.device)
    for note in notes:  # once the model is known to load: an error stays the only line
        print(one_line(f"note: {note}"), file=sys.stderr)
    records, verdicts, errors = [], [], []  # not the results: each holds its full-size map (48 MB at 12 MP)
    for folder, error in unlisted:  # as an image that cannot be read: the others are inspected, and the run exits 2
        errors.append({"path": str(folder), "error": error})
        print(one_line(f"error: {error}"), file=sys.stderr)
    if args.threshold is not None:
        insp = insp.with_thresholds(image=args.threshold)
    overlay_names = _overlay_names(paths, base) if args.overlays else {}
    overlays_failed = False
    for path in paths:
        try:
            # decoded once: the overlay is drawn on the very pixels that were scored and hashed
            t0 = time.perf_counter()
            image = load_image(path)
            decoded_ms = (time.perf_counter() - t0) * 1000
            r = insp.inspect(image, serial=args.serial)
            r.timings_ms["decode"] = round(r.timings_ms.get("decode", 0.0) + decoded_ms, 3)  # the file's decoding, as the API counts it
        except InspectorError as exc:
            errors.append({"path": str(path), "error": str(exc)})
            print(one_line(f"error: {exc}"), file=sys.stderr)  # a name holding a newline split it, the rest without `error:`
            continue
        if args.overlays and not overlays_failed:  # a verdict stands without its overlay (a full disk lost both)
            try:
                r.images["overlay"] = str(save_png(r.overlay(image.rgb), Path(args.overlays) / overlay_names[path]))
            except InspectorError as exc:
                overlays_failed = True  # said once, not once per image
                errors.append({"path": str(path), "error": str(exc)})
                print(one_line(f"error: {exc}; no further overlays are written"), file=sys.stderr)
        verdicts.append(r.verdict)
        if args.json:
            records.append(r.to_record() | ({"description": r.describe(args.lang)} if args.lang else {}))
        else:
            # beyond DecisionConfig.max_regions only the most severe are listed: "regions 20" read as all there were
            shown = f"{len(r.regions):2}" + (f" of {r.found}" if r.found > len(r.regions) else "")
            # a name holding a newline split the verdict's line: `grep ^FAIL` lost the rest of the name
            print(f"{r.verdict:4}  score {r.score:8.4f}  threshold {r.threshold:.4f}  regions {shown}  {one_line(str(path))}")
            for reg in r.regions:
                x, y, w, h = reg.box
                peak = "  (where the map peaks: no pixel reached the pixel threshold)" if reg.located_by == "map_peak" else ""
                print(f"        {reg.type} {reg.severity:6} box x={x} y={y} w={w} h={h}  area {reg.area_px} px{peak}")
            for warning in r.warnings:
                print(f"        warning: {warning}")
            if r.images.get("overlay"):  # --overlays said nothing of where each one went
                print(f"        overlay {one_line(r.images['overlay'])}")
            if args.lang:
                print("      " + r.describe(args.lang))
    n_fail = verdicts.count("FAIL")
    if args.json:
        if single:
            if records:
                print_json(records[0])
        else:
            # notes too: what was left out (links that lead nowhere, masks, earlier overlays) was said on stderr alone
            print_json({"results": records, "errors": errors, "notes": notes,
                        "summary": {"images": len(paths), "inspected": len(verdicts), "fail": n_fail, "pass": len(verdicts) - n_fail}})
    elif len(paths) > 1 or unlisted:
        unread = len(paths) - len(verdicts)
        left = ([f"{unread} not inspected"] if unread else []) + ([f"{len(unlisted)} folder(s) not read"] if unlisted else [])
        print(f"{len(verdicts)} inspected: {len(verdicts) - n_fail} PASS, {n_fail} FAIL" + (f", {', '.join(left)} (see the errors above)" if left else ""))
    if errors:
        return 2
    return 1 if args.exit_code and n_fail else 0


def _overlay_names(paths: list[Path], base: str) -> dict[Path, Path]:
    """Each image's overlay path below the overlays folder, as the image's below `base`: `part1_overlay.png`,
    or `part1_png_overlay.png` and `part1_jpg_overlay.png` where two images share a name but not a suffix."""
    rels = {p: Path(os.path.relpath(os.path.abspath(p), base)) for p in paths}
    shared = Counter(r.with_suffix("") for r in rels.values())
    names, taken = {}, set()
    for p, r in rels.items():
        stem = r.stem + (f"_{r.suffix[1:]}" if shared[r.with_suffix("")] > 1 else "")
        if len(os.fsencode(stem)) > STEM_MAX:  # cut, a hash of the image's path keeping it apart from its likes
            stem = shortened(stem, STEM_MAX, os.fsencode(r))
        name, k = r.with_name(f"{stem}_overlay.png"), 1
        while name in taken:  # x.png beside x.jpg and x_png.png would share x_png_overlay.png: a FAIL's record showed a PASS
            k += 1
            name = r.with_name(f"{stem}_{k}_overlay.png")
        names[p] = name
        taken.add(name)
    return names


def _images(targets: list[str], skip: str | None = None) -> tuple[list[Path], str, list[str], list[tuple[Path, str]]]:
    """The images to inspect, each once, in the order given (folders sorted, recursively), and the folder their
    overlays' paths are kept relative to: the deepest one holding every target, so that no two overlays collide.
    A folder's images under `skip` (the overlays folder) are left out, so a rerun does not inspect the last
    run's overlays. A missing target or an image-less folder is an error before anything is inspected. Also notes
    on what was left out, and the folders below a target that cannot be listed (with the line saying so): the rest of
    a line's tree is inspected, as when one of its images cannot be read."""
    from model.images import FORMATS, broken_links_note, is_mask_name, only_dead_links, scan_images
    from model.synth.writer import CONTACT_SHEET, is_synth_output

    def contact_sheet(path: Path) -> bool:  # a synth output's overview of its defects, no part: it was inspected with them
        return path.name == CONTACT_SHEET and is_synth_output(path.parent)

    skip = os.path.abspath(skip) if skip else None
    found: dict[str, Path] = {}
    notes: list[str] = []
    own: list[Path] = []  # overlays given by name (a shell glob, rerun over the folder they were written to)
    unlisted: dict[str, tuple[Path, str]] = {}  # folders below a target that cannot be listed, by absolute path
    for t in map(Path, targets):
        if not t.exists():  # a link to a share not mounted, or a loop, is said so
            why = file_problem(t)
            fix = "" if why == "no such file" else "; give the image itself" if "(a loop)" in why else "; mount or copy what it points to"
            if str(t) == "-":  # said "no such file or folder", as if a file named - were meant
                why, fix = "no such file", "; images are not read from standard input: save the image to a file and give its path"
            raise InspectorError(f"image {t}: {'no such file or folder' if why == 'no such file' else why}{fix}")
        if skip and not t.is_dir() and t.stem.endswith("_overlay") and os.path.commonpath([os.path.abspath(t), skip]) == skip:
            # an overlay this run writes there, or an earlier run wrote: inspected as a part, it failed (exit 1 under
            # --exit-code), and the run overwrote it with another image's overlay before reading it
            own.append(t)
            continue
        scan = scan_images(t, recursive=True, masks=True, skip_unreadable=True) if t.is_dir() else None
        images = scan.images if scan else [t]
        notes += broken_links_note(scan, t) if scan else []
        if skip and t.is_dir():
            if os.path.commonpath([os.path.abspath(t), skip]) == skip:  # said so, not "no images found"
                raise InspectorError(f"--overlays {skip}: holds the folder {t} being inspected; write the overlays to another folder")
            images = [p for p in images if os.path.commonpath([os.path.abspath(p), skip]) != skip]
        # masks, left out as everywhere else, and overlays an earlier run wrote here: not parts, but not left out silently
        for suffix, what, left_out in (("_mask", "ground-truth masks", is_mask_name), ("_overlay", "overlays of an earlier run",
                                                                                        lambda p: p.stem.endswith("_overlay")),
                                       (CONTACT_SHEET, "the contact sheet of an `inspector synth` output", contact_sheet)):
            named = [p for p in images if left_out(p)] if t.is_dir() else []
            if named:
                images = [p for p in images if not left_out(p)]
                notes.append(f"{len(named)} image(s) in {t} named *{suffix} ({what}, e.g. {named[0].name}) are not "
                             "inspected; give them by name to inspect them")
        if not images:
            if scan and scan.unreadable:  # nothing to inspect here but what could not be listed: said so, as before
                raise InspectorError(scan.unreadable[0][1])
            if dead := scan and only_dead_links(scan):  # "no images found" of files there, as links to a share gone
                raise InspectorError(f"folder {t}: no images: {dead}")
            raise InspectorError(f"folder {t}: no images ({FORMATS}) found")
        for p in images:
            found.setdefault(os.path.abspath(p), p)
        for folder, error in scan.unreadable if scan else []:  # said once, where a target lies in another
            unlisted.setdefault(os.path.abspath(folder), (folder, error))
    if own:
        if not found:
            what = f"image {own[0]}: an overlay" if len(own) == 1 else f"images {own[0]} and {len(own) - 1} more: overlays"
            raise InspectorError(f"{what} in the --overlays folder {skip}, not parts; give the parts, or write the overlays to another folder")
        notes.append(f"{len(own)} image(s) given in the --overlays folder {skip} named *_overlay (overlays of this or an "
                     f"earlier run, e.g. {own[0].name}) are not inspected; write the overlays to another folder to inspect them")
    base = os.path.commonpath([os.path.abspath(t if t.is_dir() else t.parent) for t in map(Path, targets) if t not in own])
    return list(found.values()), base, notes, list(unlisted.values())

